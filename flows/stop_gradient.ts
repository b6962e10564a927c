/**
 * Stop-gradient for tfjs, which has none built in. {@linkcode detached} runs a computation as a
 * single custom-gradient op: tfjs does not record the ops inside a custom op's forward function
 * on the gradient tape, and the op's own gradient is zero, so nothing computed inside reaches
 * `tf.grad`/`tf.variableGrads` (not even through variables it reads).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "@mfi/core";

/**
 * Evaluates `fn` with no gradient: the result is a constant for every enclosing gradient
 * computation (`stopgrad` in the MeanFlow paper). Intermediate tensors are freed.
 *
 * @param fn The computation; it may read variables and any tensor in scope.
 * @param inputs Tensors the computation depends on (recorded as the op's inputs, each receiving
 * a zero gradient); pass at least one.
 * @returns The value of `fn()`.
 * @throws {RangeError} If `inputs` is empty.
 * @example
 * ```ts
 * import { detached } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.scalar(3);
 * // d/dx [x * stopgrad(x)] = stopgrad(x) = 3, not 2x = 6.
 * const g = tf.grad((x: tf.Tensor) => tf.mul(x, detached(() => tf.mul(x, 1), [x])))(x);
 * assert.deepEqual(g.dataSync()[0], 3);
 * tf.dispose([x, g]);
 * ```
 */
export function detached<T extends Tensor>(fn: () => T, inputs: readonly Tensor[]): T {
  if (inputs.length === 0) {
    throw new RangeError("detached: pass at least one input tensor the computation depends on");
  }
  const op = tf.customGrad((...args: unknown[]) => {
    const n = args.length - 1; // the last argument is tfjs's save function
    return {
      value: fn(),
      gradFunc: (dy: Tensor | Tensor[]) => {
        void dy;
        return Array.from({ length: n }, (_, i) => tf.zerosLike(args[i] as Tensor));
      },
    };
  });
  return op(...(inputs as Tensor[])) as T;
}

/**
 * The identity with a zero gradient: `stopgrad(x)`.
 *
 * @param x Any tensor.
 * @returns A copy of `x` that gradients do not flow through.
 * @example
 * ```ts
 * import { stopGradient } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.scalar(2);
 * const g = tf.grad((x: tf.Tensor) => tf.mul(x, stopGradient(x)))(x);
 * assert.deepEqual(g.dataSync()[0], 2);
 * tf.dispose([x, g]);
 * ```
 */
export function stopGradient<T extends Tensor>(x: T): T {
  return detached(() => tf.clone(x), [x]);
}
