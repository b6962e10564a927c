// Inference through the serving API (`loadClassifier`/`classify`) on tfjs-backend-webgpu gives
// the same top-1 as on wasm, and classifying does not grow tensors on WebGPU.
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { Rng } from "@mfi/core";
import { assertNoLeak } from "@mfi/core/testing";
import { CIFAR_CLASS_NAMES } from "@mfi/data";
import type { StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { type Classifier, loadClassifier, writeBundle } from "@mfi/serve";
import { webgpuTest } from "./_webgpu.ts";

const IMAGES = 12;

async function tinyBundle(): Promise<Uint8Array> {
  await tf.setBackend("cpu");
  const spec = resnetSpec("resnet18", 10, 1 / 16);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 12 });
  });
  try {
    return await writeBundle(model, spec, {
      classNames: CIFAR_CLASS_NAMES.cifar10,
      normalization: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
      accuracy: null,
    });
  } finally {
    for (const [, v] of model.namedVariables()) v.dispose();
  }
}

/** Smooth random images (a random model separates them better than pixel noise). */
function images(): Uint8Array {
  const rng = new Rng(41);
  const out = new Uint8Array(IMAGES * 32 * 32 * 3);
  for (let n = 0; n < IMAGES; n++) {
    const [a, b, c] = rng.uniformArray(3, 0, 6);
    for (let i = 0; i < 32 * 32; i++) {
      const y = Math.floor(i / 32) / 32;
      const x = (i % 32) / 32;
      for (let ch = 0; ch < 3; ch++) {
        const v = Math.sin(a * x + b * y + c * ch) * 0.5 + 0.5;
        out[(n * 1024 + i) * 3 + ch] = Math.round(255 * v);
      }
    }
  }
  return out;
}

async function predict(classifier: Classifier, pixels: Uint8Array) {
  try {
    return await classifier.classify(pixels, { topK: 3 });
  } finally {
    classifier.dispose();
  }
}

webgpuTest(
  "webgpu classify: loadClassifier on WebGPU gives wasm's top-1, without tensor growth",
  async () => {
    const bundle = await tinyBundle();
    const pixels = images();
    const gpuClassifier = await loadClassifier(bundle, {
      backend: "webgpu",
      allowSoftwareAdapter: true,
      env: {},
    });
    assert.equal(gpuClassifier.backend.name, "webgpu");
    await assertNoLeak(() => gpuClassifier.classify(pixels.subarray(0, 2 * 3072), { topK: 1 }), {
      steps: 2,
      label: "classify on webgpu",
    });
    const gpu = await predict(gpuClassifier, pixels);
    const wasm = await predict(
      await loadClassifier(bundle, { backend: "wasm", threads: 1, env: {} }),
      pixels,
    );
    await tf.setBackend("cpu");
    assert.equal(gpu.length, IMAGES);
    const top1 = (p: typeof gpu) => p.map((q) => q[0].index);
    assert.deepEqual(top1(gpu), top1(wasm));
    for (let i = 0; i < IMAGES; i++) {
      for (let k = 0; k < 3; k++) {
        assert.ok(Math.abs(gpu[i][k].probability - wasm[i][k].probability) < 1e-4, `${i}/${k}`);
      }
    }
    assert.ok(new Set(top1(wasm)).size > 1, "the images get different classes");
  },
);
