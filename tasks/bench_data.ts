/**
 * `deno task bench:data [--data-dir D] [--archive F] [--batches N] [--backend wasm|webgpu|cpu]
 * [--allow-software-adapter]`: data pipeline speed.
 *
 * Measures (default backend wasm, via `selectBackend`; `--allow-software-adapter` or
 * `MFI_ALLOW_SOFTWARE_ADAPTER=1` lets `--backend webgpu` run on a software adapter, for testing
 * only, and the table then says its numbers mean nothing): reading and decoding all 60,000 CIFAR-10
 * images from the binary files (and from an archive with `--archive`), turning them into normalised
 * tensors (in chunks of 10,000), and
 * batches per second of batch 128 with and without augmentation. It also times three ways to
 * crop, flip and normalise a batch (the package's `assembleBatch`, the tensor `cropFlip`,
 * `tf.image.cropAndResize`, a JavaScript crop + tensor normalise) so the choice stays
 * measured. Default data: the data cache (`deno task data download` fills it).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { backendLabel, type BackendName, deriveSeed, Rng, selectBackend } from "@mfi/core";
import {
  assembleBatch,
  batches,
  type CifarSplit,
  cropFlip,
  type CropFlipParams,
  defaultDataDir,
  drawCropFlip,
  gatherImages,
  loadCifar,
  normalizePixels,
  toBatch,
} from "@mfi/data";
import {
  BACKEND_FLAGS,
  backendOptions,
  type CliSpec,
  type FlagValue,
  parseCliOrExit,
  reportError,
  UsageError,
} from "./_cli.ts";

/** `deno task bench:data`'s command line. */
export const BENCH_DATA_CLI: CliSpec = {
  name: "bench:data",
  summary: "data pipeline speed: read and decode CIFAR-10, tensors, batches/s with and without " +
    "augmentation, and three ways to crop and flip",
  flags: {
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      defaultText: "MFI_DATA_DIR, else ~/.cache/mfi-resnet",
      example: "/data/cifar-10-batches-bin",
      doc: "folder with the CIFAR-10 binaries",
    },
    archive: {
      type: "string",
      placeholder: "FILE",
      example: "cifar-10-binary.tar.gz",
      doc: "also time reading this official .tar.gz",
    },
    batches: { type: "integer", min: 1, default: 100, doc: "batches per measured rate" },
    backend: { ...BACKEND_FLAGS.backend, default: "wasm", defaultText: undefined },
    "allow-software-adapter": BACKEND_FLAGS["allow-software-adapter"],
  },
  renamed: { dir: "--dir was renamed --data-dir (one spelling across tasks); use --data-dir DIR" },
  examples: [
    "--batches 20",
    "--data-dir /data/cifar-10-batches-bin --backend cpu",
    "--backend webgpu --allow-software-adapter --batches 2",
  ],
};

const values = parseCliOrExit(BENCH_DATA_CLI).values as {
  "data-dir"?: string;
  archive?: string;
  batches: number;
  backend: BackendName;
  "allow-software-adapter"?: boolean;
};
const dataDir = values["data-dir"] ?? defaultDataDir();
const nBatches = values.batches;
let backend;
try {
  if (values["allow-software-adapter"] === true && values.backend !== "webgpu") {
    throw new UsageError(
      `--allow-software-adapter only applies with --backend webgpu (the backend is ` +
        `${values.backend}); add --backend webgpu to test WebGPU on a software adapter, or drop it`,
    );
  }
  backend = await selectBackend(backendOptions(values as Record<string, FlagValue>));
} catch (e) {
  Deno.exit(reportError("bench:data", e));
}
/** Printed with a table measured on a software adapter. */
const SOFTWARE_NOTE = "SOFTWARE ADAPTER (--allow-software-adapter): these numbers mean nothing; " +
  "they test that the data pipeline runs on WebGPU. Run on a GPU machine for real figures.";
const rows: [string, string, string][] = [];
const ms = (t0: number) => performance.now() - t0;

// 1. Read + decode the binary files.
let t0 = performance.now();
const train = await loadCifar({ dataset: "cifar10", split: "train", dir: dataDir });
const test = await loadCifar({ dataset: "cifar10", split: "test", dir: dataDir });
const readMs = ms(t0);
rows.push([
  "read+decode 60,000 images (uint8 NHWC, md5 of each file)",
  `${(readMs / 1000).toFixed(2)} s`,
  `${(60_000 / readMs * 1000).toFixed(0)} img/s`,
]);

// 1b. The same from a .tar.gz archive (gunzip + untar streamed in memory), if given.
if (values.archive) {
  t0 = performance.now();
  const a = await loadCifar({ dataset: "cifar10", split: "train", archive: values.archive });
  const b = await loadCifar({ dataset: "cifar10", split: "test", archive: values.archive });
  const archiveMs = ms(t0);
  if (a.count + b.count !== 60_000) throw new Error(`archive held ${a.count + b.count} images`);
  rows.push([
    "read+decode 60,000 images from the .tar.gz (2 passes: train, test)",
    `${(archiveMs / 1000).toFixed(2)} s`,
    `${(60_000 / archiveMs * 1000).toFixed(0)} img/s`,
  ]);
}

// 2. All 60,000 into normalised float32 tensors (chunks of 10,000).
t0 = performance.now();
const held: tf.Tensor[] = [];
for (const split of [train, test]) {
  for (let start = 0; start < split.count; start += 10_000) {
    const idx = Int32Array.from(
      { length: Math.min(10_000, split.count - start) },
      (_, i) => start + i,
    );
    const b = toBatch(split, idx);
    held.push(b.images, b.labels);
  }
}
const tensorMs = ms(t0);
tf.dispose(held);
rows.push([
  "60,000 images -> normalised tensors (toBatch)",
  `${(tensorMs / 1000).toFixed(2)} s`,
  `${(60_000 / tensorMs * 1000).toFixed(0)} img/s`,
]);
rows.push([
  "total: files -> 60,000 normalised tensors",
  `${((readMs + tensorMs) / 1000).toFixed(2)} s`,
  "",
]);

// 3. Batches per second, batch 128.
async function timeBatches(augment: boolean): Promise<number> {
  const start = performance.now();
  let n = 0;
  for (const b of batches(train, { batchSize: 128, shuffle: true, augment, seed: 1 })) {
    // Make sure the work is done (sync backends are anyway); awaited, as WebGPU needs.
    await b.images.data();
    tf.dispose([b.images, b.labels]);
    if (++n === nBatches) break;
  }
  return n / (ms(start) / 1000);
}
await timeBatches(true); // warm-up
for (const augment of [false, true]) {
  const rate = await timeBatches(augment);
  rows.push([
    `batches(batchSize 128, shuffle${augment ? ", augment" : ""})`,
    `${rate.toFixed(1)} batch/s`,
    `${(rate * 128).toFixed(0)} img/s`,
  ]);
}

// 4. Crop+flip alternatives on one 128-image batch (raw pixels in, normalised tensor out).
function jsCropFlip(split: CifarSplit, idx: Int32Array, p: CropFlipParams): Float32Array {
  const out = new Float32Array(idx.length * 3072); // zeros = padding
  for (let k = 0; k < idx.length; k++) {
    const src = idx[k] * 3072;
    for (let y = 0; y < 32; y++) {
      const sy = y + p.top[k] - 4;
      if (sy < 0 || sy >= 32) continue;
      for (let x = 0; x < 32; x++) {
        const sx = (p.flip[k] ? 31 - x : x) + p.left[k] - 4;
        if (sx < 0 || sx >= 32) continue;
        const o = k * 3072 + (y * 32 + x) * 3, s = src + (sy * 32 + sx) * 3;
        out[o] = split.images[s];
        out[o + 1] = split.images[s + 1];
        out[o + 2] = split.images[s + 2];
      }
    }
  }
  return out;
}
function cropAndResize(x: tf.Tensor4D, p: CropFlipParams): tf.Tensor4D {
  const n = x.shape[0], boxes = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const [y1, y2] = [p.top[i] / 39, (p.top[i] + 31) / 39];
    const [xa, xb] = [p.left[i] / 39, (p.left[i] + 31) / 39];
    boxes.set(p.flip[i] ? [y1, xb, y2, xa] : [y1, xa, y2, xb], 4 * i);
  }
  return tf.tidy(() =>
    tf.image.cropAndResize(
      tf.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]]),
      tf.tensor2d(boxes, [n, 4]),
      tf.tensor1d(Int32Array.from({ length: n }, (_, i) => i), "int32"),
      [32, 32],
      "nearest",
    )
  );
}
const raw = (idx: Int32Array) =>
  tf.tensor4d(new Float32Array(gatherImages(train, idx)), [idx.length, 32, 32, 3]);
const variants: [string, (idx: Int32Array, p: CropFlipParams) => tf.Tensor4D][] = [
  [
    "assembleBatch (package: JS, lookup table)",
    (idx, p) => tf.tensor4d(assembleBatch(train, idx, p), [idx.length, 32, 32, 3]),
  ],
  [
    "cropFlip + normalizePixels (tensor gather)",
    (idx, p) => tf.tidy(() => normalizePixels(cropFlip(raw(idx), p), "cifar10")),
  ],
  [
    "cropAndResize nearest + normalizePixels",
    (idx, p) => tf.tidy(() => normalizePixels(cropAndResize(raw(idx), p), "cifar10")),
  ],
  [
    "plain JS byte loop + normalizePixels",
    (idx, p) =>
      tf.tidy(() =>
        normalizePixels(tf.tensor4d(jsCropFlip(train, idx, p), [idx.length, 32, 32, 3]), "cifar10")
      ),
  ],
];
for (const [name, run] of variants) {
  const reps = nBatches;
  let total = 0;
  for (let r = -3; r < reps; r++) {
    const idx = Int32Array.from({ length: 128 }, (_, i) => (r * 128 + i + 384) % train.count);
    const p = drawCropFlip(new Rng(deriveSeed(1, "bench", r)), 128);
    const start = performance.now();
    const y = run(idx, p);
    await y.data();
    if (r >= 0) total += ms(start);
    y.dispose();
  }
  rows.push([
    `crop/flip+normalise, batch 128: ${name}`,
    `${(total / reps).toFixed(2)} ms`,
    `${(128 * reps / total * 1000).toFixed(0)} img/s`,
  ]);
}

const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length), 7));
const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c])).join(" | ")} |`;
const software = backend.softwareAdapter === true;
if (software) console.log(`**${SOFTWARE_NOTE}**\n`);
console.log(`backend: ${backendLabel(backend)}; data: ${dataDir}; ${nBatches} batches per rate\n`);
console.log(line(["measure", "time", "rate"]));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(line(row));
if (software) {
  console.log(`\n**${SOFTWARE_NOTE}**`);
  console.error(`bench:data: ${SOFTWARE_NOTE}`);
}
