/**
 * Classification evaluation: top-1 accuracy and mean cross-entropy of a model over a batch source.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "./tf_types.ts";
import type { BatchSource } from "./batch.ts";
import { countCorrect, softmaxCrossEntropy } from "./loss.ts";
import type { Module } from "./module.ts";

/** Result of {@linkcode evaluate}. */
export interface EvalResult {
  /** Top-1 accuracy in [0, 1]. */
  readonly accuracy: number;
  /** Mean softmax cross-entropy per example. */
  readonly loss: number;
  /** Number of examples seen. */
  readonly count: number;
}

/**
 * Evaluates a classifier in inference mode (batch norm uses running statistics). Consumes and
 * disposes every batch; accumulates on the device and reads once at the end (asynchronously).
 *
 * @param model The classifier; `apply` returns [batch, classes] logits.
 * @param source Test batches.
 * @returns Accuracy, mean loss and example count.
 * @throws {Error} If the source yields no examples.
 * @example
 * ```ts
 * import { evaluate, Linear } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const fc = new Linear({ inFeatures: 2, outFeatures: 2, seed: 0 });
 * fc.weight.assign(tf.eye(2));
 * fc.bias!.assign(tf.zeros([2]));
 * const batch = {
 *   images: tf.tensor2d([[1, 0], [0, 1], [1, 0]]) as unknown as tf.Tensor4D,
 *   labels: tf.tensor1d([0, 1, 1], "int32"),
 * };
 * const r = await evaluate(fc, [batch]);
 * assert.equal(r.count, 3);
 * assert.ok(Math.abs(r.accuracy - 2 / 3) < 1e-6);
 * fc.weight.dispose();
 * fc.bias!.dispose();
 * ```
 */
export async function evaluate(model: Module, source: BatchSource): Promise<EvalResult> {
  let correct: Tensor = tf.scalar(0);
  let lossSum: Tensor = tf.scalar(0);
  let count = 0;
  try {
    for await (const batch of source) {
      try {
        const n = batch.labels.shape[0];
        const [c, l] = tf.tidy(() => {
          const logits = model.apply(batch.images, { training: false });
          return [
            tf.add(correct, countCorrect(logits, batch.labels)),
            tf.add(lossSum, tf.mul(softmaxCrossEntropy(logits, batch.labels), n)),
          ];
        });
        correct.dispose();
        lossSum.dispose();
        correct = c;
        lossSum = l;
        count += n;
      } finally {
        batch.images.dispose();
        batch.labels.dispose();
      }
    }
    if (count === 0) {
      throw new Error("Cannot evaluate: the test source yielded no examples");
    }
    const [hits, total] = await Promise.all([correct.data(), lossSum.data()]);
    return { accuracy: hits[0] / count, loss: total[0] / count, count };
  } finally {
    correct.dispose();
    lossSum.dispose();
  }
}
