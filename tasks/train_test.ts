import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { loadYamlConfig, resolveConfig } from "@mfi/core";
import { runTrain, TRAIN_CLI, TRAIN_SCHEMA } from "./train.ts";
import { parseCli } from "./_cli.ts";

const SAMPLE = new URL("../data/sample/cifar-10-sample.tar.gz", import.meta.url).pathname;

Deno.test("train rejects unknown flags and invalid values before touching data", async () => {
  await assert.rejects(runTrain(["--epoch", "3"]), /unknown flag --epoch; did you mean --epochs\?/);
  await assert.rejects(runTrain(["--width", "wide"]), /--width must be a number; got "wide"/);
  await assert.rejects(runTrain(["--model", "vgg16"]), /--model must be one of resnet18/);
  await assert.rejects(
    runTrain(["--batch-size", "0"]),
    /--batch-size must be a whole number >= 1, <= 65536; got 0/,
  );
  await assert.rejects(
    runTrain(["--epochs", "-1"]),
    /--epochs must be a whole number >= 1; got -1/,
  );
  await assert.rejects(runTrain(["--subset", "5"]), /--subset was renamed: use trainPerClass/);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.yaml`, "epochs: 3\nlearningRate: 0.1\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/a.yaml`]),
    /a\.yaml: unknown key "learningRate"\. Valid keys: model, dataset, width/,
  );
  // One spelling per concept: YAML keys are camelCase, as in the pipeline's presets.
  await Deno.writeTextFile(`${dir}/b.yaml`, "batch-size: 64\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/b.yaml`]),
    (e: Error) =>
      e.name === "UsageError" && /key "batch-size" is spelled "batchSize"/.test(e.message),
  );
  await Deno.writeTextFile(`${dir}/c.yaml`, "subset: 5\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/c.yaml`]),
    /c\.yaml: key "subset" was renamed: use trainPerClass/,
  );
  await assert.rejects(runTrain(["--config", `${dir}/none.yaml`]), /--config: Cannot read/);
  await Deno.remove(dir, { recursive: true });
  assert.equal(TRAIN_SCHEMA.lr.default, 0.1);
});

Deno.test("train flags: --no-X for every boolean, only given flags override the YAML", () => {
  const parsed = parseCli(TRAIN_CLI, ["--no-nesterov", "--no-augment", "--epochs", "2"]);
  assert.equal(parsed.values.nesterov, false);
  assert.equal(parsed.values.augment, false);
  assert.deepEqual([...parsed.given].sort(), ["augment", "epochs", "nesterov"]);
  // Defaults are not filled in by the parser (they would override the YAML file's values).
  assert.equal(parseCli(TRAIN_CLI, []).values.lr, undefined);
  for (const [key, field] of Object.entries(TRAIN_SCHEMA)) {
    if (field.type !== "boolean") continue;
    const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    assert.equal(parseCli(TRAIN_CLI, [`--no-${name}`]).values[name], false, name);
  }
});

Deno.test("train runs end to end on the embedded sample and writes its outputs", async () => {
  const out = await Deno.makeTempDir();
  const yaml = `${out}/run.yaml`;
  await Deno.writeTextFile(yaml, "model: resnet18\nwidth: 0.0625\nepochs: 3\nbatchSize: 10\n");
  const args = [
    "--config",
    yaml,
    "--epochs", // the command line overrides the file
    "1",
    "--train-per-class",
    "1",
    "--limit-test",
    "20",
    "--data-dir",
    SAMPLE,
    "--backend",
    "wasm",
    "--out",
    out,
  ];
  const summary = (await runTrain(args))!;
  assert.equal(summary.config.epochs, 1);
  assert.equal(summary.config.width, 0.0625);
  assert.equal(summary.trainImages, 10);
  assert.equal(summary.testImages, 20);
  assert.equal(summary.history.length, 1);
  assert.ok(summary.testAccuracy !== null && summary.testAccuracy >= 0);
  const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n");
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).step, 1);
  assert.match(await Deno.readTextFile(`${out}/test_accuracy.svg`), /^<svg/);
  assert.equal(JSON.parse(await Deno.readTextFile(`${out}/config.json`)).trainPerClass, 1);
  assert.ok((await Deno.stat(`${out}/checkpoints/epoch-0001.json`)).isFile);
  // The finished run resumes as a no-op; a changed config is refused.
  const again = (await runTrain([...args, "--resume"]))!;
  assert.equal(again.history.length, 1);
  const configBefore = await Deno.readTextFile(`${out}/config.json`);
  const metricsBefore = await Deno.readTextFile(`${out}/metrics.jsonl`);
  const untouched = async () => {
    assert.equal(await Deno.readTextFile(`${out}/config.json`), configBefore);
    assert.equal(await Deno.readTextFile(`${out}/metrics.jsonl`), metricsBefore);
  };
  // (Until issue 15 the learning rate was refused here; it is now a safe key.)
  await assert.rejects(
    runTrain([...args, "--resume", "--momentum", "0.5"]),
    /config differs \(momentum: saved 0\.9, now 0\.5\)\. Only lr, minLr, epochs/,
  );
  await untouched(); // the refused run used to overwrite config.json
  // A fresh run or a probe over a finished run is refused and writes nothing (a probe used to
  // truncate metrics.jsonl).
  await assert.rejects(runTrain(args), /already holds a training run .*pass --resume/);
  await assert.rejects(runTrain([...args, "--max-steps", "1"]), /already holds a training run/);
  await untouched();
  // A live holder of the folder's lock is named; nothing is written.
  const lock = {
    pid: 1,
    hostname: Deno.hostname(),
    startedAt: "2026-01-01T00:00:00Z",
    command: "x",
  };
  await Deno.writeTextFile(`${out}/.lock`, JSON.stringify(lock));
  await assert.rejects(runTrain([...args, "--resume", "--lr", "0.05"]), /held by pid 1 on /);
  await untouched();
  await Deno.remove(`${out}/.lock`);
  // Never over an input: the run's own config.json as --config.
  await assert.rejects(
    runTrain(["--config", `${out}/config.json`, "--resume"]),
    /Refusing to write .*config\.json: it is the input/,
  );
  await untouched();
  // Resuming with a lower learning rate (as a NaN stop advises) is allowed and recorded.
  const lower = (await runTrain([...args, "--resume", "--lr", "0.05", "--epochs", "2"]))!;
  assert.equal(lower.history.length, 2);
  const changes = [
    { key: "epochs", from: 1, to: 2 },
    { key: "lr", from: 0.1, to: 0.05 },
  ];
  assert.deepEqual(lower.history[1].configChanges, changes);
  const logged = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n");
  assert.deepEqual(JSON.parse(logged[1]).configChanges, changes);
  const history = (await Deno.readTextFile(`${out}/config_history.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(history.length, 1);
  assert.deepEqual(history[0].changes, changes);
  assert.equal(JSON.parse(await Deno.readTextFile(`${out}/config.json`)).lr, 0.05);
  await assert.rejects(Deno.stat(`${out}/.lock`), Deno.errors.NotFound);
  await Deno.remove(out, { recursive: true });
});

Deno.test("train --resume with no checkpoint is an error, and creates nothing", async () => {
  const root = await Deno.makeTempDir();
  const common = [
    "--width",
    "0.0625",
    "--train-per-class",
    "1",
    "--data-dir",
    SAMPLE,
    "--backend",
    "wasm",
  ];
  await assert.rejects(
    runTrain([...common, "--resume", "--out", `${root}/new`]),
    /Cannot resume: .*new\/checkpoints holds no complete checkpoint\. Drop --resume/,
  );
  await assert.rejects(Deno.stat(`${root}/new`), Deno.errors.NotFound);
  await Deno.remove(root, { recursive: true });
});

Deno.test("every configs/train/*.yaml is a valid train config", async () => {
  const dir = new URL("../configs/train/", import.meta.url).pathname;
  let n = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const values = await loadYamlConfig(`${dir}${entry.name}`);
    const config = resolveConfig(TRAIN_SCHEMA, [{ source: entry.name, values }]);
    assert.ok(config.epochs >= 1, entry.name);
    for (const key of Object.keys(values)) {
      assert.match(key, /^[a-z][a-zA-Z0-9]*$/, `${entry.name}: camelCase keys, as the pipeline's`);
    }
    n++;
  }
  assert.ok(n >= 3, `found ${n} configs`);
});

Deno.test("train --resume from an epoch checkpoint reproduces the uninterrupted run exactly", async () => {
  const root = await Deno.makeTempDir();
  const common = [
    "--width",
    "0.0625",
    "--epochs",
    "2",
    "--train-per-class",
    "1",
    "--batch-size",
    "5",
    "--limit-test",
    "10",
    "--data-dir",
    SAMPLE,
    "--backend",
    "wasm",
    "--seed",
    "3",
  ];
  await runTrain([...common, "--out", `${root}/a`]);
  // A run killed during epoch 2: only the epoch-1 checkpoint exists.
  await Deno.mkdir(`${root}/b/checkpoints`, { recursive: true });
  for (const ext of ["safetensors", "json"]) {
    await Deno.copyFile(
      `${root}/a/checkpoints/epoch-0001.${ext}`,
      `${root}/b/checkpoints/epoch-0001.${ext}`,
    );
  }
  const resumed = (await runTrain([...common, "--out", `${root}/b`, "--resume"]))!;
  assert.equal(resumed.history.length, 2);
  const sidecar = async (run: string) =>
    JSON.parse(await Deno.readTextFile(`${root}/${run}/checkpoints/epoch-0002.json`));
  // Weights, batch-norm statistics and optimizer state are byte-identical.
  assert.equal((await sidecar("b")).sha256, (await sidecar("a")).sha256);
  const log = (await Deno.readTextFile(`${root}/b/metrics.jsonl`)).trim().split("\n");
  assert.equal(log.length, 2);
  await Deno.remove(root, { recursive: true });
});

Deno.test("train --max-steps stops after N steps, logs every step's loss and writes no checkpoint", async () => {
  const root = await Deno.makeTempDir();
  // 10 images in batches of 4: 3 steps per epoch, so 4 steps end inside epoch 2.
  const common = [
    "--width",
    "0.0625",
    "--epochs",
    "2",
    "--train-per-class",
    "1",
    "--batch-size",
    "4",
    "--data-dir",
    SAMPLE,
    "--backend",
    "wasm",
    "--seed",
    "5",
  ];
  await assert.rejects(
    runTrain([...common, "--max-steps", "7", "--out", `${root}/x`]),
    /"maxSteps" \(7\) exceeds the run's 6 steps/,
  );
  await assert.rejects(
    runTrain([...common, "--max-steps", "2", "--resume", "--out", `${root}/x`]),
    /"maxSteps" cannot be combined with --resume/,
  );
  await assert.rejects(
    runTrain([...common, "--max-steps", "0"]),
    /--max-steps must be a whole number >= 1; got 0/,
  );

  const four = (await runTrain([...common, "--max-steps", "4", "--out", `${root}/a`]))!;
  assert.equal(four.stepLosses.length, 4);
  assert.ok(four.stepLosses.every((l) => Number.isFinite(l) && l > 0), `${four.stepLosses}`);
  assert.deepEqual(four.history.map((r) => r.step), [3, 4]);
  assert.ok(four.history.every((r) => r.testAccuracy === null));
  const steps = (await Deno.readTextFile(`${root}/a/steps.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(steps, four.stepLosses.map((loss, step) => ({ step, loss })));
  // The epoch-1 record's mean loss is the mean of the first three steps (batches of 4, 4, 2).
  const [l0, l1, l2] = four.stepLosses;
  const mean = (4 * l0 + 4 * l1 + 2 * l2) / 10;
  assert.ok(Math.abs(four.history[0].loss - mean) < 1e-5 * mean, `${four.history[0].loss} ${mean}`);
  await assert.rejects(Deno.stat(`${root}/a/checkpoints`), Deno.errors.NotFound);

  // A shorter probe takes the same first steps (same data, weights and schedule), and a run
  // frees every tensor it made (model, optimizer, data) whatever its length.
  let before = tf.memory().numTensors;
  const two = (await runTrain([...common, "--max-steps", "2", "--out", `${root}/b`]))!;
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(two.stepLosses, four.stepLosses.slice(0, 2));
  assert.deepEqual(two.history.map((r) => r.step), [2]);
  before = tf.memory().numTensors;
  const again = (await runTrain([...common, "--max-steps", "4", "--out", `${root}/c`]))!;
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(again.stepLosses, four.stepLosses);
  await Deno.remove(root, { recursive: true });
});
