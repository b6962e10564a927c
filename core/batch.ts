/**
 * The unit of data every training and evaluation loop consumes.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

/**
 * A batch of images and labels. The consumer owns the tensors and disposes them after use.
 */
export interface Batch {
  /** Normalised images, NHWC float32, [batch, 32, 32, 3] for CIFAR. */
  readonly images: tf.Tensor4D;
  /** Class indices, int32, [batch]. */
  readonly labels: tf.Tensor1D;
}

/** Anything that yields batches: an array, a generator, or an async generator. */
export type BatchSource = Iterable<Batch> | AsyncIterable<Batch>;
