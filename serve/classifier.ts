/**
 * Inference from a bundle: {@linkcode loadClassifier} reads a `.mfi` bundle (bytes, a `file:` URL
 * or an `http(s):` URL), selects the best backend with `selectBackend`, builds and verifies the
 * model, and returns a {@linkcode Classifier} whose `classify` maps 32x32 RGB images to top-k
 * labels with probabilities.
 *
 * Concurrency: calls to `classify` are queued and run one forward pass at a time (never two
 * interleaved), and requests that arrive while a pass runs are merged into the next pass, up to
 * `maxBatch` images (micro-batching). Each pass disposes everything it creates, so the number of
 * live tensors is the same before and after any number of calls.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  type BackendChoice,
  disposeModule,
  selectBackend,
  type SelectBackendOptions,
} from "@mfi/core";
import { resizeCenterCrop, type RgbImage } from "./image.ts";
import type { StagedModel } from "@mfi/resnet";
import {
  BundleError,
  type BundleInfo,
  type BundleLimits,
  DEFAULT_BUNDLE_LIMITS,
  instantiateBundle,
  readBundle,
} from "./bundle.ts";

/** Side of the square RGB images the classifier's models take. */
export const INPUT_SIZE = 32;
/** Bytes of one input image: 32 x 32 x 3 (HWC, RGB, uint8). */
export const INPUT_BYTES: number = INPUT_SIZE * INPUT_SIZE * 3;

/**
 * A decoded image of any size with 8-bit RGB or RGBA pixels, row-major: an `RgbImage` from
 * `decodeImage` (`@mfi/serve`), or a browser/canvas `ImageData` (RGBA, alpha dropped).
 */
export interface DecodedPixels {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** `width * height * 3` (RGB) or `width * height * 4` (RGBA) values. */
  readonly data: Uint8Array | Uint8ClampedArray;
}

/**
 * Images to classify: either one `Uint8Array` holding N images of 3072 bytes back to back
 * (32x32 RGB, HWC), or an array whose items are 3072-byte images or decoded images of any size
 * (resized and centre-cropped to 32x32, see `resizeCenterCrop` in `@mfi/core`).
 */
export type ClassifierInput = Uint8Array | ReadonlyArray<Uint8Array | RgbImage | DecodedPixels>;

function toRgb(img: DecodedPixels, i: number): RgbImage {
  const { width: w, height: h, data } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new RangeError(`Cannot classify image ${i}: invalid size ${w}x${h}`);
  }
  if (data.length === w * h * 3) {
    return { width: w, height: h, data: data instanceof Uint8Array ? data : new Uint8Array(data) };
  }
  if (data.length !== w * h * 4) {
    throw new RangeError(
      `Cannot classify image ${i}: a ${w}x${h} image needs ${w * h * 3} (RGB) or ${
        w * h * 4
      } (RGBA) values, got ${data.length}`,
    );
  }
  const rgb = new Uint8Array(w * h * 3);
  for (let p = 0, q = 0; q < rgb.length; p += 4, q += 3) {
    rgb[q] = data[p];
    rgb[q + 1] = data[p + 1];
    rgb[q + 2] = data[p + 2];
  }
  return { width: w, height: h, data: rgb };
}

/** One label of a top-k answer. */
export interface Prediction {
  /** Class name from the bundle. */
  readonly label: string;
  /** Class index. */
  readonly index: number;
  /** Softmax probability. */
  readonly probability: number;
}

/** Options of {@linkcode Classifier.classify}. */
export interface ClassifyOptions {
  /** Number of labels per image, most probable first (default 5, capped at the class count). */
  readonly topK?: number;
}

/** Counters of a classifier (for health checks and leak tests). */
export interface ClassifierStats {
  /** Forward passes run. */
  readonly batches: number;
  /** Images classified. */
  readonly images: number;
  /** Live tfjs tensors in the process (`tf.memory().numTensors`). */
  readonly numTensors: number;
  /** Bytes held by tfjs tensors (`tf.memory().numBytes`). */
  readonly numBytes: number;
}

/** Milliseconds spent in each step of {@linkcode loadClassifier}. */
export interface LoadTimings {
  /** Reading (or fetching) and verifying the bundle; overlaps `backendMs`. */
  readonly bundleMs: number;
  /** Backend start-up (`selectBackend`); overlaps `bundleMs`. */
  readonly backendMs: number;
  /** Building the model from its spec and loading the weights. */
  readonly instantiateMs: number;
  /** The warm-up forward pass (0 without warm-up). */
  readonly warmUpMs: number;
  /** Everything, start to ready. */
  readonly totalMs: number;
}

/** A loaded model ready to classify. */
export interface Classifier {
  /** The bundle's verified description (spec, labels, normalisation, parameters, accuracy). */
  readonly info: BundleInfo;
  /** The backend the classifier runs on and why. */
  readonly backend: BackendChoice;
  /** Where {@linkcode loadClassifier}'s time went (cold-start analysis). */
  readonly loadTimings: LoadTimings;
  /**
   * Classifies images.
   *
   * @param images The images (see {@linkcode ClassifierInput}).
   * @param options `topK`.
   * @returns For each image, its top-k predictions, most probable first.
   * @throws {RangeError} If an image has the wrong size or `topK` is invalid.
   * @throws {Error} If the classifier was disposed.
   */
  classify(images: ClassifierInput, options?: ClassifyOptions): Promise<Prediction[][]>;
  /**
   * Reads the classifier's counters.
   *
   * @returns Counters and tfjs memory figures.
   */
  stats(): ClassifierStats;
  /** Frees the model's tensors; pending and later `classify` calls reject. Idempotent. */
  dispose(): void;
}

/** Options of {@linkcode loadClassifier}: backend selection plus inference settings. */
export interface LoadClassifierOptions extends SelectBackendOptions {
  /** Largest number of images per forward pass (default 32). */
  readonly maxBatch?: number;
  /** Run one forward pass at load so the first request does not pay kernel set-up (default true). */
  readonly warmUp?: boolean;
  /** The `fetch` used for `http(s):` URLs (default `globalThis.fetch`). */
  readonly fetch?: typeof fetch;
  /**
   * Accept plain `http:` model URLs (default false: only `https:`, whose transport is
   * authenticated; a bundle's SHA-256s do not prove where it came from).
   */
  readonly allowHttp?: boolean;
  /** What the bundle's spec may ask for (defaults: `DEFAULT_BUNDLE_LIMITS`). */
  readonly limits?: BundleLimits;
}

/**
 * The largest bundle a download may be: float32 parameters plus batch-norm statistics (never more
 * values than parameters) at the parameter limit, plus room for the header.
 */
function maxBundleBytes(limits: BundleLimits | undefined): number {
  const params = limits?.maxParameters ?? DEFAULT_BUNDLE_LIMITS.maxParameters;
  return params * 8 + 16 * 1024 * 1024;
}

/** Reads a response body, refusing it as soon as it passes `limit` bytes. */
async function readCapped(res: Response, limit: number, source: URL): Promise<Uint8Array> {
  const tooBig = (n: number | string) =>
    new BundleError(
      `Cannot load classifier: ${source} sends ${n} bytes, more than a bundle within the ` +
        `parameter limit can be (${limit}); raise limits.maxParameters if it is genuine`,
    );
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel();
    throw tooBig(declared);
  }
  if (res.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw tooBig(`over ${limit}`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

async function readSource(
  source: Uint8Array | URL,
  fetcher: typeof fetch,
  allowHttp: boolean,
  limits: BundleLimits | undefined,
): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (!(source instanceof URL)) {
    throw new TypeError(
      `Cannot load classifier: source must be a Uint8Array or a URL, got ${typeof source}`,
    );
  }
  if (source.protocol === "file:") return await Deno.readFile(source);
  if (source.protocol === "http:" && !allowHttp) {
    throw new TypeError(
      `Cannot load classifier: ${source} is plain http:, which anyone on the path can replace; ` +
        `use https: or opt in with allowHttp (--allow-http)`,
    );
  }
  if (source.protocol === "http:" || source.protocol === "https:") {
    const res = await fetcher(source);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(
        `Cannot load classifier: GET ${source} answered ${res.status} ${res.statusText}`,
      );
    }
    return await readCapped(res, maxBundleBytes(limits), source);
  }
  throw new TypeError(
    `Cannot load classifier: unsupported URL scheme ${source.protocol} (use file:, http: or https:)`,
  );
}

function toImages(input: ClassifierInput): Uint8Array[] {
  if (input instanceof Uint8Array) {
    if (input.length === 0 || input.length % INPUT_BYTES !== 0) {
      throw new RangeError(
        `Cannot classify: a Uint8Array batch must hold N x ${INPUT_BYTES} bytes ` +
          `(32x32 RGB images), got ${input.length}`,
      );
    }
    const n = input.length / INPUT_BYTES;
    return Array.from(
      { length: n },
      (_, i) => input.subarray(i * INPUT_BYTES, (i + 1) * INPUT_BYTES),
    );
  }
  if (!Array.isArray(input) || input.length === 0) {
    throw new RangeError("Cannot classify: pass at least one image");
  }
  return input.map((img, i) => {
    if (img instanceof Uint8Array) {
      if (img.length !== INPUT_BYTES) {
        throw new RangeError(
          `Cannot classify image ${i}: raw images must be ${INPUT_BYTES} bytes (32x32 RGB), ` +
            `got ${img.length}; decode files with decodeImage first`,
        );
      }
      return img;
    }
    if (
      img && typeof img === "object" &&
      (img.data instanceof Uint8Array || img.data instanceof Uint8ClampedArray)
    ) {
      const rgb = toRgb(img, i);
      return rgb.width === INPUT_SIZE && rgb.height === INPUT_SIZE
        ? rgb.data
        : resizeCenterCrop(rgb, INPUT_SIZE).data;
    }
    throw new TypeError(
      `Cannot classify image ${i}: expected a Uint8Array or decoded pixels { width, height, data }`,
    );
  });
}

interface Job {
  readonly images: Uint8Array[];
  readonly topK: number;
  readonly resolve: (p: Prediction[][]) => void;
  readonly reject: (e: unknown) => void;
  readonly results: Prediction[][];
  next: number;
}

class BundleClassifier implements Classifier {
  readonly info: BundleInfo;
  readonly backend: BackendChoice;
  loadTimings: LoadTimings = {
    bundleMs: 0,
    backendMs: 0,
    instantiateMs: 0,
    warmUpMs: 0,
    totalMs: 0,
  };
  readonly #model: StagedModel;
  readonly #maxBatch: number;
  readonly #queue: Job[] = [];
  #running = false;
  #disposed = false;
  #batches = 0;
  #images = 0;

  constructor(info: BundleInfo, backend: BackendChoice, model: StagedModel, maxBatch: number) {
    this.info = info;
    this.backend = backend;
    this.#model = model;
    this.#maxBatch = maxBatch;
  }

  classify(images: ClassifierInput, options: ClassifyOptions = {}): Promise<Prediction[][]> {
    if (this.#disposed) {
      return Promise.reject(new Error("Cannot classify: the classifier was disposed"));
    }
    const classes = this.info.classNames.length;
    const topK = options.topK ?? Math.min(5, classes);
    if (!Number.isInteger(topK) || topK < 1 || topK > classes) {
      return Promise.reject(
        new RangeError(`Cannot classify: topK must be an integer in [1, ${classes}], got ${topK}`),
      );
    }
    let list: Uint8Array[];
    try {
      list = toImages(images);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ images: list, topK, resolve, reject, results: [], next: 0 });
      if (!this.#running) void this.#drain();
    });
  }

  stats(): ClassifierStats {
    const m = tf.memory();
    return {
      batches: this.#batches,
      images: this.#images,
      numTensors: m.numTensors,
      numBytes: m.numBytes,
    };
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const pending = this.#queue.splice(0);
    for (const job of pending) {
      job.reject(new Error("Cannot classify: the classifier was disposed"));
    }
    if (!this.#running) disposeModule(this.#model);
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0 && !this.#disposed) {
        // Let requests that arrived during the last pass enqueue, then batch them together.
        await new Promise((r) => setTimeout(r, 0));
        if (this.#disposed) break;
        const parts: Array<[Job, number, number]> = [];
        let n = 0;
        for (const job of this.#queue) {
          if (n >= this.#maxBatch) break;
          const take = Math.min(job.images.length - job.next, this.#maxBatch - n);
          parts.push([job, job.next, take]);
          n += take;
        }
        let probs: Float32Array;
        try {
          probs = await this.#forward(
            parts.flatMap(([job, from, k]) => job.images.slice(from, from + k)),
          );
        } catch (e) {
          for (const [job] of parts) {
            const i = this.#queue.indexOf(job);
            if (i >= 0) this.#queue.splice(i, 1);
            job.reject(e);
          }
          continue;
        }
        const classes = this.info.classNames.length;
        let row = 0;
        for (const [job, , k] of parts) {
          for (let j = 0; j < k; j++, row++) {
            job.results.push(
              this.#top(probs.subarray(row * classes, (row + 1) * classes), job.topK),
            );
          }
          job.next += k;
          if (job.next === job.images.length) {
            const i = this.#queue.indexOf(job);
            if (i >= 0) this.#queue.splice(i, 1);
            job.resolve(job.results);
          }
        }
      }
    } finally {
      this.#running = false;
      if (this.#disposed) disposeModule(this.#model);
    }
  }

  #top(p: Float32Array, k: number): Prediction[] {
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
    return order.slice(0, k).map((index) => ({
      label: this.info.classNames[index],
      index,
      probability: p[index],
    }));
  }

  async #forward(images: Uint8Array[]): Promise<Float32Array> {
    const n = images.length;
    const { mean, std } = this.info.normalization;
    const x = new Float32Array(n * INPUT_BYTES);
    for (let i = 0; i < n; i++) {
      const img = images[i];
      const base = i * INPUT_BYTES;
      for (let p = 0; p < INPUT_BYTES; p += 3) {
        x[base + p] = (img[p] / 255 - mean[0]) / std[0];
        x[base + p + 1] = (img[p + 1] / 255 - mean[1]) / std[1];
        x[base + p + 2] = (img[p + 2] / 255 - mean[2]) / std[2];
      }
    }
    const probs = tf.tidy(() => {
      const input = tf.tensor4d(x, [n, INPUT_SIZE, INPUT_SIZE, 3]);
      return tf.softmax(this.#model.apply(input, { training: false }) as tf.Tensor2D);
    });
    try {
      const data = await probs.data() as Float32Array;
      this.#batches++;
      this.#images += n;
      return data;
    } finally {
      probs.dispose();
    }
  }
}

/**
 * Loads a bundle and returns a ready {@linkcode Classifier}. Selects the backend first (the
 * options are passed to `selectBackend`: WebGPU only on a real adapter, else WASM, or what
 * `backend` forces; WASM binaries can be given as bytes or a URL so no `--allow-read` is needed),
 * then reads and verifies the bundle, builds the model from its spec and loads the weights.
 *
 * @param source The bundle's bytes, a `file:` URL (read with `Deno.readFile`: needs read
 *   permission for that file only) or an `https:` URL (fetched: needs net permission for its
 *   host); plain `http:` only with `allowHttp`.
 * @param options Backend selection, `maxBatch`, `warmUp`, `fetch`, `allowHttp`, `limits`.
 * @returns The classifier; call `dispose()` when done.
 * @throws {BundleError} If the bundle is malformed, tampered or does not match its spec, or a
 *   download is larger than a bundle within `limits.maxParameters` can be (checked as it streams).
 * @throws {TypeError} On an unsupported source, or an `http:` URL without `allowHttp`.
 * @throws {RangeError} On an invalid `maxBatch`.
 * @throws {Error} If the file cannot be read or fetched, or the backend cannot start.
 * @example
 * ```ts
 * import { buildModel, resnetSpec } from "@mfi/incubation";
 * import { loadClassifier, writeBundle } from "@mfi/serve";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 3, 1 / 32);
 * const model = buildModel(spec, { seed: 7 });
 * const bytes = await writeBundle(model, spec, {
 *   classNames: ["red", "green", "blue"],
 *   normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
 * });
 * disposeModule(model);
 *
 * const classifier = await loadClassifier(bytes, { backend: "cpu" });
 * const image = new Uint8Array(32 * 32 * 3).fill(200); // one 32x32 RGB image, HWC
 * const [top] = await classifier.classify([image], { topK: 2 });
 * assert.equal(top.length, 2);
 * assert.ok(top[0].probability >= top[1].probability);
 * assert.ok(["red", "green", "blue"].includes(top[0].label));
 * classifier.dispose();
 * ```
 */
export async function loadClassifier(
  source: Uint8Array | URL,
  options: LoadClassifierOptions = {},
): Promise<Classifier> {
  const {
    maxBatch = 32,
    warmUp = true,
    fetch: fetcher = globalThis.fetch,
    allowHttp = false,
    limits,
    ...backendOptions
  } = options;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(
      `Cannot load classifier: maxBatch must be a positive integer, got ${maxBatch}`,
    );
  }
  const name = source instanceof URL ? source.href : "bundle bytes";
  // Reading/verifying the bundle creates no tensors, so it overlaps the backend's start-up
  // (WASM compilation, adapter probing): both are on the cold-start path.
  const t0 = performance.now();
  let bundleMs = 0;
  let backendMs = 0;
  const [bundle, backend] = await Promise.all([
    readSource(source, fetcher, allowHttp, limits).then((bytes) =>
      readBundle(bytes, { source: name, limits })
    ).finally(
      () => (bundleMs = performance.now() - t0),
    ),
    selectBackend(backendOptions).finally(() => (backendMs = performance.now() - t0)),
  ]);
  const t1 = performance.now();
  const model = instantiateBundle(bundle, { source: name, limits });
  const t2 = performance.now();
  const classifier = new BundleClassifier(bundle.info, backend, model, maxBatch);
  if (warmUp) {
    try {
      await classifier.classify(new Uint8Array(INPUT_BYTES), { topK: 1 });
    } catch (e) {
      classifier.dispose();
      throw e;
    }
  }
  const t3 = performance.now();
  classifier.loadTimings = Object.freeze({
    bundleMs,
    backendMs,
    instantiateMs: t2 - t1,
    warmUpMs: t3 - t2,
    totalMs: t3 - t0,
  });
  return classifier;
}
