import assert from "node:assert/strict";
import { assertNoLeak } from "@mfi/core/testing";
import * as tf from "@tensorflow/tfjs-core";
import { deriveSeed, Rng } from "@mfi/core";
import { drawCropFlip } from "./augment.ts";
import { referenceCropFlip } from "./testdata/fixtures.ts";
import { batchCount, batches, epochOrder } from "./batches.ts";
import type { CifarSplit } from "./load.ts";
import { decodeRecords } from "./records.ts";
import { CIFAR_SPECS } from "./spec.ts";
import { fixtureRecords } from "./testdata/fixtures.ts";

function fixtureSplit(count: number): CifarSplit {
  const { bytes } = fixtureRecords("cifar10", count, 11);
  const { images, labels } = decodeRecords(bytes, { dataset: "cifar10", file: "f" });
  return {
    dataset: "cifar10",
    split: "train",
    labelKind: "class",
    count,
    images,
    labels,
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    files: [],
  };
}

function collect(split: CifarSplit, options: Parameters<typeof batches>[1]) {
  const out: { images: Float32Array; labels: Int32Array; shape: number[] }[] = [];
  for (const b of batches(split, options)) {
    out.push({
      images: b.images.dataSync() as Float32Array,
      labels: b.labels.dataSync() as Int32Array,
      shape: b.images.shape,
    });
    assert.equal(b.images.dtype, "float32");
    assert.equal(b.labels.dtype, "int32");
    tf.dispose([b.images, b.labels]);
  }
  return out;
}

function normalise(raw: Float32Array): Float32Array {
  const { mean, std } = CIFAR_SPECS.cifar10;
  return raw.map((v, i) => (v / 255 - mean[i % 3]) / std[i % 3]);
}

function close(a: Float32Array, b: Float32Array, tol = 1e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(a[i] - b[i]) > tol) assert.fail(`element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

Deno.test("batches: file order without shuffle, normalised like ToTensor + Normalize", async () => {
  await tf.setBackend("cpu");
  const split = fixtureSplit(5);
  const got = collect(split, { batchSize: 2 });
  assert.deepEqual(got.map((b) => b.shape[0]), [2, 2, 1]);
  assert.deepEqual(got.flatMap((b) => [...b.labels]), [0, 1, 2, 3, 4]);
  close(got[1].images, normalise(Float32Array.from(split.images.subarray(2 * 3072, 4 * 3072))));
  assert.deepEqual(collect(split, { batchSize: 2, dropLast: true }).map((b) => b.shape[0]), [2, 2]);
  assert.equal(batchCount(5, { batchSize: 2, dropLast: true }), 2);
  assert.equal(collect(split, { batchSize: 8, dropLast: true }).length, 0);
});

Deno.test("batches: seeded shuffle is a permutation, fixed per seed and epoch", async () => {
  await tf.setBackend("cpu");
  const split = fixtureSplit(20);
  const labelsOf = (seed: number, epoch: number) =>
    collect(split, { batchSize: 6, shuffle: true, seed, epoch }).flatMap((b) => [...b.labels]);
  const order = epochOrder(20, 4, 2);
  assert.deepEqual(labelsOf(4, 2), [...order].map((i) => split.labels[i]));
  assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  assert.notDeepEqual([...order], [...epochOrder(20, 4, 3)]);
  assert.notDeepEqual([...order], [...epochOrder(20, 5, 2)]);
  assert.deepEqual(
    collect(split, { batchSize: 6, shuffle: true, seed: 4, epoch: 2 }),
    collect(split, { batchSize: 6, shuffle: true, seed: 4, epoch: 2 }),
  );
});

Deno.test("batches: augmentation is crop+flip of the raw image (zero padding) before normalising", async () => {
  await tf.setBackend("cpu");
  const split = fixtureSplit(7);
  const seed = 9, epoch = 1;
  const got = collect(split, { batchSize: 4, shuffle: true, augment: true, seed, epoch });
  const order = epochOrder(7, seed, epoch);
  let sawPadding = false;
  for (let b = 0; b < got.length; b++) {
    const idx = order.subarray(b * 4, Math.min(7, b * 4 + 4));
    const raw = new Float32Array(idx.length * 3072);
    idx.forEach((i, k) => raw.set(split.images.subarray(i * 3072, (i + 1) * 3072), k * 3072));
    const params = drawCropFlip(new Rng(deriveSeed(seed, "augment", epoch, b)), idx.length);
    const expected = normalise(referenceCropFlip(raw, [idx.length, 32, 32, 3], params, 4));
    close(got[b].images, expected);
    sawPadding ||= params.top.some((t) => t !== 4) || params.left.some((l) => l !== 4);
  }
  assert.ok(sawPadding);
  // Padding is black in pixel space: -mean/std after normalisation, as in torchvision.
  const padded = got.flatMap((b) => [...b.images]).filter((v) =>
    Math.abs(v - -0.4914 / 0.2470) < 1e-5
  );
  assert.ok(padded.length > 0);
  // Resuming at batch 1 reproduces the tail exactly.
  assert.deepEqual(
    collect(split, { batchSize: 4, shuffle: true, augment: true, seed, epoch, startBatch: 1 }),
    got.slice(1),
  );
});

Deno.test("batches: no tensors leak across epochs or when stopping early", async () => {
  await tf.setBackend("cpu");
  const split = fixtureSplit(9);
  const options = { batchSize: 4, shuffle: true, augment: true, seed: 1 };
  let epoch = 0;
  await assertNoLeak(() => collect(split, { ...options, epoch: epoch++ }), {
    steps: 3,
    label: "an epoch of batches",
  });
  await assertNoLeak(() => {
    for (const b of batches(split, options)) {
      tf.dispose([b.images, b.labels]);
      break;
    }
  }, { label: "stopping after one batch" });
});

Deno.test("batches: invalid options are rejected eagerly, naming the key", () => {
  const split = fixtureSplit(2);
  assert.throws(() => batches(split, { batchSize: 0 }), /batchSize must be a positive integer/);
  assert.throws(() => batches(split, { batchSize: 2.5 }), /batchSize/);
  assert.throws(() => batches(split, { batchSize: 2, shuffle: true }), /seed is required/);
  assert.throws(() => batches(split, { batchSize: 2, augment: true }), /seed is required/);
  assert.throws(() => batches(split, { batchSize: 2, epoch: -1 }), /epoch/);
  assert.throws(() => batches(split, { batchSize: 2, startBatch: -1 }), /startBatch/);
  assert.throws(
    () => batches(split, { batchSize: 2, shuffle: "yes" } as never),
    /shuffle must be a boolean/,
  );
  assert.throws(
    () => batches(split, { batchSize: 2, batch_size: 3 } as never),
    /unknown option "batch_size"/,
  );
});
