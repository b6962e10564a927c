import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import {
  BACKEND_ARG_HELP,
  BACKEND_ARG_OPTIONS,
  backendOptionsFromArgs,
  backendOptionsFromValues,
} from "./cli.ts";

Deno.test("backendOptionsFromArgs: both flag forms, other flags and positionals ignored", () => {
  assert.deepEqual(backendOptionsFromArgs([]), {});
  assert.deepEqual(backendOptionsFromArgs(["--backend", "wasm"]), { backend: "wasm" });
  assert.deepEqual(backendOptionsFromArgs(["--backend=WebGPU"]), { backend: "webgpu" });
  assert.deepEqual(backendOptionsFromArgs(["--threads=4"]), { threads: 4 });
  assert.deepEqual(
    backendOptionsFromArgs(["train", "--epochs", "3", "--backend", "cpu", "--threads", "1", "-v"]),
    { backend: "cpu", threads: 1 },
  );
  // The last occurrence wins, as with parseArgs.
  assert.deepEqual(backendOptionsFromArgs(["--backend", "cpu", "--backend", "wasm"]), {
    backend: "wasm",
  });
});

Deno.test("backendOptionsFromArgs: invalid values are errors naming the flag", () => {
  assert.throws(
    () => backendOptionsFromArgs(["--backend", "gpu"]),
    (e: Error) =>
      e instanceof TypeError && /--backend/.test(e.message) &&
      /webgpu, wasm, cpu/.test(e.message),
  );
  assert.throws(() => backendOptionsFromArgs(["--backend"]), /--backend needs a value/);
  for (const bad of ["0", "-1", "1.5", "two", "", " ", "1e3", "0x2"]) {
    assert.throws(
      () => backendOptionsFromArgs([`--threads=${bad}`]),
      (e: Error) => e instanceof RangeError && /--threads/.test(e.message),
      bad,
    );
  }
  assert.throws(() => backendOptionsFromArgs(["--threads"]), RangeError);
});

Deno.test("BACKEND_ARG_OPTIONS composes with a task's own strict parseArgs", () => {
  const { values, positionals } = parseArgs({
    args: ["--backend", "wasm", "--threads", "2", "--steps", "10", "run"],
    options: { ...BACKEND_ARG_OPTIONS, steps: { type: "string" } },
    allowPositionals: true,
  });
  assert.deepEqual(backendOptionsFromValues(values), { backend: "wasm", threads: 2 });
  assert.equal(values.steps, "10");
  assert.deepEqual(positionals, ["run"]);
  assert.throws(() => backendOptionsFromValues({ backend: true }), /--backend needs a value/);
  assert.match(BACKEND_ARG_HELP, /--backend webgpu\|wasm\|cpu/);
  assert.match(BACKEND_ARG_HELP, /--threads N/);
});

Deno.test("--allow-software-adapter: parsed as a switch, given no value", () => {
  assert.deepEqual(backendOptionsFromArgs(["--backend", "webgpu", "--allow-software-adapter"]), {
    backend: "webgpu",
    allowSoftwareAdapter: true,
  });
  // Absent stays absent, so MFI_ALLOW_SOFTWARE_ADAPTER can still apply.
  assert.equal("allowSoftwareAdapter" in backendOptionsFromArgs(["--backend", "webgpu"]), false);
  assert.throws(
    () => backendOptionsFromArgs(["--allow-software-adapter=yes"]),
    (e: Error) =>
      e instanceof TypeError && /--allow-software-adapter takes no value/.test(e.message),
  );
  assert.throws(
    () => backendOptionsFromValues({ "allow-software-adapter": "1" }),
    /takes no value/,
  );
  const { values } = parseArgs({
    args: ["--allow-software-adapter", "--backend=webgpu"],
    options: BACKEND_ARG_OPTIONS,
  });
  assert.deepEqual(backendOptionsFromValues(values), {
    backend: "webgpu",
    allowSoftwareAdapter: true,
  });
  assert.match(BACKEND_ARG_HELP, /--allow-software-adapter/);
  assert.match(BACKEND_ARG_HELP, /MFI_ALLOW_SOFTWARE_ADAPTER=1/);
});
