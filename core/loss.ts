/**
 * Classification losses and counts.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Scalar, Tensor } from "./tf_types.ts";

/** Options of {@linkcode softmaxCrossEntropy}. */
export interface CrossEntropyOptions {
  /**
   * Label smoothing epsilon in [0, 1) (default 0), as PyTorch's `label_smoothing`: the target is
   * `(1 - eps) * onehot + eps / classes`.
   */
  readonly labelSmoothing?: number;
}

/**
 * Mean softmax cross-entropy of logits against integer labels (PyTorch's
 * `F.cross_entropy(logits, labels, label_smoothing=eps)`). Call inside `tf.tidy` or a gradient
 * function.
 *
 * @param logits [batch, classes] scores.
 * @param labels [batch] class indices (int32).
 * @param options Label smoothing.
 * @returns The mean loss, a scalar.
 * @throws {RangeError} On mismatched shapes or a smoothing outside [0, 1).
 * @example
 * ```ts
 * import { softmaxCrossEntropy } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const loss = tf.tidy(() =>
 *   softmaxCrossEntropy(tf.zeros([2, 4]), tf.tensor1d([0, 3], "int32"))
 * );
 * assert.ok(Math.abs((await loss.data())[0] - Math.log(4)) < 1e-6);
 * loss.dispose();
 * ```
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  options: CrossEntropyOptions = {},
): Scalar {
  const eps = options.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) {
    throw new RangeError(`softmaxCrossEntropy: labelSmoothing must be in [0, 1), got ${eps}`);
  }
  if (logits.rank !== 2 || labels.rank !== 1 || logits.shape[0] !== labels.shape[0]) {
    throw new RangeError(
      `softmaxCrossEntropy: expected logits [batch, classes] and labels [batch], got [${logits.shape}] and [${labels.shape}]`,
    );
  }
  const classes = logits.shape[1] as number;
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const onehot = tf.cast(tf.oneHot(tf.cast(labels, "int32"), classes), "float32");
    const target = eps === 0 ? onehot : tf.add(tf.mul(onehot, 1 - eps), eps / classes);
    return tf.neg(tf.mean(tf.sum(tf.mul(target, logp), 1))) as Scalar;
  });
}

/**
 * Counts top-1 hits: how many rows' highest logit is at the label.
 *
 * @param logits [batch, classes] scores.
 * @param labels [batch] class indices.
 * @returns The number of correct rows, a float32 scalar.
 * @example
 * ```ts
 * import { countCorrect } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const n = tf.tidy(() =>
 *   countCorrect(tf.tensor2d([[0, 1], [3, 2]]), tf.tensor1d([1, 1], "int32"))
 * );
 * assert.equal((await n.data())[0], 1);
 * n.dispose();
 * ```
 */
export function countCorrect(logits: Tensor, labels: Tensor): Scalar {
  return tf.tidy(() =>
    tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, "int32")), "float32"))
  );
}
