import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { saveCheckpoint } from "@mfi/core";
import { assertNoLeak } from "@mfi/core/testing";
import { readPhaseOutput } from "@mfi/incubation";
import { OLD_TRAIN_KEYS, runTrain, TRAIN_CLI, TRAIN_KEY_FLAGS, trainConfig } from "./train.ts";
import { parseCli } from "./_cli.ts";

const SAMPLE = new URL("../data/sample/cifar-10-sample.tar.gz", import.meta.url).pathname;
const BASELINE = { id: "baseline", output: "phases/baseline" };
/** The embedded sample on wasm, for every run here. */
const ON_SAMPLE = ["--data-dir", SAMPLE, "--backend", "wasm"];

const usage = (pattern: RegExp) => (e: Error) => e.name === "UsageError" && pattern.test(e.message);

Deno.test("train rejects unknown flags and invalid values before touching data", async () => {
  const root = await Deno.makeTempDir();
  const out = ["--out", `${root}/run`];
  await assert.rejects(runTrain(["--epoch", "3"]), /unknown flag --epoch; did you mean --epochs\?/);
  await assert.rejects(runTrain(["--width", "wide"]), /--width must be a number; got "wide"/);
  // One validator: the pipeline config's, naming the key and the flag that set it.
  await assert.rejects(
    runTrain(["--model", "vgg16", ...out]),
    usage(/^--model "vgg16": Invalid pipeline config: "model\.arch" must be one of "resnet18"/),
  );
  await assert.rejects(
    runTrain(["--batch-size", "0", ...out]),
    usage(/^--batch-size 0: .*"baseline\.batchSize" must be >= 1, got 0/),
  );
  await assert.rejects(
    runTrain(["--epochs", "-1", ...out]),
    usage(/^--epochs -1: .*"baseline\.epochs" must be >= 0, got -1/),
  );
  await assert.rejects(
    runTrain(["--set", "baseline.lr=-1", ...out]),
    usage(/"baseline\.lr" must be >= 0, got -1/),
  );
  await assert.rejects(
    runTrain(["--allow-software-adapter", "--backend", "wasm", ...out]),
    /--allow-software-adapter\) only applies to an explicit WebGPU request/,
  );
  // Old flags: a migration error naming the new key.
  await assert.rejects(
    runTrain(["--subset", "5"]),
    usage(/--subset is now `data\.trainPerClass` \(flag --train-per-class\)/),
  );
  await assert.rejects(
    runTrain(["--limit-test", "100"]),
    /--limit-test is now `data\.testPerClass` \(flag --test-per-class\)/,
  );
  for (const [flag, value] of Object.entries(OLD_TRAIN_KEYS)) {
    if (!value.startsWith("was removed")) continue;
    const name = flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    await assert.rejects(runTrain([`--${name}`, "1"]), usage(new RegExp(`^--${name} was removed`)));
  }
  const dir = `${root}/yaml`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/a.yaml`, "baseline: { epochs: 3 }\nlearningRate: 0.1\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/a.yaml`, ...out]),
    /"learningRate" is not a known key; known keys: name, description, seed, data, model/,
  );
  // The old train YAML (flat keys, any spelling): each key named with its new one.
  await Deno.writeTextFile(`${dir}/b.yaml`, "batch-size: 64\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/b.yaml`, ...out]),
    usage(/b\.yaml: keys of the old train config: `batch-size` is now `baseline\.batchSize`\./),
  );
  await Deno.writeTextFile(`${dir}/c.yaml`, "model: resnet18\nsubset: 5\nminLr: 0\nseed: 1\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/c.yaml`, ...out]),
    usage(
      new RegExp(
        "`model` is now `model\\.arch` \\(model: \\{ arch: resnet18 \\}\\); `subset` is now " +
          "`data\\.trainPerClass` .*; `minLr` was removed: the cosine schedule decays to 0",
      ),
    ),
  );
  await assert.rejects(
    runTrain(["--config", `${dir}/none.yaml`]),
    usage(/--config .*none\.yaml: cannot read it/),
  );
  // Nothing was created.
  await assert.rejects(Deno.stat(`${root}/run`), Deno.errors.NotFound);
  await Deno.remove(root, { recursive: true });
});

Deno.test("train flags: each sets its pipeline key; --no-X for booleans; only given flags override the YAML", async () => {
  for (const [name, flag] of Object.entries(TRAIN_KEY_FLAGS)) {
    const args = flag.type === "boolean" ? [`--no-${name}`] : [`--${name}`, flag.example!];
    const config = await trainConfig(args);
    const value = flag.key.split(".").reduce(
      (node, k) => (node as Record<string, unknown>)[k],
      config as unknown,
    );
    const expected = flag.type === "boolean"
      ? false
      : flag.type === "string"
      ? flag.example
      : Number(flag.example);
    assert.equal(value, expected, `--${name} sets ${flag.key}`);
  }
  const parsed = parseCli(TRAIN_CLI, ["--no-nesterov", "--no-augment", "--epochs", "2"]);
  assert.deepEqual([...parsed.given].sort(), ["augment", "epochs", "nesterov"]);
  // Defaults are not filled in by the parser (they would override the YAML file's values).
  assert.equal(parseCli(TRAIN_CLI, []).values.lr, undefined);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.yaml`, "baseline: { lr: 0.05, epochs: 3 }\n");
  const config = await trainConfig(["--config", `${dir}/a.yaml`, "--epochs", "2"]);
  assert.equal(config.baseline.lr, 0.05);
  assert.equal(config.baseline.epochs, 2);
  // --set comes last.
  const set = await trainConfig(["--epochs", "2", "--set", "baseline.epochs=4"]);
  assert.equal(set.baseline.epochs, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train runs the baseline phase end to end on the embedded sample and writes its outputs", async () => {
  const root = await Deno.makeTempDir();
  const out = `${root}/run`;
  const yaml = `${root}/run.yaml`;
  await Deno.writeTextFile(
    yaml,
    "model: { arch: resnet18, width: 0.0625 }\nbaseline: { epochs: 3, batchSize: 10 }\n",
  );
  const args = [
    "--config",
    yaml,
    "--epochs", // the command line overrides the file
    "1",
    "--train-per-class",
    "1",
    "--test-per-class",
    "2",
    ...ON_SAMPLE,
    "--out",
    out,
  ];
  const summary = (await runTrain(args))!;
  assert.equal(summary.config.baseline.epochs, 1);
  assert.equal(summary.config.model.width, 0.0625);
  assert.equal(summary.trainImages, 10);
  assert.equal(summary.testImages, 20);
  assert.equal(summary.history.length, 1);
  assert.ok(summary.ran);
  assert.ok(summary.testAccuracy !== null && summary.testAccuracy >= 0);
  const lines = (await Deno.readTextFile(`${out}/phases/baseline/log.jsonl`)).trim().split("\n");
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).step, 1);
  assert.match(await Deno.readTextFile(`${out}/test_accuracy.svg`), /^<svg/);
  assert.equal(JSON.parse(await Deno.readTextFile(`${out}/config.json`)).data.trainPerClass, 1);
  const output = await readPhaseOutput(out, BASELINE);
  assert.equal(output?.result.testAccuracy, summary.testAccuracy);
  // The finished run resumes as a no-op (MFI_ALLOW_SOFTWARE_ADAPTER needs --backend webgpu).
  Deno.env.set("MFI_ALLOW_SOFTWARE_ADAPTER", "1");
  let again;
  try {
    again = (await runTrain([...args, "--resume"]))!;
  } finally {
    Deno.env.delete("MFI_ALLOW_SOFTWARE_ADAPTER");
  }
  assert.equal(again.history.length, 1);
  assert.equal(again.ran, false);
  assert.match(again.backendReason, /MFI_ALLOW_SOFTWARE_ADAPTER ignored/);
  const configBefore = await Deno.readTextFile(`${out}/config.json`);
  const logBefore = await Deno.readTextFile(`${out}/phases/baseline/log.jsonl`);
  const untouched = async () => {
    assert.equal(await Deno.readTextFile(`${out}/config.json`), configBefore);
    assert.equal(await Deno.readTextFile(`${out}/phases/baseline/log.jsonl`), logBefore);
    assert.equal((await readPhaseOutput(out, BASELINE))?.sha256, output?.sha256);
  };
  // A run keeps its config: a changed key is refused on resume, naming it.
  await assert.rejects(
    runTrain([...args, "--resume", "--momentum", "0.5"]),
    usage(/its config differs \(baseline\.momentum: saved 0\.9, now 0\.5\)\. A run keeps/),
  );
  await assert.rejects(
    runTrain([...args, "--resume", "--lr", "0.05", "--epochs", "2"]),
    /\(baseline\.epochs: saved 1, now 2; baseline\.lr: saved 0\.1, now 0\.05\)/,
  );
  await untouched();
  // A fresh run over a finished run is refused and writes nothing.
  await assert.rejects(runTrain(args), /already holds a training run .*pass --resume/);
  await untouched();
  // A live holder of the folder's lock is named; nothing is written.
  const lock = {
    pid: 1,
    hostname: Deno.hostname(),
    startedAt: "2026-01-01T00:00:00Z",
    command: "x",
  };
  await Deno.writeTextFile(`${out}/.lock`, JSON.stringify(lock));
  await assert.rejects(runTrain([...args, "--resume"]), /held by pid 1 on /);
  await untouched();
  await Deno.remove(`${out}/.lock`);
  // The run's own config.json resumes it (it is read, and not written over).
  const viaConfig =
    (await runTrain(["--config", `${out}/config.json`, "--resume", ...ON_SAMPLE, "--out", out]))!;
  assert.equal(viaConfig.ran, false);
  await untouched();
  // Never over an input: a config.json that the run would change is refused.
  await Deno.mkdir(`${root}/fresh`);
  await Deno.copyFile(`${out}/config.json`, `${root}/fresh/config.json`);
  await assert.rejects(
    runTrain([
      "--config",
      `${root}/fresh/config.json`,
      "--epochs",
      "2",
      ...ON_SAMPLE,
      "--out",
      `${root}/fresh`,
    ]),
    /Refusing to write .*config\.json: it is the input/,
  );
  assert.equal(await Deno.readTextFile(`${root}/fresh/config.json`), configBefore);
  await assert.rejects(Deno.stat(`${out}/.lock`), Deno.errors.NotFound);
  await Deno.remove(root, { recursive: true });
});

Deno.test("train --resume with no checkpoint is an error, and creates nothing; an old train folder is named", async () => {
  const root = await Deno.makeTempDir();
  const common = ["--width", "0.0625", ...ON_SAMPLE];
  await assert.rejects(
    runTrain([...common, "--resume", "--out", `${root}/new`]),
    /Cannot resume: .*new\/phases\/baseline\/train holds no complete checkpoint\. Drop --resume/,
  );
  await assert.rejects(Deno.stat(`${root}/new`), Deno.errors.NotFound);
  // A folder of the old train layout (checkpoints/) is not trained over.
  const w = tf.variable(tf.zeros([2]));
  await saveCheckpoint(`${root}/old/checkpoints`, [["w", w]], {
    epoch: 1,
    step: 1,
    config: { model: "resnet18", batchSize: 10 },
  });
  w.dispose();
  await assert.rejects(
    runTrain([...common, "--out", `${root}/old`]),
    /holds a run of the old `deno task train`/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("every configs/train/*.yaml is a valid train config in the pipeline's keys", async () => {
  const dir = new URL("../configs/train/", import.meta.url).pathname;
  const camelCase = (value: unknown, where: string): void => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return;
    for (const [key, v] of Object.entries(value)) {
      assert.match(key, /^[a-z][a-zA-Z0-9]*$/, `${where}: camelCase keys, as the pipeline's`);
      camelCase(v, where);
    }
  };
  let n = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const config = await trainConfig(["--config", `${dir}${entry.name}`]);
    assert.ok(config.baseline.epochs >= 1, entry.name);
    camelCase(config, entry.name);
    n++;
  }
  assert.ok(n >= 3, `found ${n} configs`);
});

Deno.test("train --resume from an epoch checkpoint reproduces the uninterrupted run exactly", async () => {
  const root = await Deno.makeTempDir();
  const common = [
    "--model",
    "resnet18",
    "--width",
    "0.0625",
    "--epochs",
    "2",
    "--train-per-class",
    "1",
    "--batch-size",
    "5",
    "--test-per-class",
    "1",
    ...ON_SAMPLE,
    "--seed",
    "3",
  ];
  // A run frees every tensor it made (model, optimizer, data), and runs are deterministic.
  let i = 0;
  await assertNoLeak(() => runTrain([...common, "--out", `${root}/a${i++}`]), {
    steps: 1,
    label: "a train run",
  });
  const a = (await readPhaseOutput(`${root}/a0`, BASELINE))!;
  assert.equal((await readPhaseOutput(`${root}/a1`, BASELINE))!.sha256, a.sha256);
  // A run killed after its last epoch but before committing its output (simulated by a file
  // where the output folder goes), then rolled back to its epoch-1 checkpoint.
  const b = `${root}/b`;
  await Deno.mkdir(`${b}/phases/baseline`, { recursive: true });
  await Deno.writeTextFile(`${b}/phases/baseline/output`, "");
  await assert.rejects(runTrain([...common, "--out", b]));
  const train = `${b}/phases/baseline/train`;
  for await (const entry of Deno.readDir(train)) {
    if (entry.name.startsWith("epoch-0002")) await Deno.remove(`${train}/${entry.name}`);
  }
  await Deno.remove(`${b}/phases/baseline/output`);
  const resumed = (await runTrain([...common, "--out", b, "--resume"]))!;
  assert.equal(resumed.history.length, 2);
  // Weights and batch-norm statistics are byte-identical, and so is the epoch log.
  assert.equal((await readPhaseOutput(b, BASELINE))!.sha256, a.sha256);
  assert.deepEqual(
    resumed.history.map((r) => [r.step, r.loss, r.testAccuracy]),
    a.result.history.map((r) => [r.step, r.loss, r.testAccuracy]),
  );
  await Deno.remove(root, { recursive: true });
});
