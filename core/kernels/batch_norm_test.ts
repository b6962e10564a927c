import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import {
  BATCH_NORM_GRAD_KERNEL,
  BATCH_NORM_INFER_KERNEL,
  BATCH_NORM_TRAIN_KERNEL,
  batchNormBackward,
  batchNormInference,
  batchNormTrainForward,
  reductionBlockRows,
} from "./batch_norm.ts";
import { BatchNorm } from "../batch_norm.ts";
import { disposeModule } from "../module.ts";
import { profileKernels } from "./kernel_profile.ts";
import { ownKernels } from "./_own_kernels.ts";
import type { WasmBackend } from "./_wasm.ts";
import { registerWasmTrainingKernels } from "./register.ts";
import { compareBackends, values } from "./_test_util.ts";

function inputs(shape: number[]) {
  const size = shape.reduce((a, b) => a * b);
  const c = shape[shape.length - 1];
  return {
    x: tf.tensor(values(size, 1).map((v) => 3 + 2 * v), shape),
    gamma: tf.tensor1d(values(c, 2).map((v) => 1 + 0.5 * v)),
    beta: tf.tensor1d(values(c, 3)),
    runningMean: tf.tensor1d(values(c, 4)),
    runningVar: tf.tensor1d(values(c, 5).map((v) => 1 + v * v)),
    residual: tf.tensor(values(size, 6), shape),
    dy: tf.tensor(values(size, 7), shape),
  };
}

// The last two have several reduction blocks, the last one short (see reductionBlockRows).
for (
  const shape of [[3, 5, 4, 7], [9, 2], [1, 1, 1, 3], [2, 3, 3, 16], [5, 13, 13, 23], [
    3,
    37,
    37,
    4,
  ]]
) {
  for (const relu of [false, true]) {
    for (const withResidual of [false, true]) {
      const what = `[${shape}]${relu ? ", ReLU" : ""}${withResidual ? ", residual" : ""}`;
      Deno.test(`fused batch norm training forward and backward on wasm match cpu: ${what}`, async () => {
        const errs = await compareBackends(() => {
          const { x, gamma, beta, runningMean, runningVar, residual, dy } = inputs(shape);
          const f = batchNormTrainForward(
            {
              x,
              gamma,
              beta,
              runningMean,
              runningVar,
              ...(withResidual ? { residual } : {}),
            },
            { epsilon: 1e-5, momentum: 0.1, relu },
          );
          const g = batchNormBackward(
            { dy, x, stats: f.stats, gamma, ...(relu ? { y: f.y } : {}) },
            { relu, residual: withResidual },
          );
          return [
            f.y,
            f.stats,
            f.runningMean,
            f.runningVar,
            g.dx,
            g.dgamma,
            g.dbeta,
            ...(g.dresidual ? [g.dresidual] : []),
          ];
        });
        assert.equal(errs.length, withResidual ? 8 : 7);
        assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
      });
      Deno.test(`fused batch norm inference on wasm matches cpu: ${what}`, async () => {
        const errs = await compareBackends(() => {
          const { x, gamma, beta, runningMean, runningVar, residual } = inputs(shape);
          return batchNormInference({
            x,
            gamma,
            beta,
            runningMean,
            runningVar,
            ...(withResidual ? { residual } : {}),
          }, { epsilon: 1e-5, relu });
        });
        assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
      });
    }
  }
}

Deno.test("on wasm the fused batch norm runs as one kernel per pass", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  try {
    const { calls } = await profileKernels("wasm", () =>
      tf.tidy(() => {
        const { x, gamma, beta, runningMean, runningVar, residual, dy } = inputs([2, 3, 3, 4]);
        const stat = { gamma, beta, runningMean, runningVar, residual };
        const f = batchNormTrainForward({ x, ...stat }, {
          epsilon: 1e-5,
          momentum: 0.1,
          relu: true,
        });
        batchNormBackward(
          { dy, x, stats: f.stats, gamma, y: f.y },
          { relu: true, residual: true },
        );
        batchNormInference({ x, ...stat }, { epsilon: 1e-5, relu: true });
      }));
    const ours = calls.map((c) => c.name).filter((n) => n.startsWith("Mfi"));
    assert.deepEqual(ours, [
      BATCH_NORM_TRAIN_KERNEL,
      BATCH_NORM_GRAD_KERNEL,
      BATCH_NORM_INFER_KERNEL,
    ]);
  } finally {
    await tf.setBackend("cpu");
  }
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`fused batch norm passes reject bad shapes and a missing ReLU output (${backend})`, async () => {
    await tf.setBackend(backend);
    if (backend === "wasm") registerWasmTrainingKernels();
    try {
      tf.tidy(() => {
        const { x, gamma, beta, runningMean, runningVar, dy } = inputs([2, 2, 3]);
        const attrs = { epsilon: 1e-5, momentum: 0.1, relu: false };
        const stat = { gamma, beta, runningMean, runningVar };
        assert.throws(
          () => batchNormTrainForward({ x, ...stat, residual: tf.zeros([2, 3, 2]) }, attrs),
          /residual has shape \[2,3,2\], expected \[2,2,3\]/,
        );
        assert.throws(
          () => batchNormTrainForward({ x, ...stat, gamma: tf.ones([4]) }, attrs),
          /gamma has shape \[4\], expected \[3\]/,
        );
        assert.throws(
          () => batchNormInference({ x, ...stat, runningVar: tf.ones([2]) }, attrs),
          /runningVar has shape \[2\], expected \[3\]/,
        );
        const { stats } = batchNormTrainForward({ x, ...stat }, attrs);
        assert.throws(
          () => batchNormBackward({ dy, x, stats, gamma }, { relu: true, residual: false }),
          /relu needs the forward output y/,
        );
        assert.throws(
          () =>
            batchNormBackward({ dy, x, stats: tf.zeros([3]), gamma }, {
              relu: false,
              residual: false,
            }),
          /stats has shape \[3\], expected \[2,3\]/,
        );
        assert.throws(
          () =>
            batchNormBackward({ dy: tf.zeros([4, 3]), x, stats, gamma }, {
              relu: false,
              residual: false,
            }),
          /dy has shape \[4,3\], expected \[2,2,3\]/,
        );
      });
    } finally {
      await tf.setBackend("cpu");
    }
  });
}

Deno.test("the wasm batch-norm kernels reject non-float32 tensors", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  try {
    tf.tidy(() => {
      const x = tf.zeros([2, 3], "int32");
      const p = tf.zeros([3]);
      assert.throws(
        () =>
          batchNormInference({ x, gamma: p, beta: p, runningMean: p, runningVar: p }, {
            epsilon: 1e-5,
            relu: false,
          }),
        /MfiBatchNormInfer needs float32 inputs, got x int32/,
      );
    });
  } finally {
    await tf.setBackend("cpu");
  }
});

for (const training of [true, false]) {
  Deno.test(`BatchNorm.apply with residual and ReLU (${training ? "training" : "inference"}): wasm gradients and running statistics match cpu`, async () => {
    const shape = [4, 3, 3, 6];
    const errs = await compareBackends(() => {
      const { x, residual, dy, gamma, runningVar } = inputs(shape);
      const bn = new BatchNorm({ channels: 6 });
      try {
        bn.gamma.assign(gamma);
        bn.runningVar.assign(runningVar);
        const grads = tf.grads((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, r: tf.Tensor) => {
          assert.equal(g, bn.gamma);
          assert.equal(b, bn.beta);
          return tf.sum(tf.mul(bn.apply(xx, { training, residual: r, relu: true }), dy));
        })([x, bn.gamma, bn.beta, residual]);
        return [...grads, tf.clone(bn.runningMean), tf.clone(bn.runningVar)];
      } finally {
        disposeModule(bn);
      }
    });
    assert.equal(errs.length, 6);
    assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
  });
}

/** Float64 per-channel sums of a [rows, c] array, added in row order. */
function channelSums(rows: number, c: number, f: (i: number) => number): Float64Array {
  const out = new Float64Array(c);
  for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) out[j] += f(r * c + j);
  return out;
}

Deno.test("the batch-norm kernels give the same bits for any split into (part, parts) shares", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  const backend = tf.backend() as unknown as WasmBackend;
  const kernels = ownKernels(backend.wasm);
  try {
    // Row counts that are not multiples of the block (nor of 8): several blocks, a short last one.
    const cases: [number, number, number][] = [
      [37, 23, reductionBlockRows(23)], // one block
      [1000, 23, reductionBlockRows(23)], // 360, 360, 280 rows
      [4107, 4, reductionBlockRows(4)], // 2048, 2048, 11
      [201, 130, reductionBlockRows(130)], // 64, 64, 64, 9
      [21, 2100, 8], // 8, 8, 5 (rows wider than a span of the C kernels)
      [20, 4, 8],
      [9, 130, 3], // blocks that are not a multiple of 8 rows work too
      [45, 7, 5],
    ];
    for (const [rows, c, blockRows] of cases) {
      const n = rows * c;
      const nb = Math.ceil(rows / blockRows);
      const t = (seed: number, size = n) => tf.tensor1d(values(size, seed));
      const [x, dy, y, css, kbmg] = [t(1), t(2), t(3), t(4, 3 * c), t(5, 4 * c)];
      const at = (u: tf.Tensor) => backend.dataIdMap.get(u.dataId).memoryOffset;
      const run = (parts: number) => {
        const outs = [tf.zeros([n]), tf.zeros([8 * c * nb]), tf.zeros([n]), tf.zeros([8 * c * nb])];
        const [out, acc, dres, acc2] = outs.map(at);
        const [px, pdy, py, pcss, pk] = [x, dy, y, css, kbmg].map(at);
        const results: Float32Array[] = [];
        for (let part = 0; part < parts; part++) {
          kernels.bn_stats_f32(px, acc, rows, c, blockRows, part, parts);
        }
        for (let part = 0; part < parts; part++) {
          kernels.bn_grad_sums_f32(pdy, px, py, dres, acc2, rows, c, blockRows, part, parts);
        }
        results.push(...[outs[1], outs[2], outs[3]].map((u) => u.dataSync() as Float32Array));
        for (let part = 0; part < parts; part++) {
          kernels.bn_apply_f32(px, pdy, out, pcss, rows, c, 1, part, parts);
        }
        results.push(outs[0].dataSync().slice() as Float32Array);
        for (let part = 0; part < parts; part++) {
          kernels.bn_grad_dx_f32(pdy, py, px, out, pk, rows, c, part, parts);
        }
        results.push(outs[0].dataSync() as Float32Array);
        tf.dispose(outs);
        return results;
      };
      const one = run(1);
      // The block slots, added up, are the per-channel sums (float64 reference in row order).
      const [xs, dys, ys] = [x, dy, y].map((u) => u.dataSync());
      const g = (i: number) => ys[i] > 0 ? dys[i] : 0;
      const want = [
        channelSums(rows, c, (i) => xs[i]),
        channelSums(rows, c, (i) => xs[i] * xs[i]),
        channelSums(rows, c, g),
        channelSums(rows, c, (i) => g(i) * xs[i]),
      ];
      [one[0], one[2]].forEach((acc, k) => {
        const slots = new Float64Array(acc.buffer, acc.byteOffset, 2 * c * nb);
        for (let half = 0; half < 2; half++) {
          const w = want[2 * k + half];
          for (let j = 0; j < c; j++) {
            let got = 0;
            for (let b = 0; b < nb; b++) got += slots[b * 2 * c + half * c + j];
            const tol = 1e-5 * channelSums(rows, 1, (r) => Math.abs(xs[r * c + j]) + 1)[0];
            assert.ok(
              Math.abs(got - w[j]) <= tol,
              `rows ${rows} c ${c}, sum ${2 * k + half} of channel ${j}: ${got} vs ${w[j]}`,
            );
          }
        }
      });
      assert.deepEqual(
        one[1],
        Float32Array.from({ length: n }, (_, i) => g(i)),
        "dres is dy masked by y > 0",
      );
      for (const parts of [2, 3, 7]) {
        run(parts).forEach((r, i) =>
          assert.deepEqual(r, one[i], `rows ${rows} c ${c}, ${parts} parts, output ${i}`)
        );
      }
      tf.dispose([x, dy, y, css, kbmg]);
    }
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("reductionBlockRows depends on the channel count only and rejects a bad one", () => {
  for (const c of [1, 3, 4, 16, 23, 128, 130, 1024, 5000]) {
    const r = reductionBlockRows(c);
    assert.equal(r % 8, 0, `c ${c}: ${r} rows`);
    // About 8192 elements, at least 64 rows (the slot of 2c doubles is then <= 1/16 of a block).
    assert.ok(r >= 64 && (r === 64 || (r - 8) * c < 8192) && r * c >= 8192, `c ${c}: ${r} rows`);
  }
  for (const bad of [0, -1, 2.5, NaN]) {
    assert.throws(() => reductionBlockRows(bad), /c must be a whole number >= 1, got/);
  }
});
