/**
 * The pipeline's command-line surface: `deno task params` for MFI-ResNet (the paper's sizes
 * without training), the parameter report being up to date, and `reproduce` refusing a run
 * that exceeds `--max-hours` when there is no terminal to ask.
 */
import assert from "node:assert/strict";
import { paramsReportMarkdown } from "@mfi/incubation";

const ROOT = new URL("..", import.meta.url).pathname;

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("params --model mfi-resnet50 --json has the paper's reductions within 0.5 points", async () => {
  for (const [classes, paper] of [[10, 46.28], [100, 45.59]]) {
    const base = await run([
      "run",
      "-A",
      "tasks/params.ts",
      "--model",
      "resnet50",
      "--classes",
      String(classes),
      "--json",
    ]);
    const mfi = await run([
      "run",
      "-A",
      "tasks/params.ts",
      "--model",
      "mfi-resnet50",
      "--classes",
      String(classes),
      "--json",
    ]);
    assert.equal(mfi.code, 0, mfi.stderr);
    const b = JSON.parse(base.stdout);
    const m = JSON.parse(mfi.stdout);
    const reduction = 100 * (1 - m.total / b.total);
    assert.ok(Math.abs(reduction - paper) < 0.5, `${classes} classes: -${reduction} %`);
    assert.deepEqual(m.stages.slice(0, 3), b.stages.slice(0, 3), "stages 1-3 are residual");
    assert.equal(m.total, m.stem + m.head + m.stages.reduce((x: number, y: number) => x + y, 0));
  }
  const bad = await run([
    "run",
    "-A",
    "tasks/params.ts",
    "--model",
    "mfi-resnet50",
    "--classes",
    "7",
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /classes must be 10 \(CIFAR-10\) or 100/);
});

Deno.test("docs/results/params.md is generated from the specs and up to date", async () => {
  const text = await Deno.readTextFile(`${ROOT}docs/results/params.md`);
  assert.equal(text, paramsReportMarkdown());
  assert.match(text, /\| paper-r50-c10 \| .* \| 12,635,082 \| -46\.28 % \|/);
  assert.match(text, /\| paper-r50-c100 \| .* \| 12,894,308 \| -45\.61 % \|/);
});

Deno.test("reproduce refuses a run over --max-hours without a terminal, and rejects bad flags", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mfi-cli-" });
  try {
    const args = [
      "run",
      "-A",
      "tasks/reproduce.ts",
      "--preset",
      "smoke",
      "--out",
      tmp,
      "--backend",
      "wasm",
      "--threads",
      "1",
      "--archive",
      "data/sample/cifar-10-sample.tar.gz",
      "--no-download",
    ];
    const refused = await run([...args, "--max-hours", "0.000001"], { CI: "true" });
    assert.equal(refused.code, 3, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /estimated duration: /);
    assert.match(refused.stdout, /compress:4 .* trains stages\.3\.\*/);
    assert.match(refused.stderr, /refusing to start without a terminal\. Pass --yes/);
    const entries = [...Deno.readDirSync(tmp)];
    assert.deepEqual(entries, [], "nothing was trained");
    const unknown = await run([...args, "--no-probe", "--set", "baseline.epoch=3"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /"baseline.epoch" is not a known key/);
    // --ablation adds the variants' stage fits to the plan (and its estimate): VARIANT/compress:L.
    const ablation = await run([...args, "--ablation", "--dry-run"]);
    assert.equal(ablation.code, 0, ablation.stderr);
    assert.match(ablation.stdout, /meanflow-only\/compress:1 .* trains stages\.0\.\* .*\[to run\]/);
    assert.match(ablation.stdout, /legacy\/compress:4 .* trains stages\.3\.\* .*\[to run\]/);
    assert.doesNotMatch(
      ablation.stdout,
      /both\/compress/,
      "the run's own objective is not planned twice",
    );
    assert.match(
      ablation.stdout,
      /stage-fit ablation from this run's baseline: meanflow-only \(MeanFlow loss alone; v1 sampler/,
    );
    const selected = await run([
      ...args,
      "--ablation",
      "--dry-run",
      "--no-probe",
      "--phase",
      "endpoint-only",
    ]);
    assert.equal(selected.code, 0, selected.stderr);
    assert.match(selected.stdout, /endpoint-only\/compress:2 .*\[to run\]/);
    assert.match(selected.stdout, /meanflow-only\/compress:2 .*\[not selected\]/);
    assert.match(selected.stdout, /^ {2}meta .*\[not selected\]/m);
    const noVariant = await run([...args, "--no-probe", "--phase", "endpoint-only/compress:1"]);
    assert.equal(noVariant.code, 2);
    assert.match(
      noVariant.stderr,
      /--phase endpoint-only\/compress:1: this plan has no such phase; .*\(no ablation variants: add --ablation\)/,
    );
    const badVariant = await run([...args, "--no-probe", "--set", "ablation=[all]"]);
    assert.equal(badVariant.code, 2);
    assert.match(
      badVariant.stderr,
      /"ablation\[0\]" must be one of "meanflow-only", "meanflow-prefit", "endpoint-only", "both", "legacy"/,
    );
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "a dry run writes nothing");
    const preset = await run(["run", "-A", "tasks/reproduce.ts", "--preset", "huge", "--dry-run"]);
    assert.equal(preset.code, 2);
    assert.match(preset.stderr, /unknown preset "huge"; available: .*paper-r50-c10.*quick.*smoke/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("reproduce with no data and no network runs the quick preset on the embedded sample, loudly", async () => {
  const empty = await Deno.makeTempDir({ prefix: "mfi-nodata-" });
  try {
    const r = await run(
      [
        "run",
        "-A",
        "tasks/reproduce.ts",
        "--no-download",
        "--no-probe",
        "--dry-run",
        "--out",
        `${empty}/run`,
      ],
      { MFI_DATA_DIR: empty },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /preset quick/);
    assert.match(r.stdout, /NO CIFAR DATA FOUND/);
    assert.match(r.stdout, /EMBEDDED 2,000-image CIFAR-10 SAMPLE/);
    assert.match(
      r.stdout,
      /data: +the embedded CIFAR-10 SAMPLE .*: 2000 training \/ 500 test images/,
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
