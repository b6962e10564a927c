/**
 * Turning raw uint8 images into normalised NHWC float32 tensors, as torchvision's
 * `ToTensor()` + `Normalize(mean, std)`: `(x / 255 - mean) / std` per channel.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor4D } from "@mfi/core";
import type { Batch } from "@mfi/core";
import { assembleBatch } from "./assemble.ts";
import type { CifarSplit } from "./load.ts";
import {
  CIFAR_CHANNELS,
  CIFAR_IMAGE_BYTES,
  CIFAR_SIZE,
  type CifarDataset,
  cifarSpec,
} from "./spec.ts";

/**
 * Normalises raw pixel values (0..255, NHWC, any float tensor) with the dataset's published
 * per-channel mean and std: `(x / 255 - mean) / std`.
 *
 * @param pixels Raw pixel values, `[n, h, w, 3]`.
 * @param dataset Whose constants to use.
 * @returns Normalised float32 images of the same shape (the caller disposes).
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { normalizePixels } from "@mfi/data";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.fill([1, 1, 1, 3], 255);
 * const y = normalizePixels(x as tf.Tensor4D, "cifar10");
 * assert.ok(Math.abs(y.dataSync()[0] - (1 - 0.4914) / 0.2470) < 1e-5);
 * tf.dispose([x, y]);
 * ```
 */
export function normalizePixels(pixels: Tensor4D, dataset: CifarDataset): Tensor4D {
  const { mean, std } = cifarSpec(dataset);
  return tf.tidy(() => {
    const scale = tf.tensor1d(std.map((s) => 1 / (255 * s)));
    const shift = tf.tensor1d(mean.map((m, c) => m / std[c]));
    return tf.sub(tf.mul(tf.cast(pixels, "float32"), scale), shift) as Tensor4D;
  });
}

/**
 * Copies the images at `indices` out of a split into one contiguous uint8 NHWC buffer.
 *
 * @param split The split.
 * @param indices Image indices (each in [0, count)).
 * @returns `indices.length * 3072` bytes.
 * @throws {RangeError} If an index is out of range.
 * @example
 * ```ts
 * import { gatherImages, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split = { count: 2, images: new Uint8Array(2 * 3072).fill(7, 3072) } as CifarSplit;
 * assert.equal(gatherImages(split, [1, 0])[0], 7);
 * ```
 */
export function gatherImages(split: CifarSplit, indices: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(indices.length * CIFAR_IMAGE_BYTES);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < split.count && Number.isInteger(i))) {
      throw new RangeError(`gatherImages: index ${i} is out of range [0, ${split.count})`);
    }
    out.set(
      split.images.subarray(i * CIFAR_IMAGE_BYTES, (i + 1) * CIFAR_IMAGE_BYTES),
      k * CIFAR_IMAGE_BYTES,
    );
  }
  return out;
}

/**
 * Makes one un-augmented batch of the images at `indices` (default: the whole split, in order),
 * normalised. Use it for evaluation or to hold a whole split as tensors.
 *
 * @param split The split.
 * @param indices Image indices; default all.
 * @returns Normalised NHWC float32 images and int32 labels (the caller disposes both).
 * @throws {RangeError} If an index is out of range.
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { toBatch, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const split = {
 *   dataset: "cifar10", count: 3, images: new Uint8Array(3 * 3072), labels: new Uint8Array([5, 6, 7]),
 * } as unknown as CifarSplit;
 * const { images, labels } = toBatch(split, [2]);
 * assert.deepEqual(images.shape, [1, 32, 32, 3]);
 * assert.deepEqual([...labels.dataSync()], [7]);
 * tf.dispose([images, labels]);
 * ```
 */
export function toBatch(split: CifarSplit, indices?: ArrayLike<number>): Batch {
  const idx = indices ?? Int32Array.from({ length: split.count }, (_, i) => i);
  const labels = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) labels[k] = split.labels[idx[k]];
  const images = tf.tensor4d(
    assembleBatch(split, idx),
    [idx.length, CIFAR_SIZE, CIFAR_SIZE, CIFAR_CHANNELS],
    "float32",
  );
  return { images, labels: tf.tensor1d(labels, "int32") };
}
