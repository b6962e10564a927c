/**
 * Assembling a batch's float32 data straight from the raw uint8 images: gather, optional
 * crop/flip, and normalisation in one pass over the bytes, through a 256-entry lookup table per
 * channel. This is the pipeline {@linkcode batches} and {@linkcode toBatch} use: on the wasm and
 * cpu backends it measured faster than the equivalent tensor ops (`tasks/bench_data.ts`: the
 * tensor versions pay for int32 index arithmetic, a gather and two elementwise ops per batch,
 * where this is one sequential copy), and it is exact on every backend. Results equal
 * `normalizePixels(cropFlip(pixels, params))` up to float32 rounding (tested).
 *
 * @module
 */
import type { CropFlipParams } from "./augment.ts";
import type { CifarSplit } from "./load.ts";
import { CIFAR_IMAGE_BYTES, CIFAR_SIZE, type CifarDataset, cifarSpec } from "./spec.ts";

const tables = new Map<CifarDataset, Float32Array>();

/**
 * The normalisation lookup table of a dataset: entry `3 * v + c` is `(v / 255 - mean[c]) / std[c]`
 * for pixel value `v` in channel `c`, computed in float64 and stored as float32.
 *
 * @param dataset Whose mean and std to use.
 * @returns 768 values (shared; do not modify).
 * @example
 * ```ts
 * import { normalizationTable } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const t = normalizationTable("cifar10");
 * assert.equal(t[0], Math.fround(-0.4914 / 0.2470)); // black red = the padding value
 * ```
 */
export function normalizationTable(dataset: CifarDataset): Float32Array {
  let table = tables.get(dataset);
  if (table === undefined) {
    const { mean, std } = cifarSpec(dataset);
    table = new Float32Array(256 * 3);
    for (let v = 0; v < 256; v++) {
      for (let c = 0; c < 3; c++) table[3 * v + c] = (v / 255 - mean[c]) / std[c];
    }
    tables.set(dataset, table);
  }
  return table;
}

/**
 * Builds the normalised NHWC float32 data of the images at `indices`, each optionally cropped
 * from its 4-pixel zero-padded version and flipped (torchvision order: crop and flip on raw
 * pixels, padding = pixel value 0, then normalise).
 *
 * @param split The split holding the raw images.
 * @param indices Image indices (each an integer in [0, count)).
 * @param crop Per-image offsets and flips (see `drawCropFlip`), or undefined for none.
 * @returns `indices.length * 3072` values, ready for `tf.tensor4d(data, [n, 32, 32, 3])`.
 * @throws {RangeError} If an index is out of range, or `crop` does not match `indices` or holds
 *   an offset outside [0, 8].
 * @example
 * ```ts
 * import { assembleBatch, normalizationTable, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split = { dataset: "cifar10", count: 1, images: new Uint8Array(3072).fill(255) } as CifarSplit;
 * const crop = { top: Int32Array.of(0), left: Int32Array.of(0), flip: Uint8Array.of(0) };
 * const data = assembleBatch(split, [0], crop);
 * const table = normalizationTable("cifar10");
 * assert.equal(data[0], table[0]); // top-left corner is padding
 * assert.equal(data[(4 * 32 + 4) * 3], table[3 * 255]); // pixel (4, 4) is the image's (0, 0)
 * ```
 */
export function assembleBatch(
  split: CifarSplit,
  indices: ArrayLike<number>,
  crop?: CropFlipParams,
): Float32Array {
  const n = indices.length;
  const table = normalizationTable(split.dataset);
  const images = split.images;
  const out = new Float32Array(n * CIFAR_IMAGE_BYTES);
  const pad = 4;
  if (
    crop !== undefined &&
    (crop.top.length !== n || crop.left.length !== n || crop.flip.length !== n)
  ) {
    throw new RangeError(
      `assembleBatch: crop holds ${crop.top.length}/${crop.left.length}/${crop.flip.length} ` +
        `top/left/flip values for ${n} indices`,
    );
  }
  const p0 = table[0], p1 = table[1], p2 = table[2];
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    if (!(Number.isInteger(i) && i >= 0 && i < split.count)) {
      throw new RangeError(`assembleBatch: index ${i} is out of range [0, ${split.count})`);
    }
    const src = i * CIFAR_IMAGE_BYTES;
    const dst = k * CIFAR_IMAGE_BYTES;
    if (crop === undefined) {
      for (let j = 0; j < CIFAR_IMAGE_BYTES; j += 3) {
        out[dst + j] = table[3 * images[src + j]];
        out[dst + j + 1] = table[3 * images[src + j + 1] + 1];
        out[dst + j + 2] = table[3 * images[src + j + 2] + 2];
      }
      continue;
    }
    const top = crop.top[k], left = crop.left[k], flip = crop.flip[k] === 1;
    if (!(top >= 0 && top <= 2 * pad && left >= 0 && left <= 2 * pad)) {
      throw new RangeError(
        `assembleBatch: image ${k} has crop offset (${top}, ${left}), expected both in [0, 8]`,
      );
    }
    for (let y = 0; y < CIFAR_SIZE; y++) {
      const sy = y + top - pad;
      const row = dst + y * CIFAR_SIZE * 3;
      if (sy < 0 || sy >= CIFAR_SIZE) {
        for (let x = 0; x < CIFAR_SIZE * 3; x += 3) {
          out[row + x] = p0;
          out[row + x + 1] = p1;
          out[row + x + 2] = p2;
        }
        continue;
      }
      const srcRow = src + sy * CIFAR_SIZE * 3;
      for (let x = 0; x < CIFAR_SIZE; x++) {
        const sx = (flip ? CIFAR_SIZE - 1 - x : x) + left - pad;
        const o = row + 3 * x;
        if (sx < 0 || sx >= CIFAR_SIZE) {
          out[o] = p0;
          out[o + 1] = p1;
          out[o + 2] = p2;
        } else {
          const s = srcRow + 3 * sx;
          out[o] = table[3 * images[s]];
          out[o + 1] = table[3 * images[s + 1] + 1];
          out[o + 2] = table[3 * images[s + 2] + 2];
        }
      }
    }
  }
  return out;
}
