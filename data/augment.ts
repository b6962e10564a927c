/**
 * Training augmentation of CIFAR ResNets: random crop 32 with 4-pixel zero padding and random
 * horizontal flip, as torchvision's `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`.
 *
 * Order, matching torchvision's `Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
 * ToTensor(), Normalize(mean, std)])`: crop and flip act on the raw image, whose padding is pixel
 * value 0 (black), and normalisation comes after. So padded pixels end up as `-mean / std` in
 * normalised space, exactly as in PyTorch.
 *
 * Two implementations, equal up to float32 rounding and both tested against a plain reference:
 * - `assembleBatch` (used by `batches`): one pass over the raw uint8 bytes that gathers, crops,
 *   flips and normalises through a lookup table; fastest on wasm and cpu (`deno task bench:data`).
 * - {@linkcode cropFlip} (here): the same on a tensor, for data already on a backend: `tf.pad`
 *   with 0, then one `tf.gather` whose source indices (per-image offsets broadcast against row and
 *   column ranges, columns mirrored where flipped) select each 32x32 window. A gather only copies,
 *   so it is exact on every backend. (`tf.image.cropAndResize` with nearest sampling and swapped
 *   box edges would do it in one op and is exact on cpu, but tfjs-backend-wasm 4.22 samples the
 *   wrong columns for non-flipped boxes with a horizontal offset.)
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor4D } from "@mfi/core";
import type { Rng } from "@mfi/core";

/** Per-image crop offsets and flips of one batch. */
export interface CropFlipParams {
  /** Row offset of each crop in the padded image, in [0, 2 * padding]. */
  readonly top: Int32Array;
  /** Column offset of each crop in the padded image, in [0, 2 * padding]. */
  readonly left: Int32Array;
  /** 1 where the image is flipped left-right, else 0. */
  readonly flip: Uint8Array;
}

/**
 * Draws crop offsets and flips for `count` images: offsets uniform in [0, 2 * padding], flip with
 * probability 1/2. The draws per image are, in order: top, left, flip.
 *
 * @param rng The generator to draw from (advanced by 3 draws per image).
 * @param count Number of images.
 * @param padding Zero padding on each side (default 4).
 * @returns The parameters.
 * @throws {RangeError} If `count` or `padding` is not a non-negative integer.
 * @example
 * ```ts
 * import { Rng } from "@mfi/core";
 * import { drawCropFlip } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const p = drawCropFlip(new Rng(1), 100);
 * assert.ok(p.top.every((t) => t >= 0 && t <= 8));
 * assert.deepEqual(p, drawCropFlip(new Rng(1), 100));
 * ```
 */
export function drawCropFlip(rng: Rng, count: number, padding = 4): CropFlipParams {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`drawCropFlip: count must be a non-negative integer, got ${count}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`drawCropFlip: padding must be a non-negative integer, got ${padding}`);
  }
  const top = new Int32Array(count);
  const left = new Int32Array(count);
  const flip = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    top[i] = rng.int(2 * padding + 1);
    left[i] = rng.int(2 * padding + 1);
    flip[i] = rng.next() < 0.5 ? 1 : 0;
  }
  return { top, left, flip };
}

/**
 * Pads each image with `padding` zero pixels on every side, takes the `h x w` window at
 * (`top[i]`, `left[i]`) and flips it left-right where `flip[i]` is 1. Works on raw pixel values
 * (pad value 0 = black), before normalisation.
 *
 * @param pixels Raw images `[n, h, w, c]`, float32.
 * @param params Offsets and flips of the `n` images.
 * @param padding Zero padding on each side (default 4).
 * @returns The augmented images, same shape (the caller disposes).
 * @throws {RangeError} If the parameters do not match the batch or an offset is out of range.
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { cropFlip } from "@mfi/data";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
 * const params = { top: Int32Array.of(1), left: Int32Array.of(1), flip: Uint8Array.of(1) };
 * const y = cropFlip(x, params, 1);
 * assert.deepEqual([...y.dataSync()], [2, 1, 4, 3]); // offset (1, 1) is the identity, then flipped
 * tf.dispose([x, y]);
 * ```
 */
export function cropFlip(pixels: Tensor4D, params: CropFlipParams, padding = 4): Tensor4D {
  const [n, h, w] = pixels.shape;
  if (params.top.length !== n || params.left.length !== n || params.flip.length !== n) {
    throw new RangeError(
      `cropFlip: params hold ${params.top.length}/${params.left.length}/${params.flip.length} ` +
        `top/left/flip values for a batch of ${n} images`,
    );
  }
  const ph = h + 2 * padding;
  const pw = w + 2 * padding;
  for (let i = 0; i < n; i++) {
    const t = params.top[i];
    const l = params.left[i];
    if (!(t >= 0 && t <= 2 * padding && l >= 0 && l <= 2 * padding)) {
      throw new RangeError(
        `cropFlip: image ${i} has offset (${t}, ${l}), expected both in [0, ${2 * padding}]`,
      );
    }
  }
  const c = pixels.shape[3];
  return tf.tidy(() => {
    const padded = padding > 0
      ? tf.pad(pixels, [[0, 0], [padding, padding], [padding, padding], [0, 0]], 0)
      : pixels;
    // Source pixel of output (i, y, x) in the padded batch flattened to [n * ph * pw, c]:
    // i * ph * pw + (top_i + y) * pw + left_i + (flip_i ? w - 1 - x : x).
    const top = tf.tensor3d(params.top, [n, 1, 1], "int32");
    const left = tf.tensor3d(params.left, [n, 1, 1], "int32");
    const flip = tf.tensor3d(Int32Array.from(params.flip), [n, 1, 1], "int32");
    const image = tf.reshape(tf.range(0, n * ph * pw, ph * pw, "int32"), [n, 1, 1]);
    const y = tf.reshape(tf.range(0, h, 1, "int32"), [1, h, 1]);
    const x = tf.reshape(tf.range(0, w, 1, "int32"), [1, 1, w]);
    const column = tf.add(
      x,
      tf.mul(flip, tf.sub(tf.scalar(w - 1, "int32"), tf.mul(x, tf.scalar(2, "int32")))),
    );
    const index = tf.addN(
      [image, tf.mul(tf.add(top, y), tf.scalar(pw, "int32")), left, column].map((t) =>
        tf.broadcastTo(t, [n, h, w])
      ),
    );
    const flat = tf.reshape(padded, [n * ph * pw, c]);
    return tf.reshape(tf.gather(flat, tf.reshape(index, [-1])), [n, h, w, c]);
  });
}
