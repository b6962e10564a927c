import * as tf from "@tensorflow/tfjs-core";
import "./core/backend.ts";
import { selectBackend } from "./core/backend.ts";
import { registerWasmTrainingKernels } from "./core/kernels/register.ts";
import { batchNormBackward, batchNormTrainForward } from "./core/kernels/batch_norm.ts";
import { callOwnKernel } from "./core/kernels/_own_kernels.ts";
const threads = Number(Deno.args[0] ?? 1);
await selectBackend({ backend: "wasm", threads, env: {} });
registerWasmTrainingKernels();
const flush = new Float32Array(32 << 20);
const be = tf.backend() as any;
const off = (t: tf.Tensor) => be.dataIdMap.get(t.dataId).memoryOffset;
for (const [n, h, c] of [[64, 32, 16], [64, 16, 32], [64, 8, 64]]) {
  const shape = [n, h, h, c];
  const size = n * h * h * c;
  const x = tf.randomNormal(shape), dy = tf.randomNormal(shape), yv = tf.relu(tf.randomNormal(shape));
  const gamma = tf.ones([c]), beta = tf.zeros([c]), rm = tf.zeros([c]), rv = tf.ones([c]);
  const f = batchNormTrainForward({ x, gamma, beta, runningMean: rm, runningVar: rv }, { epsilon: 1e-5, momentum: 0.1, relu: true });
  const out = tf.zeros(shape), out2 = tf.zeros(shape), acc = tf.zeros([1 << 16]), css = tf.ones([4 * c]);
  const t: Record<string, number[]> = {};
  const rec = (k: string, fn: () => void, cold: boolean) => {
    if (cold) for (let i = 0; i < flush.length; i += 16) flush[i] += 1;
    const t0 = performance.now(); fn(); (t[k + (cold ? "/cold" : "/hot")] ??= []).push(performance.now() - t0);
  };
  const rows = size / c;
  const br = Math.max(8, Math.ceil(8192 / c / 8) * 8);
  for (let rep = 0; rep < 15; rep++) {
    for (const cold of [true, false]) {
      rec("fwd", () => tf.dispose(Object.values(batchNormTrainForward({ x, gamma, beta, runningMean: rm, runningVar: rv }, { epsilon: 1e-5, momentum: 0.1, relu: true }))), cold);
      rec("bwd", () => { const g = batchNormBackward({ dy, x, y: f.y, stats: f.stats, gamma }, { relu: true, residual: true }); tf.dispose(Object.values(g)); }, cold);
      rec("stats", () => callOwnKernel(be.wasm, "bn_stats_f32", [off(x), off(acc), rows, c, br]), cold);
      rec("apply", () => callOwnKernel(be.wasm, "bn_apply_f32", [off(x), 0, off(out), off(css), rows, c, 1]), cold);
      rec("gsums", () => callOwnKernel(be.wasm, "bn_grad_sums_f32", [off(dy), off(x), off(yv), off(out2), off(acc), rows, c, br]), cold);
      rec("gdx", () => callOwnKernel(be.wasm, "bn_grad_dx_f32", [off(out2), 0, off(x), off(out), off(css), rows, c]), cold);
      rec("alloc", () => { const a = tf.zeros(shape); a.dispose(); }, cold);
    }
  }
  const med = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
  console.log(`threads ${threads} [${shape}]: ` + Object.entries(t).map(([k, v]) => `${k} ${med(v).toFixed(3)}`).join(" "));
}
