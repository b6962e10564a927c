import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { Rng, selectBackend } from "@mfi/core";
import { cropFlip, type CropFlipParams, drawCropFlip } from "./augment.ts";
import { referenceCropFlip } from "./testdata/fixtures.ts";

for (const backend of ["cpu", "wasm"]) {
  Deno.test(`cropFlip on ${backend}: matches the plain reference exactly, all offsets and flips`, async () => {
    if (backend === "wasm") await selectBackend({ backend: "wasm", threads: 1, env: {} });
    else await tf.setBackend(backend);
    const shape = [162, 32, 32, 3];
    const rng = new Rng(3);
    const pixels = Float32Array.from({ length: 162 * 3072 }, () => rng.int(256));
    // Every (top, left, flip) combination once: 9 * 9 * 2 = 162 images.
    const params: CropFlipParams = {
      top: Int32Array.from({ length: 162 }, (_, i) => Math.floor(i / 18)),
      left: Int32Array.from({ length: 162 }, (_, i) => Math.floor(i / 2) % 9),
      flip: Uint8Array.from({ length: 162 }, (_, i) => i % 2),
    };
    const x = tf.tensor4d(pixels, shape as [number, number, number, number]);
    const before = tf.memory().numTensors;
    const y = cropFlip(x, params);
    assert.equal(tf.memory().numTensors, before + 1);
    assert.deepEqual(y.shape, shape);
    assert.deepEqual(y.dataSync(), referenceCropFlip(pixels, shape, params, 4));
    tf.dispose([x, y]);
    await tf.setBackend("cpu");
  });
}

Deno.test("drawCropFlip: seeded, in range, covers all offsets and both flips", () => {
  const a = drawCropFlip(new Rng(7), 2000);
  assert.deepEqual(a, drawCropFlip(new Rng(7), 2000));
  assert.notDeepEqual(a, drawCropFlip(new Rng(8), 2000));
  assert.deepEqual(new Set(a.top).size, 9);
  assert.deepEqual(new Set(a.left).size, 9);
  const flips = a.flip.reduce((s, v) => s + v, 0);
  assert.ok(flips > 850 && flips < 1150, `flips ${flips}`);
  assert.ok(a.top.every((t) => t >= 0 && t <= 8));
  assert.throws(() => drawCropFlip(new Rng(1), -1), /count/);
  assert.throws(() => drawCropFlip(new Rng(1), 1, 1.5), /padding/);
});

Deno.test("cropFlip: rejects mismatched or out-of-range parameters", async () => {
  await tf.setBackend("cpu");
  const x = tf.zeros([2, 4, 4, 1]) as tf.Tensor4D;
  const one = { top: Int32Array.of(0), left: Int32Array.of(0), flip: Uint8Array.of(0) };
  assert.throws(() => cropFlip(x, one), /batch of 2/);
  const far = { top: Int32Array.of(0, 9), left: Int32Array.of(0, 0), flip: Uint8Array.of(0, 0) };
  assert.throws(() => cropFlip(x, far), /image 1 has offset \(9, 0\)/);
  x.dispose();
});
