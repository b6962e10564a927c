/**
 * Stratified subsets for reduced-scale runs.
 *
 * @module
 */
import type { CifarSplit } from "./load.ts";
import { CIFAR_IMAGE_BYTES } from "./spec.ts";

/**
 * Keeps the first `n` images of every class (in file order), preserving their order: a
 * deterministic, class-balanced subset for reduced-scale runs.
 *
 * @param split The split to subset.
 * @param n Images per class, a positive integer.
 * @param options `allowMissing`: keep classes that have fewer than `n` images instead of throwing.
 * @returns A new split with `min(n, available)` images of each class; `files` is kept.
 * @throws {RangeError} If `n` is not a positive integer, or a class has fewer than `n` images.
 * @example
 * ```ts
 * import { subsetPerClass, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split: CifarSplit = {
 *   dataset: "cifar10", split: "train", labelKind: "class", count: 4,
 *   images: new Uint8Array(4 * 3072).map((_, i) => Math.floor(i / 3072)),
 *   labels: new Uint8Array([1, 0, 1, 0]),
 *   classNames: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], files: [],
 * };
 * const small = subsetPerClass(split, 1, { allowMissing: true });
 * assert.deepEqual([...small.labels], [1, 0]);
 * assert.equal(small.images[3072], 1); // the second kept image is image 1
 * ```
 */
export function subsetPerClass(
  split: CifarSplit,
  n: number,
  options: { readonly allowMissing?: boolean } = {},
): CifarSplit {
  if (!Number.isInteger(n) || n <= 0) {
    throw new RangeError(`subsetPerClass: n must be a positive integer, got ${n}`);
  }
  const classes = split.classNames.length;
  const taken = new Array<number>(classes).fill(0);
  const keep: number[] = [];
  for (let i = 0; i < split.count; i++) {
    const label = split.labels[i];
    if (taken[label] < n) {
      taken[label]++;
      keep.push(i);
    }
  }
  if (!options.allowMissing) {
    const short = taken.map((t, c) => [c, t]).filter(([, t]) => t < n);
    if (short.length > 0) {
      throw new RangeError(
        `subsetPerClass: ${split.dataset} ${split.split} has fewer than ${n} images in ` +
          `${short.length} class(es) (e.g. class ${short[0][0]} "${
            split.classNames[short[0][0]]
          }" has ${short[0][1]}); lower n or pass { allowMissing: true }`,
      );
    }
  }
  const images = new Uint8Array(keep.length * CIFAR_IMAGE_BYTES);
  const labels = new Uint8Array(keep.length);
  keep.forEach((src, dst) => {
    images.set(
      split.images.subarray(src * CIFAR_IMAGE_BYTES, (src + 1) * CIFAR_IMAGE_BYTES),
      dst * CIFAR_IMAGE_BYTES,
    );
    labels[dst] = split.labels[src];
  });
  return Object.freeze({ ...split, count: keep.length, images, labels });
}
