import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { disposeModule, readCheckpoint, saveCheckpoint } from "@mfi/core";
import { buildResNet, type StagedModel } from "@mfi/resnet";
import { CLASS_NAMES } from "./_cifar_labels.ts";
import { instantiateBundle, readBundle } from "./bundle.ts";
import { bundleFromCheckpoint } from "./checkpoint_bundle.ts";
import { buildModel, type ModelSpec, resnetSpec } from "@mfi/incubation";

await tf.setBackend("cpu");

function build(spec: ModelSpec, seed: number): StagedModel {
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed });
  });
  return model;
}

Deno.test("a pipeline-style checkpoint exports to a bundle without optimizer state", async () => {
  const spec = resnetSpec("resnet18", 10, 1 / 32);
  const model = build(spec, 3);
  const momentum = new Map(
    model.namedVariables().filter(([, v]) => v.trainable).map(([n, v]) => [
      `momentum_buffer.${n}`,
      { dtype: "F32" as const, shape: v.shape, data: new Float32Array(v.size).fill(0.5) },
    ]),
  );
  const dir = await Deno.makeTempDir();
  try {
    // What the pipeline writes: config = phase fingerprint, extra = phase result.
    const path = await saveCheckpoint(dir, model.namedVariables(), {
      epoch: 3,
      step: 30,
      config: { phase: "baseline", spec, data: { dataset: "cifar10", testPerClass: 20 } },
      optimizer: { kind: "sgd", iterations: 30, tensors: momentum },
      extra: { phase: "baseline", spec, testAccuracy: 0.615, backend: "wasm (SIMD, 2 threads)" },
    }, { name: "output" });
    const checkpoint = await readCheckpoint(path);
    const { bytes, info } = await bundleFromCheckpoint(checkpoint);
    assert.deepEqual(info.spec, spec);
    assert.deepEqual(info.classNames, CLASS_NAMES.cifar10);
    assert.deepEqual(info.normalization.mean, [0.4914, 0.4822, 0.4465]);
    assert.deepEqual(info.accuracy, {
      top1: 0.615,
      dataset: "cifar10",
      split: "test",
      examples: 200,
      subset: "first-per-class",
    });
    assert.match(info.name, /from output, epoch 3/);
    // The backend the phase ran on, not the one exporting (cpu here).
    assert.deepEqual(info.backend, { label: "wasm (SIMD, 2 threads)", softwareAdapter: false });
    const bundle = await readBundle(bytes);
    assert.ok(![...bundle.tensors.keys()].some((k) => k.includes("momentum")));
    assert.equal(bundle.tensors.size, model.namedVariables().length);
    const copy = instantiateBundle(bundle);
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 1);
    const [a, b] = tf.tidy(() => [
      model.apply(x, { training: false }),
      copy.apply(x, { training: false }),
    ]);
    assert.deepEqual(await b.data(), await a.data());
    tf.dispose([x, a, b]);
    disposeModule(copy);

    // Overrides win over the sidecar.
    const over = await bundleFromCheckpoint(checkpoint, {
      classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
      accuracy: null,
      name: "custom",
      backend: null,
    });
    assert.equal(over.info.classNames[9], "c9");
    assert.equal(over.info.backend, null);
    assert.equal(over.info.accuracy, null);
    assert.equal(over.info.name, "custom");
  } finally {
    disposeModule(model);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export refuses checkpoints without a spec, with part of a model, or unknown labels", async () => {
  const spec = resnetSpec("resnet18", 7, 1 / 32);
  const model = build(spec, 4);
  const dir = await Deno.makeTempDir();
  const before = tf.memory().numTensors;
  try {
    const noSpec = await readCheckpoint(
      await saveCheckpoint(dir, model.namedVariables(), { epoch: 1, step: 1 }, { name: "a" }),
    );
    await assert.rejects(bundleFromCheckpoint(noSpec), /records no model spec.*--spec/);
    const withSpec = await bundleFromCheckpoint(noSpec, {
      spec,
      classNames: ["a", "b", "c", "d", "e", "f", "g"],
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    });
    assert.equal(withSpec.info.accuracy, null);
    await assert.rejects(
      bundleFromCheckpoint(noSpec, { spec }),
      /dataset is unknown.*--class-names/,
    );

    const stageOnly = model.namedVariables().filter(([n]) => n.startsWith("stages.3."));
    const partial = await readCheckpoint(
      await saveCheckpoint(dir, stageOnly, { epoch: 1, step: 1, extra: { spec } }, { name: "b" }),
    );
    await assert.rejects(
      bundleFromCheckpoint(partial, { dataset: "cifar10", classNames: "abcdefg".split("") }),
      /missing: stem\..*whole model/,
    );
    assert.equal(tf.memory().numTensors, before, "failed exports free their model");
  } finally {
    disposeModule(model);
    await Deno.remove(dir, { recursive: true });
  }
});

const CIFAR_DIR = "/tmp/cifar";
const haveNames = await Deno.stat(`${CIFAR_DIR}/cifar-100-binary/fine_label_names.txt`).then(
  () => true,
  () => false,
);

Deno.test({
  name: "built-in label names equal the official CIFAR label files",
  ignore: !haveNames,
  async fn() {
    const lines = async (f: string) =>
      (await Deno.readTextFile(`${CIFAR_DIR}/${f}`)).split("\n").map((s) => s.trim()).filter(
        Boolean,
      );
    assert.deepEqual(await lines("cifar-10-batches-bin/batches.meta.txt"), CLASS_NAMES.cifar10);
    assert.deepEqual(await lines("cifar-100-binary/fine_label_names.txt"), CLASS_NAMES.cifar100);
  },
});

Deno.test("an old `deno task train` checkpoint (no spec, ResNet name and width) exports too", async () => {
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 32, seed: 5 });
  });
  const dir = await Deno.makeTempDir();
  try {
    const path = await saveCheckpoint(dir, model.namedVariables(), {
      epoch: 2,
      step: 8,
      config: { model: "resnet18", dataset: "cifar10", width: 1 / 32, limitTest: 500, seed: 5 },
      history: [{ epoch: 1, testAccuracy: 0.2 }, { epoch: 2, testAccuracy: 0.3 }],
    });
    const { bytes, info } = await bundleFromCheckpoint(await readCheckpoint(path));
    assert.deepEqual(info.spec, resnetSpec("resnet18", 10, 1 / 32));
    assert.equal(info.backend, null, "the sidecar records no backend: unknown, not cpu");
    assert.deepEqual(info.accuracy, {
      top1: 0.3,
      dataset: "cifar10",
      split: "test",
      examples: 500,
      subset: "first",
    });
    const copy = instantiateBundle(await readBundle(bytes));
    const x = tf.randomNormal([1, 32, 32, 3], 0, 1, "float32", 2);
    const [a, b] = tf.tidy(() => [
      model.apply(x, { training: false }),
      copy.apply(x, { training: false }),
    ]);
    assert.deepEqual(await b.data(), await a.data());
    tf.dispose([x, a, b]);
    disposeModule(copy);
  } finally {
    disposeModule(model);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint made on a software WebGPU adapter exports a bundle that says so", async () => {
  const spec = resnetSpec("resnet18", 10, 1 / 32);
  const model = build(spec, 4);
  const dir = await Deno.makeTempDir();
  try {
    const label =
      "webgpu (software adapter: llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541, device 0)";
    const path = await saveCheckpoint(dir, model.namedVariables(), {
      epoch: 1,
      step: 1,
      config: { spec, data: { dataset: "cifar10" } },
      extra: { backend: label },
    });
    const { bytes, info } = await bundleFromCheckpoint(await readCheckpoint(path));
    assert.deepEqual(info.backend, { label, softwareAdapter: true });
    assert.deepEqual((await readBundle(bytes)).info.backend, { label, softwareAdapter: true });
    // A hardware adapter's label is not a software adapter.
    const gpu = "webgpu (NVIDIA H200, vendor nvidia, hopper)";
    const path2 = await saveCheckpoint(`${dir}/gpu`, model.namedVariables(), {
      epoch: 1,
      step: 1,
      config: { spec, data: { dataset: "cifar10" } },
      extra: { backend: gpu },
    });
    const onGpu = await bundleFromCheckpoint(await readCheckpoint(path2));
    assert.deepEqual(onGpu.info.backend, { label: gpu, softwareAdapter: false });
  } finally {
    disposeModule(model);
    await Deno.remove(dir, { recursive: true });
  }
});
