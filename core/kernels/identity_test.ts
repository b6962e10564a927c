import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { registerWasmTrainingKernels } from "./register.ts";

Deno.test("wasm Identity shares the data: no copy, and each tensor keeps it alive until its own dispose", async () => {
  await tf.setBackend("wasm");
  try {
    registerWasmTrainingKernels();
    const before = tf.memory().numDataBuffers;
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const y = tf.engine().runKernel("Identity", { x }) as tf.Tensor;
    assert.equal(y.dataId, x.dataId, "the same data, not a copy");
    assert.deepEqual(y.shape, [2, 3]);
    assert.equal(tf.memory().numDataBuffers - before, 1, "one buffer on the heap for both");
    x.dispose();
    assert.equal(tf.memory().numDataBuffers - before, 1, "kept while y holds it");
    assert.deepEqual(await y.array(), [[1, 2, 3], [4, 5, 6]], "still readable after x is gone");
    y.dispose();
    assert.equal(tf.memory().numDataBuffers, before, "freed when the last holder is disposed");
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("wasm Identity: assigning a variable leaves a saved copy of its old value untouched", async () => {
  await tf.setBackend("wasm");
  try {
    registerWasmTrainingKernels();
    const v = tf.variable(tf.tensor1d([1, 2, 3]));
    const saved = tf.engine().runKernel("Identity", { x: v }) as tf.Tensor;
    v.assign(tf.tensor1d([7, 8, 9]));
    assert.deepEqual(await saved.array(), [1, 2, 3]);
    assert.deepEqual(await v.array(), [7, 8, 9]);
    tf.dispose([v, saved]);
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("wasm Identity keeps the dtype (int32 and bool)", async () => {
  await tf.setBackend("wasm");
  try {
    registerWasmTrainingKernels();
    for (const x of [tf.tensor1d([1, -2], "int32"), tf.tensor1d([true, false], "bool")]) {
      const y = tf.engine().runKernel("Identity", { x }) as tf.Tensor;
      assert.equal(y.dtype, x.dtype);
      assert.deepEqual(await y.array(), await x.array());
      tf.dispose([x, y]);
    }
  } finally {
    await tf.setBackend("cpu");
  }
});
