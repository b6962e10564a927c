import assert from "node:assert/strict";
import type { CifarSplit } from "./load.ts";
import { classCounts } from "./stats.ts";
import { subsetPerClass } from "./subset.ts";

function split(labels: number[]): CifarSplit {
  return {
    dataset: "cifar10",
    split: "train",
    labelKind: "class",
    count: labels.length,
    images: new Uint8Array(labels.length * 3072).map((_, i) => Math.floor(i / 3072)),
    labels: Uint8Array.from(labels),
    classNames: ["a", "b", "c"],
    files: [],
  };
}

Deno.test("subsetPerClass: first n of each class, order kept, images follow labels", () => {
  const s = split([2, 0, 0, 1, 2, 0, 1, 2, 1]);
  const sub = subsetPerClass(s, 2);
  assert.deepEqual([...sub.labels], [2, 0, 0, 1, 2, 1]);
  assert.deepEqual([...classCounts(sub)], [2, 2, 2]);
  // Kept original images 0, 1, 2, 3, 4, 6 (each image's bytes hold its index).
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((k) => sub.images[k * 3072 + 100]), [0, 1, 2, 3, 4, 6]);
  assert.equal(sub.count, 6);
  assert.equal(s.count, 9); // the input is untouched
});

Deno.test("subsetPerClass: too few images per class is an error unless allowed", () => {
  const s = split([0, 0, 1]);
  assert.throws(() => subsetPerClass(s, 2), /fewer than 2 images in 2 class\(es\)/);
  assert.deepEqual([...subsetPerClass(s, 2, { allowMissing: true }).labels], [0, 0, 1]);
  assert.throws(() => subsetPerClass(s, 0), /positive integer/);
});
