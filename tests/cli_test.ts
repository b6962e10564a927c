/**
 * Every task is one tool: `--help` and `-h` exit 0 with usage listing each flag with an example,
 * and a usage error is one line on stderr with exit code 2 (no stack trace).
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";

const run = (args: string[]) => runDeno(args);

/** Task file, a usage error's arguments, and the one line it must print. */
const TASKS: [string, string[], RegExp][] = [
  [
    "tasks/reproduce.ts",
    ["--threads", "0"],
    /^reproduce: --threads must be a whole number >= 1; got 0$/,
  ],
  [
    "tasks/reproduce.ts",
    ["--backend", "tpu"],
    /^reproduce: --backend must be one of webgpu, wasm, cpu/,
  ],
  [
    "tasks/reproduce.ts",
    ["--seed", "abc"],
    /^reproduce: --seed must be a whole number; got "abc"$/,
  ],
  [
    "tasks/reproduce.ts",
    ["--max-hours", "-1"],
    /^reproduce: --max-hours must be a number > 0; got -1$/,
  ],
  [
    "tasks/reproduce.ts",
    ["--phase", "incubate:9", "--dry-run", "--no-probe", "--no-download"],
    /^reproduce: --phase incubate:9: this plan has no such phase; its phases are baseline, /,
  ],
  [
    "tasks/reproduce.ts",
    ["--dir", "x"],
    /^reproduce: unknown flag --dir; did you mean --data-dir\?/,
  ],
  [
    "tasks/train.ts",
    ["--epochs", "-1"],
    /^train: --epochs -1: Invalid pipeline config: "baseline\.epochs" must be >= 0, got -1; see /,
  ],
  [
    "tasks/train.ts",
    ["--subset", "5"],
    /^train: --subset is now `data\.trainPerClass` \(flag --train-per-class\)$/,
  ],
  [
    "tasks/train.ts",
    ["--limit-test", "100"],
    /^train: --limit-test is now `data\.testPerClass` \(flag --test-per-class\): test images/,
  ],
  ["tasks/data.ts", ["check", "--dir", "x"], /^data: --dir was renamed --data-dir/],
  ["tasks/data.ts", ["fetch"], /^data: unknown command "fetch"; expected one of check, download$/],
  ["tasks/bench.ts", ["--threads", "0,1"], /^bench: --threads must be a comma-separated list/],
  ["tasks/bench.ts", ["--profile", "--torch"], /^bench: --profile and --torch do not go together/],
  [
    "tasks/bench.ts",
    ["--rounds", "0"],
    /^bench: --rounds must be a whole number from 1 to 20; got 0$/,
  ],
  ["tasks/bench.ts", ["--rounds", "2", "--profile"], /^bench: --rounds repeats the table's/],
  ["tasks/bench.ts", ["--filter-kernel", "fast"], /^bench: --filter-kernel must be one of/],
  ["tasks/bench.ts", ["--forward-kernel", "fast"], /^bench: --forward-kernel must be one of/],
  ["tasks/bench.ts", ["--input-kernel", "OWN"], /^bench: --input-kernel must be one of/],
  [
    "tasks/bench.ts",
    ["--profile-model", "resnet50"],
    /^bench: --profile-model only applies with --profile; add --profile to profile a resnet50 /,
  ],
  ["tasks/bench.ts", ["--profile-model", "vgg"], /^bench: --profile-model must be one of/],
  [
    "tasks/bench.ts",
    ["--v8-flags"],
    /^bench: --v8-flags needs a value, e\.g\. --v8-flags=--no-wasm-bounds-checks$/,
  ],
  [
    "tasks/bench.ts",
    ["--v8-flags=--no-wasm-bounds-checks,trace"],
    /^bench: --v8-flags takes comma-separated V8 flags such as --no-wasm-bounds-checks; got "trace"$/,
  ],
  [
    "tasks/bench.ts",
    ["--only", "conv", "--v8-flags=--no-wasm-bounds-checks"],
    /^bench: --v8-flags is for the processes the bench starts; with --only this process measures/,
  ],
  [
    "tasks/build_kernels.ts",
    ["--chek"],
    /^build:kernels: unknown flag --chek; did you mean --check\?/,
  ],
  ["tasks/bench_data.ts", ["--batches", "0"], /^bench:data: --batches must be a whole number >= 1/],
  [
    "tasks/bench_data.ts",
    ["--allow-software-adapter", "--data-dir", "/nonexistent"],
    /^bench:data: --allow-software-adapter only applies with --backend webgpu \(the backend is wasm\); add --backend webgpu/,
  ],
  ["tasks/params.ts", ["--model", "resnet18", "--classes", "-3"], /^params: --classes must be/],
  [
    "tasks/params_report.ts",
    ["--chek"],
    /^params:report: unknown flag --chek; did you mean --check\?/,
  ],
  ["tasks/aggregate.ts", [], /^aggregate: missing RUN_DIR\.\.\./],
  [
    "tasks/flows_demo.ts",
    ["toy", "--steps", "0"],
    /^flows_demo: --steps must be a whole number >= 1/,
  ],
  ["tasks/make_sample.ts", ["--from", "/tmp"], /^make_sample: --from was renamed --data-dir/],
  [
    "tasks/export.ts",
    ["--checkpoint", "runs/x", "--out", "m.mfi", "--dataset", "cifar1000"],
    /^export: --dataset must be one of cifar10, cifar100; got "cifar1000"$/,
  ],
  ["tasks/export.ts", ["--out", "m.mfi"], /^export: --checkpoint and --out are required, e\.g\./],
  ["tasks/export.ts", ["--accuracy=maybe"], /^export: --accuracy takes no value.*--no-accuracy$/],
  [
    "tasks/serve.ts",
    ["--model", "model.mfi", "--port", "-1"],
    /^serve: --port must be a whole number >= 0, <= 65535; got -1$/,
  ],
  ["tasks/serve.ts", ["--port", "9000"], /^serve: --model is required, e\.g\. --model model\.mfi$/],
  [
    "tasks/serve.ts",
    ["--model", "http://models.example.com/m.mfi"],
    /^serve: --model http:\/\/models\.example\.com\/m\.mfi is plain http:.*--allow-http$/,
  ],
  [
    "tasks/serve.ts",
    ["--model", "m.mfi", "--max-batch", "0"],
    /^serve: --max-batch must be a whole number >= 1; got 0$/,
  ],
  [
    "tasks/serve.ts",
    ["--model", "m.mfi", "--wasm-dri", "x"],
    /^serve: unknown flag --wasm-dri; did you mean --wasm-dir\?/,
  ],
  ["tasks/fuzz.ts", ["--cases", "-1"], /^fuzz: --cases must be a whole number >= 0; got -1$/],
  ["tasks/fuzz.ts", ["--seeds", "3"], /^fuzz: unknown flag --seeds; did you mean --seed\?/],
  [
    "tasks/bench_serve.ts",
    ["--json", "bench.json"],
    /^bench:serve: --json FILE was renamed --out FILE/,
  ],
  ["tasks/bench_serve.ts", ["--width", "0"], /^bench:serve: --width must be a number > 0; got 0$/],
  [
    "tasks/bench_serve.ts",
    ["--input", "jpeg"],
    /^bench:serve: --input must be one of png, raw; got "jpeg"$/,
  ],
  [
    "tasks/bench_serve.ts",
    ["--backend", "tpu"],
    /^bench:serve: --backend must be one of webgpu, wasm, cpu/,
  ],
];

for (const file of new Set(TASKS.map(([f]) => f))) {
  Deno.test(`${file} --help and -h exit 0 with every flag, its type, default and an example`, async () => {
    for (const flag of ["--help", "-h"]) {
      const r = await run([file, flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, /^deno task \S+: /);
      assert.match(r.stdout, /\nUsage: deno task /);
      assert.match(r.stdout, /\n {2}-h, --help +show this help and exit/);
      assert.match(r.stdout, /\nExamples:\n {2}deno task /);
      // Each flag entry (from its "--name" head to the next one) names a type and an example.
      const entries = r.stdout.split(/\n(?= {2}(?:-\w, )?--)/).slice(1, -1);
      assert.ok(entries.length > 0, "no flags listed");
      for (const entry of entries) {
        assert.match(entry, /(string|integer|number|boolean|choice)[ .,]/, entry);
        assert.match(entry, /e\.g\. --/, entry);
      }
    }
  });
}

Deno.test("usage errors of every task: one line naming the fix, exit code 2", async () => {
  for (const [file, args, pattern] of TASKS) {
    const r = await run([file, ...args]);
    const what = `${file} ${args.join(" ")}`;
    assert.equal(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr.trimEnd(), pattern, what);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, `${what}: stack trace`);
  }
});
