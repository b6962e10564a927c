import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "@mfi/core";
import { assembleBatch, normalizationTable } from "./assemble.ts";
import { cropFlip, type CropFlipParams } from "./augment.ts";
import type { CifarSplit } from "./load.ts";
import { normalizePixels } from "./normalize.ts";
import { referenceCropFlip } from "./testdata/fixtures.ts";

function split(dataset: "cifar10" | "cifar100", count: number): CifarSplit {
  const rng = new Rng(5);
  return {
    dataset,
    split: "train",
    labelKind: dataset === "cifar10" ? "class" : "fine",
    count,
    images: Uint8Array.from({ length: count * 3072 }, () => rng.int(256)),
    labels: new Uint8Array(count),
    classNames: [],
    files: [],
  };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol)) assert.fail(`element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

Deno.test("assembleBatch: equals reference crop/flip + torchvision normalisation, every offset", async () => {
  await tf.setBackend("cpu");
  for (const dataset of ["cifar10", "cifar100"] as const) {
    const s = split(dataset, 170);
    // 162 images cover every (top, left, flip); indices out of order and repeated.
    const indices = Int32Array.from({ length: 162 }, (_, i) => (i * 37) % 170);
    const crop: CropFlipParams = {
      top: Int32Array.from({ length: 162 }, (_, i) => Math.floor(i / 18)),
      left: Int32Array.from({ length: 162 }, (_, i) => Math.floor(i / 2) % 9),
      flip: Uint8Array.from({ length: 162 }, (_, i) => i % 2),
    };
    const raw = new Float32Array(162 * 3072);
    indices.forEach((i, k) => raw.set(s.images.subarray(i * 3072, (i + 1) * 3072), k * 3072));
    const got = assembleBatch(s, indices, crop);
    // Against the plain reference, normalised in float64.
    const reference = referenceCropFlip(raw, [162, 32, 32, 3], crop, 4);
    const { mean, std } = dataset === "cifar10"
      ? { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] }
      : { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
    close(got, reference.map((v, j) => (v / 255 - mean[j % 3]) / std[j % 3]), 1e-6);
    // Against the tensor implementation.
    const x = tf.tensor4d(raw, [162, 32, 32, 3]);
    const y = tf.tidy(() => normalizePixels(cropFlip(x, crop), dataset));
    close(got, y.dataSync(), 1e-5);
    tf.dispose([x, y]);
    // Without crop: plain normalisation.
    const plain = assembleBatch(s, indices);
    close(plain, raw.map((v, j) => (v / 255 - mean[j % 3]) / std[j % 3]), 1e-6);
  }
});

Deno.test("assembleBatch: bad indices and crops are errors", () => {
  const s = split("cifar10", 2);
  assert.throws(() => assembleBatch(s, [2]), /index 2 is out of range \[0, 2\)/);
  assert.throws(() => assembleBatch(s, [0.5]), /index 0.5/);
  const crop = { top: Int32Array.of(0), left: Int32Array.of(9), flip: Uint8Array.of(0) };
  assert.throws(() => assembleBatch(s, [0, 1], crop), /for 2 indices/);
  assert.throws(() => assembleBatch(s, [0], crop), /crop offset \(0, 9\)/);
  assert.equal(normalizationTable("cifar100")[3 * 255 + 2], Math.fround((1 - 0.4409) / 0.2762));
});
