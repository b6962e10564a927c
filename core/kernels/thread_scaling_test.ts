import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { selectBackend } from "../backend.ts";
import { ownKernelPoolStats } from "./pool_stats.ts";
import { registerWasmTrainingKernels } from "./register.ts";
import { measureOwnKernelScaling } from "./thread_scaling.ts";

/** A step of one own-kernel convolution (one pool call where the pool is used), read back. */
function convStep() {
  const x = tf.randomNormal([4, 12, 12, 16], 0, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 16, 16], 0, 0.1, "float32", 2) as tf.Tensor4D;
  const results: Float32Array[] = [];
  const step = async () => {
    const y = tf.conv2d(x, w, 1, "same");
    try {
      results.push(await y.data() as Float32Array);
    } finally {
      y.dispose();
    }
  };
  return { step, results, dispose: () => tf.dispose([x, w]) };
}

Deno.test("measureOwnKernelScaling alternates the calling thread and the pool, same bits, pool restored", async () => {
  await selectBackend({ backend: "wasm", threads: 2, env: {} });
  registerWasmTrainingKernels({ conv2d: "own" });
  const { step, results, dispose } = convStep();
  try {
    await step();
    const before = tf.memory().numTensors;
    ownKernelPoolStats({ reset: true });
    const scaling = await measureOwnKernelScaling(step, { rounds: 3, steps: 2, warmup: 1 });
    // Only the pool phases' steps reach the pool: 3 rounds x (1 + 2) steps of one call each.
    assert.equal(ownKernelPoolStats()?.calls, 3 * 3);
    assert.equal(tf.memory().numTensors, before, "no tensor left behind");
    assert.equal(scaling.threads, 2);
    assert.equal(scaling.rounds.length, 3);
    for (const r of scaling.rounds) {
      assert.ok(r.oneThreadMs > 0 && r.poolMs > 0);
      assert.equal(r.ratio, r.oneThreadMs / r.poolMs);
    }
    const sorted = scaling.rounds.map((r) => r.ratio).sort((a, b) => a - b);
    assert.equal(scaling.ratio, sorted[1], "the median of three rounds");
    // 1 + 3 x 2 x 3 steps, every result the same bits (one thread or two).
    assert.equal(results.length, 19);
    for (const r of results) assert.deepEqual(r, results[0]);
    // The pool is back: the next call is a pool call.
    await step();
    assert.equal(ownKernelPoolStats()?.calls, 10);
  } finally {
    dispose();
    await selectBackend({ backend: "cpu" });
  }
});

Deno.test("measureOwnKernelScaling gives the pool back when the step throws, and refuses a second one at once", async () => {
  await selectBackend({ backend: "wasm", threads: 2, env: {} });
  registerWasmTrainingKernels({ conv2d: "own" });
  const { step, dispose } = convStep();
  try {
    let calls = 0;
    const failing = async () => {
      if (++calls === 2) throw new Error("step failed");
      await step();
    };
    await assert.rejects(() => measureOwnKernelScaling(failing, { rounds: 1, steps: 2 }), {
      message: "step failed",
    });
    // Two at once: the second is refused (it would switch the pool under the first).
    const first = measureOwnKernelScaling(step, { rounds: 1, steps: 1 });
    await assert.rejects(() => measureOwnKernelScaling(step), /already running: await the first/);
    assert.equal((await first).rounds.length, 1);
    ownKernelPoolStats({ reset: true });
    await step();
    assert.equal(ownKernelPoolStats()?.calls, 1, "calls reach the pool again");
  } finally {
    dispose();
    await selectBackend({ backend: "cpu" });
  }
});

Deno.test("measureOwnKernelScaling rejects bad options by name and a backend without a pool", async () => {
  await selectBackend({ backend: "cpu" });
  const step = () => {};
  await assert.rejects(
    () => measureOwnKernelScaling(step),
    /wasm backend with 2 or more threads \(the backend is cpu\)/,
  );
  for (
    const [options, key] of [
      [{ rounds: 0 }, "rounds"],
      [{ rounds: 1.5 }, "rounds"],
      [{ steps: 1001 }, "steps"],
      [{ warmup: -1 }, "warmup"],
    ] as const
  ) {
    await assert.rejects(
      () => measureOwnKernelScaling(step, options),
      (e: Error) => e instanceof RangeError && e.message.includes(`${key} must be a whole number`),
    );
  }
  await selectBackend({ backend: "wasm", threads: 1, env: {} });
  try {
    await assert.rejects(() => measureOwnKernelScaling(step), /single-threaded/);
  } finally {
    await selectBackend({ backend: "cpu" });
  }
});
