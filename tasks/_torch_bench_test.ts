import assert from "node:assert/strict";
import { DEFAULT_PYTHON, parseTorchReport, runTorchBench } from "./_torch_bench.ts";

Deno.test("parseTorchReport reads the script's last JSON line", () => {
  const out = [
    "some warning from torch",
    '{"torch": "1.13.1", "threads": 2, "rows": [' +
    '{"name": "conv3x3 forward", "value": 120.5, "unit": "GFLOP/s"},' +
    '{"name": "resnet18 train (batch 64)", "value": 300, "unit": "images/s"}]}',
    "",
  ].join("\n");
  assert.deepEqual(parseTorchReport(out), {
    kind: "measured",
    version: "1.13.1",
    threads: 2,
    rows: [
      { name: "conv3x3 forward", value: 120.5, unit: "GFLOP/s" },
      { name: "resnet18 train (batch 64)", value: 300, unit: "images/s" },
    ],
  });
});

Deno.test("parseTorchReport turns a null torch into 'missing' with the reason", () => {
  assert.deepEqual(parseTorchReport('{"torch": null, "error": "No module named \'torch\'"}\n'), {
    kind: "missing",
    reason: "No module named 'torch'",
  });
});

Deno.test("parseTorchReport rejects output that is not a valid report, saying what is wrong", () => {
  assert.throws(() => parseTorchReport("Traceback ...\n"), /printed no JSON report/);
  assert.throws(() => parseTorchReport("{not json"), /malformed JSON/);
  assert.throws(() => parseTorchReport('{"threads": 1, "rows": []}'), /no torch version/);
  assert.throws(
    () => parseTorchReport('{"torch": "1.13", "threads": 0, "rows": []}'),
    /no valid threads count/,
  );
  assert.throws(() => parseTorchReport('{"torch": "1.13", "threads": 1}'), /has no rows/);
  assert.throws(
    () =>
      parseTorchReport(
        '{"torch": "1.13", "threads": 1, "rows": [{"name": "x", "value": -1, "unit": "u"}]}',
      ),
    /row 0 needs a name, a unit and a positive value/,
  );
  assert.throws(
    () => parseTorchReport('{"torch": "1.13", "threads": 1, "rows": [{"value": 3, "unit": "u"}]}'),
    /row 0/,
  );
});

Deno.test("runTorchBench says PyTorch is missing when the interpreter does not exist", async () => {
  const r = await runTorchBench({ python: "/nonexistent/python3", threads: 1, only: ["conv"] });
  assert.deepEqual(r, { kind: "missing", reason: "/nonexistent/python3 does not exist" });
});

const hasPython = (() => {
  try {
    return Deno.statSync(DEFAULT_PYTHON).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "runTorchBench: the real script reports 'missing' when import torch fails (python -S)",
  ignore: !hasPython,
  async fn() {
    // -S leaves out site-packages, where Debian's python3-torch lives: import torch fails.
    const r = await runTorchBench({ pythonArgs: ["-S"], threads: 1, only: ["conv"] });
    assert.equal(r.kind, "missing");
    assert.match((r as { reason: string }).reason, /torch/);
  },
});

const hasTorch = hasPython &&
  new Deno.Command(DEFAULT_PYTHON, { args: ["-c", "import torch"], stdout: "null", stderr: "null" })
    .outputSync().success;

Deno.test({
  name: "runTorchBench runs the conv measurements in PyTorch under the bench's row names",
  ignore: !hasTorch,
  async fn() {
    const r = await runTorchBench({ threads: 1, quick: true, only: ["conv"] });
    assert.equal(r.kind, "measured");
    if (r.kind !== "measured") return;
    assert.equal(r.threads, 1);
    assert.deepEqual(r.rows.map((x) => [x.name, x.unit]), [
      ["conv3x3 forward", "GFLOP/s"],
      ["conv3x3 backward-input", "GFLOP/s"],
      ["conv3x3 backward-filter", "GFLOP/s"],
    ]);
  },
});

Deno.test({
  name: "runTorchBench fails, naming the script's error, on an unknown measurement",
  ignore: !hasTorch,
  async fn() {
    await assert.rejects(
      () => runTorchBench({ threads: 1, only: ["nope"] }),
      /bench_torch.py failed under .* \(exit 2\): .*unknown measurement 'nope'/,
    );
  },
});
