/**
 * Shared set-up of the WebGPU tests (`tests/webgpu_*_test.ts`): the gate (an adapter, hardware or
 * Mesa's software one, must exist; under CI a missing adapter fails the tests, elsewhere they are
 * ignored with the reason in their name), backend switching that keeps one WebGPU device for the
 * whole file, and the comparison against the cpu backend.
 *
 * WebGPU is selected through `selectBackend({ backend: "webgpu", allowSoftwareAdapter: true })`,
 * the same call `--backend webgpu --allow-software-adapter` makes, so `activeBackend()` (what
 * results record) is the WebGPU choice. cpu is pinned with `tf.setBackend("cpu")`, which keeps
 * that choice and the WebGPU device alive between switches.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { type BackendChoice, selectBackend } from "@mfi/core";
import { probeWebGpuGate, webgpuTestDefinition } from "@mfi/core/testing";

/** Whether WebGPU tests can run here, and what happens if not. */
export const GATE = await probeWebGpuGate();
if (!GATE.available && !GATE.ci) {
  console.warn(`WebGPU tests are ignored here: ${GATE.detail}.`);
}

/**
 * Registers a WebGPU test under the gate (fails under CI without an adapter, ignored elsewhere).
 *
 * @param name The test's name.
 * @param fn The test.
 */
export function webgpuTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test(webgpuTestDefinition(GATE, name, fn));
}

let webgpu: BackendChoice | undefined;

/**
 * Makes `backend` tfjs's active backend: WebGPU (on a software adapter if that is all there is)
 * selected once, cpu pinned.
 *
 * @param backend The backend.
 * @returns The WebGPU choice (also when switching to cpu, once WebGPU was selected), or undefined.
 */
export async function useBackend(backend: "webgpu" | "cpu"): Promise<BackendChoice | undefined> {
  if (backend === "cpu") {
    await tf.setBackend("cpu");
    return webgpu;
  }
  if (webgpu === undefined) {
    webgpu = await selectBackend({ backend: "webgpu", allowSoftwareAdapter: true, env: {} });
    assert.equal(webgpu.name, "webgpu");
  } else if (!(await tf.setBackend("webgpu"))) {
    throw new Error("tfjs-backend-webgpu failed to start again");
  }
  return webgpu;
}

/**
 * Runs `fn` on `backend` inside `tf.tidy`, reads its outputs with `await t.data()` and disposes
 * them, then returns to cpu. Inputs must be built inside `fn` (from plain arrays), so each backend
 * gets its own copy.
 *
 * @param backend Where to run.
 * @param fn Makes the outputs.
 * @returns The outputs' values, in order.
 */
export async function runOn(
  backend: "webgpu" | "cpu",
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<Float32Array[]> {
  await useBackend(backend);
  try {
    const outs = tf.tidy(() => {
      const r = fn();
      return Array.isArray(r) ? r : [r];
    });
    try {
      return await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
    } finally {
      tf.dispose(outs);
    }
  } finally {
    await tf.setBackend("cpu");
  }
}

/**
 * max|a - b| / max|b| (0 when both are all zeros).
 *
 * @param a Values under test.
 * @param b Reference values.
 * @returns The relative error.
 */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Asserts that each named output of WebGPU matches cpu within `tolerance` (relative, see
 * {@linkcode relativeError}), naming the worst one.
 *
 * @param names One name per output.
 * @param gpu WebGPU's values.
 * @param cpu cpu's values.
 * @param tolerance The largest relative error allowed (default 1e-4).
 */
export function assertMatches(
  names: readonly string[],
  gpu: readonly ArrayLike<number>[],
  cpu: readonly ArrayLike<number>[],
  tolerance = 1e-4,
): void {
  assert.equal(gpu.length, names.length);
  assert.equal(cpu.length, names.length);
  for (let i = 0; i < names.length; i++) {
    assert.ok(cpu[i].length > 0, `${names[i]} is empty`);
    const e = relativeError(gpu[i], cpu[i]);
    assert.ok(e <= tolerance, `${names[i]}: relative error ${e} on WebGPU vs cpu > ${tolerance}`);
  }
}

/**
 * Runs `fn` on cpu and on WebGPU and asserts that the outputs match.
 *
 * @param names One name per output of `fn`.
 * @param fn Builds its inputs from plain arrays and returns its outputs.
 * @param tolerance Relative tolerance (default 1e-4).
 */
export async function assertSameOnWebGpu(
  names: readonly string[],
  fn: () => tf.Tensor | tf.Tensor[],
  tolerance = 1e-4,
): Promise<void> {
  const cpu = await runOn("cpu", fn);
  const gpu = await runOn("webgpu", fn);
  assertMatches(names, gpu, cpu, tolerance);
}
