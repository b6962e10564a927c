import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { selectBackend } from "../backend.ts";
import { ownKernelPoolStats } from "./pool_stats.ts";
import { registerWasmTrainingKernels } from "./register.ts";

Deno.test("ownKernelPoolStats counts the pool calls of threaded wasm, and nothing elsewhere", async () => {
  await selectBackend({ backend: "wasm", threads: 2, env: {} });
  registerWasmTrainingKernels({ conv2d: "own" });
  try {
    ownKernelPoolStats({ reset: true });
    assert.equal(ownKernelPoolStats()?.calls, 0, "reset");
    const x = tf.ones([8, 16, 16, 16]) as tf.Tensor4D;
    const w = tf.ones([3, 3, 16, 16]) as tf.Tensor4D;
    // One convolution: the filter packing (small: on the calling thread) and one pool call for
    // all of its rectangles.
    const y = tf.conv2d(x, w, 1, "same");
    const stats = ownKernelPoolStats();
    assert.ok(stats !== undefined);
    assert.equal(stats.threads, 2);
    assert.equal(stats.calls, 1);
    assert.ok(stats.wakeups <= 1 && stats.callerOnly <= 1 && stats.waitMs >= 0);
    assert.equal((await y.data())[17 * 16], 16 * 9, "an interior pixel sums 9 taps x 16 channels");
    tf.dispose([x, w, y]);
    await selectBackend({ backend: "wasm", threads: 1, env: {} });
    assert.equal(ownKernelPoolStats(), undefined, "single-threaded wasm has no pool");
    await selectBackend({ backend: "cpu" });
    assert.equal(ownKernelPoolStats(), undefined);
  } finally {
    await selectBackend({ backend: "cpu" });
  }
});
