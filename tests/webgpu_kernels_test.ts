// Every training kernel the project relies on, on tfjs-backend-webgpu against the cpu backend,
// within 1e-4 relative: convolution forward and both gradients (3x3, strided, 1x1 projection),
// core's BatchNorm in training mode (forward, gradients, running statistics), the matmul variants
// (transposes, batched, a dense layer's gradients), unsortedSegmentSum (and gather's gradient,
// which uses it). Small shapes: on Mesa's software adapter the whole file takes seconds.
import * as tf from "@tensorflow/tfjs-core";
import { BatchNorm, disposeModule, Rng } from "@mfi/core";
import { assertSameOnWebGpu, webgpuTest } from "./_webgpu.ts";

const normal = (n: number, seed: number, scale = 1) => new Rng(seed).normalArray(n, scale);

interface ConvCase {
  readonly name: string;
  readonly x: [number, number, number, number];
  readonly k: [number, number, number, number];
  readonly stride: number;
  readonly pad: "same" | "valid" | number;
}

const CONVS: ConvCase[] = [
  { name: "3x3 stride 1 same", x: [2, 6, 6, 5], k: [3, 3, 5, 6], stride: 1, pad: 1 },
  {
    name: "3x3 stride 2 (downsampling block)",
    x: [2, 8, 8, 4],
    k: [3, 3, 4, 8],
    stride: 2,
    pad: 1,
  },
  {
    name: "1x1 stride 2 (projection shortcut)",
    x: [2, 8, 8, 4],
    k: [1, 1, 4, 8],
    stride: 2,
    pad: 0,
  },
  { name: "1x1 stride 1 (bottleneck)", x: [2, 5, 5, 8], k: [1, 1, 8, 3], stride: 1, pad: 0 },
  { name: "3x3 valid, odd size", x: [1, 7, 7, 3], k: [3, 3, 3, 4], stride: 1, pad: "valid" },
  {
    name: "1x1 wide (bottleneck expansion)",
    x: [2, 4, 4, 64],
    k: [1, 1, 64, 128],
    stride: 1,
    pad: 0,
  },
  { name: "3x3 wide", x: [2, 4, 4, 32], k: [3, 3, 32, 32], stride: 1, pad: 1 },
  {
    name: "1x1 wide stride 2 (projection)",
    x: [2, 8, 8, 64],
    k: [1, 1, 64, 128],
    stride: 2,
    pad: 0,
  },
];

for (const c of CONVS) {
  webgpuTest(
    `webgpu kernels: conv2d ${c.name}: forward, backward-input, backward-filter`,
    async () => {
      const xv = normal(c.x.reduce((a, b) => a * b), 1);
      const kv = normal(c.k.reduce((a, b) => a * b), 2, 0.3);
      await assertSameOnWebGpu(["forward", "backward-input", "backward-filter"], () => {
        const x = tf.tensor4d(xv, c.x);
        const k = tf.tensor4d(kv, c.k);
        const y = tf.conv2d(x, k, c.stride, c.pad);
        // A weighted sum so that each output gets its own upstream gradient.
        const w = tf.tensor(normal(y.size, 3), y.shape);
        const [dx, dk] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), w))
        )([x, k]);
        return [y, dx, dk];
      });
    },
  );
}

webgpuTest(
  "webgpu kernels: BatchNorm training forward, gradients and running statistics",
  async () => {
    const shape: [number, number, number, number] = [3, 4, 4, 6];
    const xv = normal(3 * 4 * 4 * 6, 4, 2).map((v, i) => v + (i % 6)); // per-channel offsets
    const wv = normal(3 * 4 * 4 * 6, 5);
    await assertSameOnWebGpu(
      ["y (training)", "dx", "dgamma", "dbeta", "running mean", "running var", "y (inference)"],
      () => {
        const bn = new BatchNorm({ channels: 6, momentum: 0.1 });
        try {
          bn.gamma.assign(tf.tensor1d(normal(6, 6, 0.5).map((v) => v + 1)));
          bn.beta.assign(tf.tensor1d(normal(6, 7, 0.5)));
          const x = tf.tensor4d(xv, shape);
          const w = tf.tensor4d(wv, shape);
          const y = bn.apply(x, { training: true });
          const f = (a: tf.Tensor) =>
            tf.sum(tf.mul(bn.apply(a, { training: true }), w)) as tf.Scalar;
          const { value, grads } = tf.variableGrads(() => f(x), [bn.gamma, bn.beta]);
          value.dispose();
          const dx = tf.grad(f)(x);
          const stats = [tf.clone(bn.runningMean), tf.clone(bn.runningVar)];
          const yInference = bn.apply(x, { training: false });
          return [y, dx, grads[bn.gamma.name], grads[bn.beta.name], ...stats, yInference];
        } finally {
          disposeModule(bn);
        }
      },
    );
  },
);

webgpuTest(
  "webgpu kernels: matMul with every transpose, batched matMul, a dense layer's gradients",
  async () => {
    const a = normal(5 * 7, 8);
    const b = normal(7 * 3, 9);
    const batchA = normal(4 * 5 * 7, 10);
    const batchB = normal(4 * 7 * 3, 11);
    await assertSameOnWebGpu(
      ["a b", "a^T b", "a b^T", "a^T b^T", "batched", "batched, b^T", "dW", "dx"],
      () => {
        const A = tf.tensor2d(a, [5, 7]);
        const B = tf.tensor2d(b, [7, 3]);
        const At = tf.transpose(A);
        const Bt = tf.transpose(B);
        const bA = tf.tensor3d(batchA, [4, 5, 7]);
        const bB = tf.tensor3d(batchB, [4, 7, 3]);
        const upstream = tf.tensor2d(normal(15, 12), [5, 3]);
        const [dx, dW] = tf.grads((x: tf.Tensor, W: tf.Tensor) =>
          tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, W as tf.Tensor2D), upstream))
        )([A, B]);
        return [
          tf.matMul(A, B),
          tf.matMul(At, B, true, false),
          tf.matMul(A, Bt, false, true),
          tf.matMul(At, Bt, true, true),
          tf.matMul(bA, bB),
          tf.matMul(bA, tf.transpose(bB, [0, 2, 1]), false, true),
          dW,
          dx,
        ];
      },
    );
  },
);

webgpuTest("webgpu kernels: unsortedSegmentSum, and gather's gradient that uses it", async () => {
  const xv = normal(9 * 4, 13);
  const ids = [2, 0, 2, 1, 4, 0, 2, 3, 1];
  await assertSameOnWebGpu(["segment sum", "gather gradient"], () => {
    const x = tf.tensor2d(xv, [9, 4]);
    const sum = tf.unsortedSegmentSum(x, tf.tensor1d(ids, "int32"), 5);
    const table = tf.tensor2d(normal(5 * 4, 14), [5, 4]);
    const up = tf.tensor2d(normal(9 * 4, 15), [9, 4]);
    const dTable = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, "int32")), up))
    )(table);
    return [sum, dTable];
  });
});
