/**
 * Epoch iteration: seeded shuffling, batching, optional augmentation, normalisation.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type Batch, deriveSeed, Rng } from "@mfi/core";
import { assembleBatch } from "./assemble.ts";
import { drawCropFlip } from "./augment.ts";
import type { CifarSplit } from "./load.ts";
import { CIFAR_CHANNELS, CIFAR_SIZE } from "./spec.ts";

/** Options of {@linkcode batches}. */
export interface BatchesOptions {
  /** Images per batch, a positive integer. */
  readonly batchSize: number;
  /** Shuffle the order each epoch (default false: file order). */
  readonly shuffle?: boolean;
  /** Random crop (4-pixel zero padding) and horizontal flip (default false). */
  readonly augment?: boolean;
  /** Base seed; required when `shuffle` or `augment` is on. */
  readonly seed?: number;
  /** Epoch number, a non-negative integer (default 0); with `seed` it fixes order and augmentation. */
  readonly epoch?: number;
  /** Drop the last batch if it is smaller than `batchSize` (default false: keep it). */
  readonly dropLast?: boolean;
  /** Skip the first `startBatch` batches of the epoch, e.g. to resume (default 0). */
  readonly startBatch?: number;
}

const KEYS = new Set([
  "batchSize",
  "shuffle",
  "augment",
  "seed",
  "epoch",
  "dropLast",
  "startBatch",
]);

function validate(options: BatchesOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("batches: options must be an object with at least batchSize");
  }
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new TypeError(
        `batches: unknown option ${JSON.stringify(key)}; expected ${[...KEYS].join(", ")}`,
      );
    }
  }
  const { batchSize, epoch = 0, startBatch = 0, seed } = options;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}`);
  }
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new RangeError(`batches: epoch must be a non-negative integer, got ${epoch}`);
  }
  if (!Number.isInteger(startBatch) || startBatch < 0) {
    throw new RangeError(`batches: startBatch must be a non-negative integer, got ${startBatch}`);
  }
  for (const key of ["shuffle", "augment", "dropLast"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "boolean") {
      throw new TypeError(`batches: ${key} must be a boolean, got ${typeof options[key]}`);
    }
  }
  if (seed !== undefined && !Number.isInteger(seed)) {
    throw new TypeError(`batches: seed must be an integer, got ${seed}`);
  }
  if ((options.shuffle || options.augment) && seed === undefined) {
    throw new TypeError("batches: seed is required when shuffle or augment is on");
  }
}

/**
 * Number of batches one epoch yields.
 *
 * @param count Images in the split.
 * @param options `batchSize` and `dropLast`.
 * @returns `floor(count / batchSize)` with `dropLast`, else `ceil(count / batchSize)`.
 * @throws {RangeError} If `batchSize` is not a positive integer.
 * @example
 * ```ts
 * import { batchCount } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(batchCount(10, { batchSize: 4 }), 3);
 * assert.equal(batchCount(10, { batchSize: 4, dropLast: true }), 2);
 * ```
 */
export function batchCount(
  count: number,
  options: { readonly batchSize: number; readonly dropLast?: boolean },
): number {
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) {
    throw new RangeError(
      `batchCount: batchSize must be a positive integer, got ${options.batchSize}`,
    );
  }
  return options.dropLast
    ? Math.floor(count / options.batchSize)
    : Math.ceil(count / options.batchSize);
}

/**
 * The order in which an epoch visits the images: a seeded permutation (Fisher-Yates with
 * `Rng(deriveSeed(seed, "shuffle", epoch))`), or `0..count-1` when `seed` is undefined.
 *
 * @param count Number of images.
 * @param seed Base seed, or undefined for file order.
 * @param epoch Epoch number.
 * @returns The image indices.
 * @example
 * ```ts
 * import { epochOrder } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const a = epochOrder(10, 1, 0);
 * assert.deepEqual([...a].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
 * assert.deepEqual(a, epochOrder(10, 1, 0));
 * assert.notDeepEqual(a, epochOrder(10, 1, 1));
 * ```
 */
export function epochOrder(count: number, seed: number | undefined, epoch: number): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  if (seed !== undefined) new Rng(deriveSeed(seed, "shuffle", epoch)).shuffle(order);
  return order;
}

/**
 * Iterates one epoch of a split in batches. Each batch is made only when requested, so stopping
 * early leaks nothing; the consumer disposes each batch's tensors. Deterministic: the same split,
 * seed and epoch give the same batches. Batch `b` of epoch `e` draws its augmentation from
 * `Rng(deriveSeed(seed, "augment", e, b))`, so resuming with `startBatch` reproduces the rest.
 *
 * Pipeline per batch (see `assembleBatch`): one pass over the raw uint8 images that gathers them,
 * applies (if `augment`) zero-pad 4 + crop 32 + horizontal flip on raw pixels, and normalises with
 * the dataset's mean/std (torchvision order), then one float32 tensor.
 *
 * @param split The split to iterate.
 * @param options Batch size, shuffling, augmentation, seed, epoch.
 * @returns A lazy iterable of batches (images normalised NHWC float32, labels int32).
 * @throws {TypeError} If an option is unknown or of the wrong type, or `seed` is missing.
 * @throws {RangeError} If `batchSize`, `epoch` or `startBatch` is out of range.
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { batches, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const split = {
 *   dataset: "cifar10", count: 5, images: new Uint8Array(5 * 3072), labels: new Uint8Array(5),
 * } as unknown as CifarSplit;
 * const sizes = [];
 * for (const { images, labels } of batches(split, { batchSize: 2, shuffle: true, augment: true, seed: 1 })) {
 *   sizes.push(images.shape[0]);
 *   tf.dispose([images, labels]);
 * }
 * assert.deepEqual(sizes, [2, 2, 1]);
 * ```
 */
export function batches(split: CifarSplit, options: BatchesOptions): Iterable<Batch> {
  validate(options);
  const { batchSize, seed, epoch = 0, dropLast = false, startBatch = 0 } = options;
  const order = epochOrder(split.count, options.shuffle ? seed : undefined, epoch);
  const total = batchCount(split.count, { batchSize, dropLast });
  const augment = options.augment ?? false;
  return {
    *[Symbol.iterator](): Iterator<Batch> {
      for (let b = startBatch; b < total; b++) {
        const indices = order.subarray(b * batchSize, Math.min((b + 1) * batchSize, split.count));
        const n = indices.length;
        const labels = new Int32Array(n);
        for (let k = 0; k < n; k++) labels[k] = split.labels[indices[k]];
        const crop = augment
          ? drawCropFlip(new Rng(deriveSeed(seed!, "augment", epoch, b)), n)
          : undefined;
        const images = tf.tensor4d(
          assembleBatch(split, indices, crop),
          [n, CIFAR_SIZE, CIFAR_SIZE, CIFAR_CHANNELS],
          "float32",
        );
        yield { images, labels: tf.tensor1d(labels, "int32") };
      }
    },
  };
}
