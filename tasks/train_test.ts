import assert from "node:assert/strict";
import { loadYamlConfig, resolveConfig } from "@mfi/core";
import { runTrain, TRAIN_SCHEMA } from "./train.ts";

const SAMPLE = new URL("../data/sample/cifar-10-sample.tar.gz", import.meta.url).pathname;

Deno.test("train rejects unknown flags and invalid values before touching data", async () => {
  await assert.rejects(runTrain(["--epoch", "3"]), /--epoch.*Valid flags: --model, --dataset/s);
  await assert.rejects(runTrain(["--width", "wide"]), /--width: "wide" is not a number/);
  await assert.rejects(runTrain(["--model", "vgg16"]), /"model" must be one of resnet18/);
  await assert.rejects(runTrain(["--batch-size", "0"]), /"batchSize" must be an integer in \[1/);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.yaml`, "epochs: 3\nlearning-rate: 0.1\n");
  await assert.rejects(
    runTrain(["--config", `${dir}/a.yaml`]),
    /a\.yaml: unknown key "learning-rate"\. Valid keys: model, dataset, width/,
  );
  await Deno.remove(dir, { recursive: true });
  assert.equal(TRAIN_SCHEMA.lr.default, 0.1);
});

Deno.test("train runs end to end on the embedded sample and writes its outputs", async () => {
  const out = await Deno.makeTempDir();
  const yaml = `${out}/run.yaml`;
  await Deno.writeTextFile(yaml, "model: resnet18\nwidth: 0.0625\nepochs: 3\nbatch-size: 10\n");
  const args = [
    "--config",
    yaml,
    "--epochs", // the command line overrides the file
    "1",
    "--subset",
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
  assert.equal(JSON.parse(await Deno.readTextFile(`${out}/config.json`)).subset, 1);
  assert.ok((await Deno.stat(`${out}/checkpoints/epoch-0001.json`)).isFile);
  // The finished run resumes as a no-op; a changed config is refused.
  const again = (await runTrain([...args, "--resume"]))!;
  assert.equal(again.history.length, 1);
  await assert.rejects(runTrain([...args, "--resume", "--lr", "0.5"]), /config differs \(lr/);
  await Deno.remove(out, { recursive: true });
});

Deno.test("every configs/train/*.yaml is a valid train config", async () => {
  const dir = new URL("../configs/train/", import.meta.url).pathname;
  let n = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const values = await loadYamlConfig(`${dir}${entry.name}`);
    const config = resolveConfig(TRAIN_SCHEMA, [{ source: entry.name, values }]);
    assert.ok(config.epochs >= 1, entry.name);
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
    "--subset",
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
