/**
 * The unit of data every training and evaluation loop consumes.
 *
 * @module
 */
import type { Tensor1D, Tensor4D } from "./tf_types.ts";

/**
 * A batch of images and labels. The consumer owns the tensors and disposes them after use.
 */
export interface Batch {
  /** Normalised images, NHWC float32, [batch, 32, 32, 3] for CIFAR. */
  readonly images: Tensor4D;
  /** Class indices, int32, [batch]. */
  readonly labels: Tensor1D;
}

/** Anything that yields batches: an array, a generator, or an async generator. */
export type BatchSource = Iterable<Batch> | AsyncIterable<Batch>;
