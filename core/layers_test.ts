import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { BatchNorm } from "./batch_norm.ts";
import { Conv2d } from "./conv2d.ts";
import { Linear } from "./linear.ts";
import { countParameters, disposeModule } from "./module.ts";
import { assertNoLeak } from "./testing.ts";

await tf.setBackend("cpu");

Deno.test("Conv2d pads symmetrically at stride 2 like PyTorch", () => {
  // A 4x4 input with a 3x3 all-ones kernel at stride 2, padding 1: windows centred at (0,0),(0,2),(2,0),(2,2);
  const conv = new Conv2d({ inChannels: 1, outChannels: 1, kernelSize: 3, stride: 2, seed: 0 });
  conv.weight.assign(tf.ones([3, 3, 1, 1]));
  const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
  const y = conv.apply(x);
  // PyTorch: F.conv2d(arange(16.).view(1,1,4,4), ones(1,1,3,3), stride=2, padding=1) = [[10, 24], [51, 90]];
  // tfjs "same" (pad bottom/right only) would give 45 for the first window.
  assert.deepEqual(Array.from(y.dataSync()), [10, 24, 51, 90]);
  tf.dispose([x, y]);
});

Deno.test("Conv2d init is Kaiming-normal fan_out and seeded", () => {
  const a = new Conv2d({ inChannels: 16, outChannels: 64, kernelSize: 3, seed: 3 });
  const b = new Conv2d({ inChannels: 16, outChannels: 64, kernelSize: 3, seed: 3 });
  assert.deepEqual(a.weight.dataSync(), b.weight.dataSync());
  const w = Array.from(a.weight.dataSync());
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - Math.sqrt(2 / (64 * 9))) < 0.005, `std ${std}`);
  assert.deepEqual(countParameters(a), 9 * 16 * 64);
  assert.throws(
    () => new Conv2d({ inChannels: 0, outChannels: 1, kernelSize: 3, seed: 0 }),
    /inChannels/,
  );
});

Deno.test("BatchNorm matches PyTorch running-statistics semantics", () => {
  const bn = new BatchNorm({ channels: 2 });
  const x = tf.tensor4d([1, 10, 2, 20, 3, 30, 6, 60], [2, 2, 1, 2]);
  const y = tf.tidy(() => bn.apply(x, { training: true }));
  // channel 0 values 1,2,3,6: mean 3, biased var 3.5, unbiased 14/3
  assert.ok(Math.abs(bn.runningMean.dataSync()[0] - 0.3) < 1e-6);
  assert.ok(Math.abs(bn.runningVar.dataSync()[0] - (0.9 + 0.1 * 14 / 3)) < 1e-5);
  assert.ok(Math.abs(y.dataSync()[0] - (1 - 3) / Math.sqrt(3.5 + 1e-5)) < 1e-5);
  const e = tf.tidy(() => bn.apply(x, { training: false }));
  assert.ok(
    Math.abs(e.dataSync()[0] - (1 - 0.3) / Math.sqrt(bn.runningVar.dataSync()[0] + 1e-5)) < 1e-5,
  );
  assert.deepEqual(countParameters(bn), 4);
  tf.dispose([x, y, e]);
});

Deno.test("Linear uses PyTorch's default bound and shape", () => {
  const fc = new Linear({ inFeatures: 100, outFeatures: 10, seed: 1 });
  const w = fc.weight.dataSync();
  assert.ok(w.every((v) => Math.abs(v) <= 0.1));
  assert.deepEqual(countParameters(fc), 1010);
});

Deno.test("building and disposing layers leaves no tensor behind", async () => {
  const cycle = () => {
    const before = tf.memory().numTensors;
    const layers = [
      new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, bias: true, seed: 0 }),
      new Linear({ inFeatures: 3, outFeatures: 2, seed: 0 }),
      new BatchNorm({ channels: 3 }),
    ];
    assert.ok(tf.memory().numTensors > before);
    for (const layer of layers) disposeModule(layer);
    assert.equal(tf.memory().numTensors, before);
  };
  await assertNoLeak(cycle, { label: "building and disposing layers" });
});
