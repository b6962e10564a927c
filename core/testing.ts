/**
 * Test helpers shared by every package: {@linkcode assertNoLeak} checks the project's tfjs memory
 * rule (one warm-up step, then `tf.memory().numTensors` is unchanged after more steps);
 * {@linkcode probeWebGpuGate} and {@linkcode webgpuTestDefinition} gate the WebGPU tests (fail
 * under CI without an adapter, ignored elsewhere).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)

export {
  type GpuLike,
  probeWebGpuGate,
  WEBGPU_INSTALL_HINT,
  type WebGpuGate,
  type WebGpuGateOptions,
  webgpuTestDefinition,
} from "./gpu_gate.ts";

/** Options of {@linkcode assertNoLeak}. */
export interface NoLeakOptions {
  /** Steps run after the warm-up step (default 2; a positive integer). */
  readonly steps?: number;
  /** Also require `tf.memory().numBytes` to be unchanged (default false). */
  readonly bytes?: boolean;
  /** What the step is, for the error message (default `"step"`). */
  readonly label?: string;
}

/** Thrown by {@linkcode assertNoLeak} when a step leaves tensors behind. */
export class TensorLeakError extends Error {
  /** `tf.memory().numTensors` after the warm-up step. */
  readonly before: number;
  /** `tf.memory().numTensors` after the checked steps. */
  readonly after: number;

  /**
   * Creates the error.
   *
   * @param message What leaked and what to do.
   * @param before Tensors after the warm-up step.
   * @param after Tensors after the checked steps.
   */
  constructor(message: string, before: number, after: number) {
    super(message);
    this.name = "TensorLeakError";
    this.before = before;
    this.after = after;
  }
}

/**
 * Runs `step` once as a warm-up (lazy state such as optimizer slots or backend caches may be
 * allocated there), then `steps` more times, and throws unless `tf.memory().numTensors` (and,
 * with `bytes`, `numBytes`) is the same as after the warm-up. `step` may be async; its result is
 * ignored (return nothing that holds tensors).
 *
 * @param step One training step, one call of the code under test, or a build-and-dispose cycle.
 * @param options Number of checked steps, whether bytes are checked, a label for the message.
 * @returns Resolves when the check passed.
 * @throws {RangeError} If `steps` is not a positive integer.
 * @throws {TensorLeakError} If tensors (or bytes) grew or shrank across the checked steps.
 * @example
 * ```ts
 * import { assertNoLeak, TensorLeakError } from "@mfi/core/testing";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * await assertNoLeak(() => tf.tidy(() => tf.add(tf.ones([2]), 1).dataSync()));
 * const kept: tf.Tensor[] = [];
 * await assert.rejects(assertNoLeak(() => kept.push(tf.ones([2]))), TensorLeakError);
 * tf.dispose(kept);
 * ```
 */
export async function assertNoLeak(
  step: () => unknown,
  options: NoLeakOptions = {},
): Promise<void> {
  const { steps = 2, bytes = false, label = "step" } = options;
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`assertNoLeak: steps must be a positive integer, got ${steps}`);
  }
  await step();
  const before = tf.memory();
  for (let i = 0; i < steps; i++) await step();
  const after = tf.memory();
  if (after.numTensors !== before.numTensors) {
    throw new TensorLeakError(
      `${label} leaks tensors: tf.memory().numTensors went from ${before.numTensors} after the warm-up to ${after.numTensors} after ${steps} more; wrap sync tensor code in tf.tidy and dispose async results in finally`,
      before.numTensors,
      after.numTensors,
    );
  }
  if (bytes && after.numBytes !== before.numBytes) {
    throw new TensorLeakError(
      `${label} leaks memory: tf.memory().numBytes went from ${before.numBytes} after the warm-up to ${after.numBytes} after ${steps} more (tensor count unchanged); look for tensors swapped for larger ones`,
      before.numTensors,
      after.numTensors,
    );
  }
}
