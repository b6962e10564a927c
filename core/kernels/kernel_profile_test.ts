import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import {
  BETWEEN_KERNELS,
  type KernelCall,
  kernelFlops,
  profileKernels,
  summarizeKernelProfile,
} from "./kernel_profile.ts";

function sumShares(rows: { share: number }[]): number {
  return rows.reduce((a, r) => a + r.share, 0);
}

Deno.test("profileKernels counts every kernel of a tiny model's training step and restores the kernels", async () => {
  await tf.setBackend("cpu");
  const w1 = tf.variable(tf.randomNormal([3, 3, 2, 4], 0, 0.1, "float32", 1));
  const w2 = tf.variable(tf.randomNormal([4, 3], 0, 0.1, "float32", 2));
  const x = tf.randomNormal([2, 6, 6, 2], 0, 1, "float32", 3) as tf.Tensor4D;
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const h = tf.relu(tf.conv2d(x, w1 as tf.Tensor4D, 1, "same"));
        return tf.sum(tf.square(tf.matMul(tf.mean(h, [1, 2]), w2))) as tf.Scalar;
      });
      w1.assign(tf.sub(w1, tf.mul(grads[w1.name], 0.1)));
      w2.assign(tf.sub(w2, tf.mul(grads[w2.name], 0.1)));
      return value;
    });
  const before = tf.getKernelsForBackend("cpu").map((k) => k.kernelFunc);
  try {
    step().dispose(); // warm-up outside the profile
    const tensors = tf.memory().numTensors;
    const { calls, wallMs } = await profileKernels("cpu", () => {
      for (let i = 0; i < 2; i++) step().dispose();
    });
    assert.equal(tf.memory().numTensors, tensors);
    // The kernel functions are the originals again.
    assert.deepEqual(tf.getKernelsForBackend("cpu").map((k) => k.kernelFunc), before);
    const rows = summarizeKernelProfile(calls, wallMs, { steps: 2 });
    const count = (name: string) => rows.find((r) => r.name === name)?.count;
    // Per step: one forward conv, its two gradients, one matmul forward and two in the backward.
    assert.equal(count("Conv2D"), 1);
    assert.equal(count("Conv2DBackpropInput"), undefined); // x is not a variable: no dx
    assert.equal(count("Conv2DBackpropFilter"), 1);
    assert.equal(count("BatchMatMul"), 3);
    assert.equal(count("Relu"), 1);
    assert.ok(Math.abs(sumShares(rows) - 1) < 1e-9, `shares sum to ${sumShares(rows)}`);
    assert.equal(rows.at(-1)!.name, BETWEEN_KERNELS);
    const conv = calls.find((c) => c.name === "Conv2D")!;
    assert.equal(conv.label, "Conv2D 3x3 2->4 s1");
    assert.equal(conv.flops, 2 * (2 * 6 * 6 * 4) * (3 * 3 * 2));
    const filter = calls.find((c) => c.name === "Conv2DBackpropFilter")!;
    assert.equal(filter.flops, conv.flops);
    const byLabel = summarizeKernelProfile(calls, wallMs, { steps: 2, by: "label" });
    assert.equal(byLabel.find((r) => r.name === "Conv2D 3x3 2->4 s1")?.count, 1);
  } finally {
    tf.dispose([w1, w2, x]);
  }
});

Deno.test("profileKernels restores the kernels when the function throws", async () => {
  await tf.setBackend("cpu");
  const before = tf.getKernelsForBackend("cpu").map((k) => k.kernelFunc);
  await assert.rejects(
    () => profileKernels("cpu", () => Promise.reject(new Error("boom"))),
    /boom/,
  );
  assert.deepEqual(tf.getKernelsForBackend("cpu").map((k) => k.kernelFunc), before);
});

Deno.test("summarizeKernelProfile averages over steps, sorts by time and sums shares to 1", () => {
  const calls: KernelCall[] = [
    { name: "A", label: "A", ms: 3, flops: 6e6 },
    { name: "B", label: "B", ms: 1, flops: 0 },
    { name: "A", label: "A", ms: 1, flops: 2e6 },
  ];
  const rows = summarizeKernelProfile(calls, 10, { steps: 2 });
  assert.deepEqual(rows.map((r) => [r.name, r.count, r.ms, r.share]), [
    ["A", 1, 2, 0.4],
    ["B", 0.5, 0.5, 0.1],
    [BETWEEN_KERNELS, 0, 2.5, 0.5],
  ]);
  assert.equal(rows[0].gflops, 2); // 8e6 flops in 4 ms
  assert.equal(rows[1].gflops, undefined);
  // Kernels summing past the wall time (timer granularity): no negative remainder.
  const over = summarizeKernelProfile(calls, 4);
  assert.equal(over.at(-1)!.ms, 0);
  assert.ok(Math.abs(sumShares(over) - 1) < 1e-12);
});

Deno.test("profileKernels charges a kernel that runs another through the registry its self time only", async () => {
  await tf.setBackend("cpu");
  const busy = (ms: number) => {
    const t0 = performance.now();
    while (performance.now() - t0 < ms) { /* spin */ }
  };
  const run = (name: string, args: Parameters<tf.KernelFunc>[0]) =>
    tf.getKernel(name, "cpu")!.kernelFunc(args);
  tf.registerKernel({
    kernelName: "MfiTestInner",
    backendName: "cpu",
    kernelFunc: (args) => (busy(20), run("Relu", args)),
  });
  tf.registerKernel({
    kernelName: "MfiTestOuter",
    backendName: "cpu",
    kernelFunc: (args) => run("MfiTestInner", args),
  });
  const x = tf.ones([4]);
  try {
    const { calls, wallMs } = await profileKernels("cpu", () => {
      (tf.engine().runKernel("MfiTestOuter", { x }) as tf.Tensor).dispose();
    });
    assert.deepEqual(calls.map((c) => c.name), ["Relu", "MfiTestInner", "MfiTestOuter"]);
    assert.ok(calls[1].ms >= 20, `inner ${calls[1].ms} ms`);
    // Without subtracting the nested calls the three would count the 20 ms three times.
    const kernels = calls.reduce((a, c) => a + c.ms, 0);
    assert.ok(kernels <= wallMs + 1e-6, `kernels ${kernels} ms, wall ${wallMs} ms`);
  } finally {
    x.dispose();
    tf.unregisterKernel("MfiTestInner", "cpu");
    tf.unregisterKernel("MfiTestOuter", "cpu");
  }
});

Deno.test("summarizeKernelProfile rejects bad steps and wall times", () => {
  assert.throws(
    () => summarizeKernelProfile([], 1, { steps: 0 }),
    /steps must be a whole number >= 1, got 0/,
  );
  assert.throws(() => summarizeKernelProfile([], 1, { steps: 1.5 }), /got 1.5/);
  assert.throws(() => summarizeKernelProfile([], -1), /wallMs must be >= 0, got -1/);
  assert.throws(() => summarizeKernelProfile([], NaN), /wallMs must be >= 0, got NaN/);
});

Deno.test("kernelFlops counts both conv gradients and transposed matmuls from shapes", () => {
  const dy = { shape: [2, 4, 4, 6] };
  const filter = { shape: [3, 3, 4, 6] };
  const taps = 2 * (2 * 4 * 4 * 6) * (3 * 3 * 4);
  assert.deepEqual(
    kernelFlops("Conv2DBackpropInput", { dy, filter }, { strides: [2, 2] }, [2, 8, 8, 4]),
    { flops: taps, label: "Conv2DBackpropInput 3x3 4->6 s2" },
  );
  assert.equal(
    kernelFlops("Conv2DBackpropFilter", { x: { shape: [2, 8, 8, 4] }, dy }, {
      strides: 2,
      filterShape: [3, 3, 4, 6],
    }, [3, 3, 4, 6]).flops,
    taps,
  );
  // a: [1, k=5, m=3] transposed, b: [1, 5, 7] -> [1, 3, 7]
  assert.equal(
    kernelFlops("BatchMatMul", { a: { shape: [1, 5, 3] }, b: { shape: [1, 5, 7] } }, {
      transposeA: true,
    }, [1, 3, 7]).flops,
    2 * 3 * 7 * 5,
  );
  assert.deepEqual(kernelFlops("Relu", { x: { shape: [4] } }, {}, [4]), {
    flops: 0,
    label: "Relu",
  });
});
