/**
 * Helpers of the kernel tests: run the same computation on two backends from plain arrays.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { Rng } from "../random.ts";
import { registerWasmTrainingKernels, type WasmTrainingKernelOptions } from "./register.ts";

/** Deterministic normal values. */
export function values(n: number, seed: number): Float32Array {
  return new Rng(seed).normalArray(n);
}

/** max|a - b| / max|b| (0 when both are all zeros). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Runs `fn` on `backend` (wasm with the training kernels), returns the data of its outputs and
 * disposes every tensor it made; switches back to cpu.
 */
export async function runOn(
  backend: "cpu" | "wasm",
  fn: () => tf.Tensor | tf.Tensor[],
  kernels: WasmTrainingKernelOptions = {},
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  if (backend === "wasm") registerWasmTrainingKernels(kernels);
  try {
    const outs = tf.tidy(() => {
      const r = fn();
      return Array.isArray(r) ? r : [r];
    });
    try {
      return await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
    } finally {
      tf.dispose(outs);
    }
  } finally {
    await tf.setBackend("cpu");
  }
}

/**
 * Runs `fn` on cpu and on wasm (with the given kernel choices) and returns the relative error of
 * each output.
 */
export async function compareBackends(
  fn: () => tf.Tensor | tf.Tensor[],
  kernels: WasmTrainingKernelOptions = {},
): Promise<number[]> {
  const cpu = await runOn("cpu", fn);
  const wasm = await runOn("wasm", fn, kernels);
  return cpu.map((c, i) => relativeError(wasm[i], c));
}
