/**
 * Helpers of the kernel tests: run the same computation on two backends from plain arrays.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
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

/** Padding of a test convolution: a tfjs mode or an explicit symmetric amount. */
export type Pad = "same" | "valid" | number;

/**
 * The convolution shapes every conv kernel is checked on (strides 1-4, 1/3/7 filters, odd sizes,
 * batch 1): [input shape, kernel size, cout, stride, padding].
 */
export const CONV_TABLE: readonly [number[], number, number, number, Pad][] = [
  [[1, 5, 5, 3], 1, 4, 1, "valid"],
  [[2, 8, 8, 3], 1, 5, 2, "valid"],
  [[1, 9, 7, 4], 1, 3, 3, 0],
  [[2, 6, 6, 3], 3, 4, 1, "same"],
  [[1, 7, 9, 2], 3, 5, 1, 1],
  [[2, 8, 8, 3], 3, 4, 2, 1],
  [[1, 9, 9, 3], 3, 2, 2, 1],
  [[1, 9, 9, 3], 3, 2, 2, "same"],
  [[1, 10, 11, 2], 3, 3, 2, "valid"],
  [[1, 11, 11, 2], 3, 3, 3, "same"],
  [[1, 13, 10, 2], 3, 3, 4, 1],
  [[1, 12, 12, 2], 3, 3, 4, "valid"],
  [[1, 11, 11, 3], 7, 4, 1, 3],
  [[1, 15, 13, 3], 7, 4, 2, 3],
  [[1, 16, 16, 2], 7, 3, 2, "same"],
  [[1, 17, 17, 2], 7, 2, 3, "valid"],
  [[1, 14, 14, 2], 7, 2, 4, 3],
  [[1, 6, 6, 2], 3, 2, 1, 2],
  [[1, 7, 7, 2], 1, 2, 2, 1],
  // Wide enough for the own kernels' vector tiles (4 x 8 channels, 6 pixels x 8) and their tails.
  [[2, 8, 8, 6], 3, 20, 1, "same"],
  [[1, 9, 9, 8], 3, 16, 2, 1],
  [[2, 7, 7, 16], 3, 12, 1, "valid"],
  [[1, 10, 9, 5], 1, 9, 1, 1],
  // 1x1 stride 1 over the whole input with multiples of 8 channels (the lean path of the forward
  // and input-gradient kernels): a partial last tile; full tiles only, 16 channel blocks (the
  // last tile touches no input past the end).
  [[1, 5, 7, 8], 1, 16, 1, "valid"],
  [[2, 3, 4, 24], 1, 128, 1, "valid"],
];

/** The tfjs padding argument of a {@linkcode Pad}. */
export function padArg(
  p: Pad,
): "same" | "valid" | [[0, 0], [number, number], [number, number], [0, 0]] {
  return typeof p === "number" ? [[0, 0], [p, p], [p, p], [0, 0]] : p;
}

/** The output shape of a test convolution. */
export function convOutShape(
  xShape: readonly number[],
  k: number,
  cout: number,
  s: number,
  p: Pad,
): number[] {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    [k, k, xShape[3], cout],
    s,
    1,
    padArg(p),
  );
  return info.outShape;
}

/**
 * Runs `testdata/<name>` in a Deno process with no permission at all (no prompt, no config) and
 * returns its standard output, trimmed; fails the test, with the script's stderr, if it exits
 * non-zero or runs over a minute.
 */
export async function runWithoutPermission(name: string): Promise<string> {
  const script = new URL(`./testdata/${name}`, import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", script.pathname],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}
