/**
 * Image decoding for inference: PNG and JPEG of any size, decoded in pure TypeScript/JavaScript
 * (`fast-png`, `jpeg-js`: no native code, no file system, works in sandboxes and browsers), then
 * resized and centre-cropped to a small square RGB image (32x32 for CIFAR models).
 *
 * Conventions (what {@linkcode decodeImage} and {@linkcode resizeCenterCrop} do):
 * - Output pixels are 8-bit RGB, row-major, channels last (HWC), like CIFAR's images after
 *   transposing its CHW planes.
 * - Grey images are replicated to three channels; an alpha channel is dropped (as PIL's
 *   `convert("RGB")` does); 16-bit samples keep their high byte (`v >> 8`); palette and 1/2/4-bit
 *   PNGs are expanded (grey levels scaled to 0..255). Colour profiles (ICC, gamma) and EXIF
 *   orientation are not applied (as PIL's `Image.open(...).convert("RGB")`), and an animated PNG
 *   gives its default image.
 * - Resizing keeps the aspect ratio: the centred square of side `min(width, height)` is resampled
 *   to `size x size`, which equals "scale the shorter side to `size`, then centre-crop". Downscaling
 *   averages each output pixel's exact source footprint (area/box filter with fractional edge
 *   weights, like OpenCV's `INTER_AREA`); upscaling interpolates bilinearly at pixel centres.
 *   Values are rounded to the nearest integer.
 *
 * Hostile input: before the decoder allocates anything, the header's dimensions are checked
 * against `maxPixels`, a PNG's image data is inflated slice by slice and refused as soon as it
 * passes what the declared dimensions need (an embedded ICC profile: 4 MiB), and a JPEG's marker
 * segments are walked (frame header present, segments inside the file, at most 100 scans). A
 * decompression bomb therefore costs at most the declared image size plus a few megabytes.
 *
 * @module
 */
import { decode as decodePng } from "fast-png";
import jpeg from "jpeg-js";
import { Unzlib } from "fflate";

/** Image container formats {@linkcode decodeImage} reads. */
export type ImageFormat = "png" | "jpeg";

/** A decoded 8-bit RGB image, HWC row-major: `data.length === width * height * 3`. */
export interface RgbImage {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** Pixel values, `[r, g, b, r, g, b, ...]` row by row. */
  readonly data: Uint8Array;
}

/** Options of {@linkcode decodeImage} and {@linkcode imageToSquareRgb}. */
export interface DecodeImageOptions {
  /**
   * Largest accepted `width * height` (default 25,000,000), checked before the pixel data is
   * inflated, so that a small compressed file cannot claim gigabytes of memory.
   */
  readonly maxPixels?: number;
}

/** Options of {@linkcode imageToSquareRgb}. */
export interface ImageToSquareOptions extends DecodeImageOptions {
  /** Side of the output square (default 32). */
  readonly size?: number;
}

/** Thrown when bytes are not a supported image or are corrupt; `message` says which and why. */
export class ImageDecodeError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageDecodeError";
  }
}

const DEFAULT_MAX_PIXELS = 25_000_000;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Recognises PNG and JPEG by their leading bytes (magic numbers), not by a file name or a
 * declared content type.
 *
 * @param bytes The start of a file (at least 8 bytes for PNG, 3 for JPEG).
 * @returns `"png"`, `"jpeg"`, or `undefined` for anything else.
 * @example
 * ```ts
 * import { sniffImageFormat } from "@mfi/serve";
 * import assert from "node:assert/strict";
 * assert.equal(sniffImageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), "jpeg");
 * assert.equal(sniffImageFormat(new Uint8Array([1, 2, 3])), undefined);
 * ```
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  return undefined;
}

function checkMaxPixels(maxPixels: number): void {
  if (!Number.isInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
}

function checkDimensions(format: string, width: number, height: number, maxPixels: number): void {
  if (!(width >= 1 && height >= 1)) {
    throw new ImageDecodeError(`Cannot decode ${format}: invalid size ${width}x${height}`);
  }
  if (width * height > maxPixels) {
    throw new ImageDecodeError(
      `Cannot decode ${format}: ${width}x${height} = ${width * height} pixels exceeds the limit ` +
        `of ${maxPixels}; send a smaller image or raise maxPixels`,
    );
  }
}

/** Unpacks rows of 1/2/4-bit samples (each row starts on a byte boundary) into one byte each. */
function unpackBits(data: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  if (data.length < rowBytes * height) {
    throw new ImageDecodeError(
      `Cannot decode png: ${data.length} bytes of ${depth}-bit samples, expected ${
        rowBytes * height
      }`,
    );
  }
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Samples per pixel of each PNG colour type, and the bit depths it allows. */
const PNG_COLOUR_TYPES: Readonly<Record<number, readonly [number, readonly number[]]>> = {
  0: [1, [1, 2, 4, 8, 16]], // grey
  2: [3, [8, 16]], // RGB
  3: [1, [1, 2, 4, 8]], // palette
  4: [2, [8, 16]], // grey + alpha
  6: [4, [8, 16]], // RGBA
};

/** The largest embedded ICC profile accepted (inflated), in bytes. */
const MAX_ICC_PROFILE_BYTES = 4 * 1024 * 1024;

/** Size of the input slices fed to the inflater: bounds its output per step to about 4 MB. */
const INFLATE_SLICE = 4096;

/**
 * Bytes of filtered scanlines a PNG of this header holds after inflation: per row one filter
 * byte plus the packed samples; Adam7-interlaced images store seven sub-images.
 */
function pngRawBytes(
  width: number,
  height: number,
  bitsPerPixel: number,
  interlaced: boolean,
): number {
  const rows = (
    w: number,
    h: number,
  ) => (w > 0 && h > 0 ? h * (1 + Math.ceil((w * bitsPerPixel) / 8)) : 0);
  if (!interlaced) return rows(width, height);
  // Adam7 passes: [x0, y0, dx, dy].
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [
    1,
    0,
    2,
    2,
  ], [
    0,
    1,
    1,
    2,
  ]];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    total += rows(Math.ceil((width - x0) / dx), Math.ceil((height - y0) / dy));
  }
  return total;
}

/**
 * Inflates zlib data slice by slice and throws as soon as the output passes `limit` bytes, so a
 * few kilobytes that would inflate to gigabytes cost at most `limit` plus a few megabytes.
 */
class CappedInflater {
  #inflated = 0;
  readonly #inflater: Unzlib;

  constructor(readonly limit: number, onOver: (inflated: number) => never) {
    this.#inflater = new Unzlib((chunk) => {
      this.#inflated += chunk.length;
      if (this.#inflated > this.limit) onOver(this.#inflated);
    });
  }

  /** Bytes produced so far. */
  get inflated(): number {
    return this.#inflated;
  }

  push(data: Uint8Array): void {
    for (let i = 0; i < data.length; i += INFLATE_SLICE) {
      try {
        this.#inflater.push(data.subarray(i, i + INFLATE_SLICE), false);
      } catch (e) {
        if (e instanceof ImageDecodeError) throw e;
        throw new ImageDecodeError(
          `Cannot decode png: compressed data is corrupt (${(e as Error).message})`,
          { cause: e },
        );
      }
    }
  }
}

/**
 * Walks a PNG's chunks without decoding pixels: checks the layout, the header's dimensions
 * against `maxPixels`, and that the image data (IDAT) inflates to no more than the header's
 * dimensions need (and an embedded ICC profile to no more than 4 MiB). Runs before the decoder
 * allocates anything, with memory bounded by the declared image size.
 */
function checkPngBounds(bytes: Uint8Array, maxPixels: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string): never => {
    throw new ImageDecodeError(`Cannot decode png: ${what}`);
  };
  // IHDR is the first chunk: length(4) "IHDR"(4) width(4) height(4) depth colour method filter
  // interlace, big-endian.
  if (bytes.length < 33) bad(`${bytes.length} bytes is too short for IHDR`);
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR" || view.getUint32(8) !== 13) {
    bad("the first chunk is not IHDR (corrupt file)");
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  checkDimensions("png", width, height, maxPixels);
  const depth = bytes[24];
  const colourType = bytes[25];
  const layout = PNG_COLOUR_TYPES[colourType];
  if (!layout) bad(`unknown colour type ${colourType}`);
  if (!layout[1].includes(depth)) {
    bad(`bit depth ${depth} is invalid for colour type ${colourType}`);
  }
  if (bytes[28] > 1) bad(`unknown interlace method ${bytes[28]}`);
  const limit = pngRawBytes(width, height, layout[0] * depth, bytes[28] === 1);
  const idat = new CappedInflater(limit, (n) =>
    bad(
      `the image data inflates to more than the ${limit} bytes a ${width}x${height} image needs ` +
        `(stopped at ${n}): a decompression bomb or a corrupt file`,
    ));
  let pos = 8;
  for (;;) {
    if (pos + 12 > bytes.length) bad(`truncated: no IEND chunk after byte ${pos}`);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (length > 0x7fffffff || pos + 12 + length > bytes.length) {
      bad(`truncated: chunk ${JSON.stringify(type)} at byte ${pos} claims ${length} bytes`);
    }
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "IDAT") idat.push(data);
    else if (type === "iCCP") {
      const nul = data.indexOf(0);
      if (nul < 0 || nul + 2 > data.length) bad("iCCP chunk is malformed");
      new CappedInflater(MAX_ICC_PROFILE_BYTES, (n) =>
        bad(
          `the embedded ICC profile inflates to more than ${MAX_ICC_PROFILE_BYTES} bytes ` +
            `(stopped at ${n}): a decompression bomb or a corrupt file`,
        )).push(data.subarray(nul + 2));
    } else if (type === "IEND") break;
    pos += 12 + length;
  }
}

function pngToRgb(bytes: Uint8Array, maxPixels: number): RgbImage {
  checkPngBounds(bytes, maxPixels);
  let png;
  try {
    png = decodePng(bytes, { checkCrc: true });
  } catch (e) {
    throw new ImageDecodeError(`Cannot decode png: ${(e as Error).message} (corrupt file?)`, {
      cause: e,
    });
  }
  const { width, height, channels, depth } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (png.palette) {
    const indexes = depth === 8 ? png.data as Uint8Array : unpackBits(
      png.data as Uint8Array,
      width,
      height,
      depth,
    );
    if (indexes.length < n) throw new ImageDecodeError("Cannot decode png: palette data too short");
    for (let i = 0; i < n; i++) {
      const color = png.palette[indexes[i]];
      if (!color) {
        throw new ImageDecodeError(
          `Cannot decode png: palette index ${indexes[i]} out of range (${png.palette.length})`,
        );
      }
      out[3 * i] = color[0];
      out[3 * i + 1] = color[1];
      out[3 * i + 2] = color[2];
    }
    return { width, height, data: out };
  }
  let samples: ArrayLike<number>;
  let scale = 1;
  let shift = 0;
  if (depth === 16) {
    samples = png.data;
    shift = 8;
  } else if (depth === 8) {
    samples = png.data;
  } else {
    // Low bit depths only exist for grey images (channels === 1).
    samples = unpackBits(png.data as Uint8Array, width, height, depth);
    scale = 255 / ((1 << depth) - 1);
  }
  if (samples.length < n * channels) {
    throw new ImageDecodeError(
      `Cannot decode png: ${samples.length} samples, expected ${n * channels}`,
    );
  }
  const colour = channels >= 3;
  for (let i = 0; i < n; i++) {
    const base = i * channels;
    for (let c = 0; c < 3; c++) {
      const v = samples[base + (colour ? c : 0)];
      out[3 * i + c] = scale === 1 ? v >> shift : Math.round(v * scale);
    }
  }
  return { width, height, data: out };
}

/** The most scans (SOS segments) a JPEG may have; progressive encoders write about 10. */
const MAX_JPEG_SCANS = 100;

/**
 * Walks a JPEG's marker segments without decoding: the frame header's dimensions are checked
 * against `maxPixels` before anything is allocated, a missing frame header or a truncated
 * segment is an error, and the number of scans is capped (each scan is a full pass over the
 * image, so thousands of tiny scans would make a small file cost minutes of CPU).
 */
function checkJpegBounds(bytes: Uint8Array, maxPixels: number): void {
  const bad = (what: string): never => {
    throw new ImageDecodeError(`Cannot decode jpeg: ${what}`);
  };
  const u16 = (i: number) => (bytes[i] << 8) | bytes[i + 1];
  let frame = false;
  let scans = 0;
  let pos = 2;
  while (pos < bytes.length) {
    if (bytes[pos] !== 0xff) bad(`expected a marker at byte ${pos} (corrupt file)`);
    while (pos < bytes.length && bytes[pos] === 0xff) pos++; // fill bytes
    if (pos >= bytes.length) break;
    const marker = bytes[pos++];
    if (marker === 0xd9) return; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue; // no length
    if (pos + 2 > bytes.length) break;
    const length = u16(pos);
    if (length < 2 || pos + length > bytes.length) {
      bad(`truncated: segment 0x${marker.toString(16)} at byte ${pos - 2} claims ${length} bytes`);
    }
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame) {
      if (length < 8) bad("frame header is too short");
      const height = u16(pos + 3);
      const width = u16(pos + 5);
      if (height === 0) bad("height 0 (set by a later DNL marker) is not supported");
      checkDimensions("jpeg", width, height, maxPixels);
      frame = true;
    }
    pos += length;
    if (marker === 0xda) {
      if (!frame) bad("a scan comes before the frame header (corrupt file)");
      if (++scans > MAX_JPEG_SCANS) {
        bad(`more than ${MAX_JPEG_SCANS} scans; refused (a decoding-time bomb or a corrupt file)`);
      }
      // Entropy-coded data runs to the next marker that is not a stuffed 0xff00 or a restart.
      while (pos + 1 < bytes.length) {
        if (
          bytes[pos] === 0xff && bytes[pos + 1] !== 0 &&
          !(bytes[pos + 1] >= 0xd0 && bytes[pos + 1] <= 0xd7)
        ) {
          break;
        }
        pos++;
      }
      if (pos + 1 >= bytes.length) pos = bytes.length;
    }
  }
  if (!frame) bad("truncated: no frame header (SOF) found");
}

function jpegToRgb(bytes: Uint8Array, maxPixels: number): RgbImage {
  checkJpegBounds(bytes, maxPixels);
  let img;
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: maxPixels / 1e6,
      maxMemoryUsageInMB: Math.max(64, Math.ceil((maxPixels * 12) / 1e6)),
    });
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (/maxResolutionInMP|resolution/i.test(msg)) {
      throw new ImageDecodeError(
        `Cannot decode jpeg: ${msg}; the limit is ${maxPixels} pixels (raise maxPixels)`,
        { cause: e },
      );
    }
    throw new ImageDecodeError(`Cannot decode jpeg: ${msg} (corrupt file?)`, { cause: e });
  }
  checkDimensions("jpeg", img.width, img.height, maxPixels);
  const data = img.data as Uint8Array;
  if (data.length !== img.width * img.height * 3) {
    throw new ImageDecodeError(
      `Cannot decode jpeg: decoder returned ${data.length} bytes for ${img.width}x${img.height}`,
    );
  }
  return { width: img.width, height: img.height, data };
}

/**
 * Decodes a PNG or JPEG file (detected by content, see {@linkcode sniffImageFormat}) to 8-bit
 * RGB. Grey, grey+alpha, RGB, RGBA, palette, 1/2/4/8/16-bit PNGs and baseline/progressive JPEGs
 * are supported; alpha is dropped and 16-bit samples keep their high byte.
 *
 * @param bytes The whole file.
 * @param options Pixel-count limit.
 * @returns The decoded image.
 * @throws {ImageDecodeError} If the bytes are neither PNG nor JPEG, are corrupt or truncated,
 *   the image has more than `maxPixels` pixels, its PNG data inflates past what its dimensions
 *   need, or a JPEG has more than 100 scans.
 * @throws {RangeError} If `maxPixels` is not a positive integer.
 * @example
 * ```ts
 * import { decodeImage } from "@mfi/serve";
 * import { encode } from "fast-png";
 * import assert from "node:assert/strict";
 * const grey = encode({ width: 2, height: 1, data: new Uint8Array([0, 200]), channels: 1 });
 * const img = decodeImage(grey);
 * assert.deepEqual([img.width, img.height], [2, 1]);
 * assert.deepEqual(Array.from(img.data), [0, 0, 0, 200, 200, 200]);
 * assert.throws(() => decodeImage(new Uint8Array([1, 2, 3])), /neither PNG nor JPEG/);
 * ```
 */
export function decodeImage(bytes: Uint8Array, options: DecodeImageOptions = {}): RgbImage {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  checkMaxPixels(maxPixels);
  const format = sniffImageFormat(bytes);
  if (format === "png") return pngToRgb(bytes, maxPixels);
  if (format === "jpeg") return jpegToRgb(bytes, maxPixels);
  throw new ImageDecodeError(
    `Cannot decode image: the ${bytes.length} bytes are neither PNG nor JPEG ` +
      `(first bytes ${
        Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0"))
          .join(" ")
      })`,
  );
}

/** Per output index along one axis: the first source index and the weights from there on. */
interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly weights: Float64Array;
  readonly stride: number;
}

/**
 * Resampling weights for one axis: `out` samples covering the source window `[x0, x0 + len)` of
 * an axis with `n` pixels. Box (area) weights when shrinking, bilinear when enlarging.
 */
function axisWeights(n: number, x0: number, len: number, out: number): AxisWeights {
  const step = len / out;
  const stride = Math.ceil(step) + 2;
  const start = new Int32Array(out);
  const count = new Int32Array(out);
  const weights = new Float64Array(out * stride);
  for (let o = 0; o < out; o++) {
    if (step >= 1) {
      const lo = x0 + o * step;
      const hi = lo + step;
      const first = Math.floor(lo);
      const last = Math.min(Math.ceil(hi), n) - 1;
      start[o] = first;
      count[o] = last - first + 1;
      for (let s = first; s <= last; s++) {
        const cover = Math.min(hi, s + 1) - Math.max(lo, s);
        weights[o * stride + s - first] = cover / step;
      }
    } else {
      const c = Math.min(Math.max(x0 + (o + 0.5) * step - 0.5, 0), n - 1);
      const first = Math.min(Math.floor(c), n - 2 < 0 ? 0 : n - 2);
      const frac = n === 1 ? 0 : c - first;
      start[o] = first;
      count[o] = n === 1 ? 1 : 2;
      weights[o * stride] = 1 - frac;
      if (n > 1) weights[o * stride + 1] = frac;
    }
  }
  return { start, count, weights, stride };
}

/**
 * Resizes and centre-crops an RGB image to `size x size`: the centred square of side
 * `min(width, height)` is resampled (area averaging when shrinking, bilinear when enlarging),
 * which is the same as scaling the shorter side to `size` and cropping the centre.
 *
 * @param image An RGB image of any size.
 * @param size Output side (default 32).
 * @returns A new `size x size` RGB image (the input itself is never modified).
 * @throws {RangeError} If `size` is not a positive integer or the image data has the wrong length.
 * @example
 * ```ts
 * import { resizeCenterCrop } from "@mfi/serve";
 * import assert from "node:assert/strict";
 * // 4x2 image: left half black, right half white; the centre 2x2 square is averaged to 1x1.
 * const data = new Uint8Array(4 * 2 * 3);
 * for (let y = 0; y < 2; y++) for (let x = 2; x < 4; x++) data.fill(255, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
 * const out = resizeCenterCrop({ width: 4, height: 2, data }, 1);
 * assert.deepEqual(Array.from(out.data), [128, 128, 128]);
 * ```
 */
export function resizeCenterCrop(image: RgbImage, size = 32): RgbImage {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`Cannot resize: size must be a positive integer, got ${size}`);
  }
  const { width: w, height: h, data } = image;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new RangeError(`Cannot resize: invalid image size ${w}x${h}`);
  }
  if (data.length !== w * h * 3) {
    throw new RangeError(
      `Cannot resize: a ${w}x${h} RGB image needs ${w * h * 3} bytes, got ${data.length}`,
    );
  }
  const m = Math.min(w, h);
  const xw = axisWeights(w, (w - m) / 2, m, size);
  const yw = axisWeights(h, (h - m) / 2, m, size);
  // Horizontal pass over the rows the vertical pass reads.
  const rowLo = yw.start[0];
  const rowHi = yw.start[size - 1] + yw.count[size - 1];
  const tmp = new Float64Array((rowHi - rowLo) * size * 3);
  for (let y = rowLo; y < rowHi; y++) {
    const src = y * w * 3;
    const dst = (y - rowLo) * size * 3;
    for (let o = 0; o < size; o++) {
      let r = 0, g = 0, b = 0;
      const s0 = xw.start[o];
      for (let k = 0; k < xw.count[o]; k++) {
        const wt = xw.weights[o * xw.stride + k];
        const p = src + (s0 + k) * 3;
        r += wt * data[p];
        g += wt * data[p + 1];
        b += wt * data[p + 2];
      }
      tmp[dst + o * 3] = r;
      tmp[dst + o * 3 + 1] = g;
      tmp[dst + o * 3 + 2] = b;
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let oy = 0; oy < size; oy++) {
    const s0 = yw.start[oy];
    for (let ox = 0; ox < size; ox++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < yw.count[oy]; k++) {
          v += yw.weights[oy * yw.stride + k] * tmp[((s0 + k - rowLo) * size + ox) * 3 + c];
        }
        out[(oy * size + ox) * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
      }
    }
  }
  return { width: size, height: size, data: out };
}

/**
 * Decodes a PNG or JPEG and resizes/centre-crops it to `size x size` RGB (see the module doc):
 * the input a CIFAR classifier expects.
 *
 * @param bytes The whole image file.
 * @param options Output size (default 32) and pixel limit.
 * @returns `size * size * 3` bytes, HWC RGB.
 * @throws {ImageDecodeError} If the bytes are not a valid PNG/JPEG or are too large.
 * @throws {RangeError} On an invalid `size` or `maxPixels`.
 * @example
 * ```ts
 * import { imageToSquareRgb } from "@mfi/serve";
 * import { encode } from "fast-png";
 * import assert from "node:assert/strict";
 * const rgba = new Uint8Array(64 * 48 * 4).fill(255);
 * const png = encode({ width: 64, height: 48, data: rgba, channels: 4 });
 * const pixels = imageToSquareRgb(png);
 * assert.equal(pixels.length, 32 * 32 * 3);
 * assert.ok(pixels.every((v) => v === 255));
 * ```
 */
export function imageToSquareRgb(
  bytes: Uint8Array,
  options: ImageToSquareOptions = {},
): Uint8Array {
  return resizeCenterCrop(decodeImage(bytes, options), options.size ?? 32).data;
}
