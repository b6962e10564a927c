import assert from "node:assert/strict";
import { decodeRecords, encodeRecords, parseLabelNames, resolveLabelKind } from "./records.ts";
import { fixtureRecords } from "./testdata/fixtures.ts";

Deno.test("decodeRecords: CIFAR-10 planes become HWC pixels, labels kept", () => {
  const { images, labels, bytes } = fixtureRecords("cifar10", 3, 5);
  assert.equal(bytes.length, 3 * 3073);
  // Hand-check one pixel against the official layout: label, then R plane, G plane, B plane.
  const record = 2, row = 5, col = 7, p = row * 32 + col;
  const base = record * 3073 + 1;
  const out = decodeRecords(bytes, { dataset: "cifar10", file: "f.bin" });
  assert.equal(out.count, 3);
  const hwc = record * 3072 + p * 3;
  assert.deepEqual(
    [...out.images.subarray(hwc, hwc + 3)],
    [bytes[base + p], bytes[base + 1024 + p], bytes[base + 2048 + p]],
  );
  assert.deepEqual(out.images, images);
  assert.deepEqual([...out.labels], labels);
});

Deno.test("decodeRecords: CIFAR-100 fine by default, coarse on request", () => {
  const { labels, bytes } = fixtureRecords("cifar100", 4, 2);
  assert.equal(bytes.length, 4 * 3074);
  const fine = decodeRecords(bytes, { dataset: "cifar100", file: "t.bin" });
  const coarse = decodeRecords(bytes, { dataset: "cifar100", file: "t.bin", labels: "coarse" });
  assert.deepEqual([...fine.labels], labels.map((l) => (l as number[])[1]));
  assert.deepEqual([...coarse.labels], labels.map((l) => (l as number[])[0]));
  assert.deepEqual(fine.images, coarse.images);
});

Deno.test("decodeRecords: sizes that are not whole records are errors naming file and sizes", () => {
  const { bytes } = fixtureRecords("cifar10", 2, 1);
  for (const bad of [bytes.subarray(0, 3073 + 100), new Uint8Array(0), bytes.subarray(1)]) {
    assert.throws(
      () => decodeRecords(bad, { dataset: "cifar10", file: "data_batch_1.bin" }),
      (e: Error) =>
        e instanceof RangeError && e.message.includes("data_batch_1.bin") &&
        e.message.includes("3073-byte records") && e.message.includes(`${bad.length} bytes`),
    );
  }
  // A CIFAR-100 file read as CIFAR-10 (3074-byte records) is caught by the size check too.
  const c100 = fixtureRecords("cifar100", 3, 1).bytes;
  assert.throws(() => decodeRecords(c100, { dataset: "cifar10", file: "x.bin" }), /3073-byte/);
});

Deno.test("decodeRecords: labels out of range are errors naming file, record and range", () => {
  const ten = fixtureRecords("cifar10", 3, 1).bytes.slice();
  ten[2 * 3073] = 10;
  assert.throws(
    () => decodeRecords(ten, { dataset: "cifar10", file: "test_batch.bin" }),
    /test_batch\.bin: record 2 .*label 10, expected 0\.\.9/,
  );
  const hundred = fixtureRecords("cifar100", 2, 1).bytes;
  const badCoarse = hundred.slice();
  badCoarse[3074] = 20; // coarse label of record 1, checked even when fine labels are read
  assert.throws(
    () => decodeRecords(badCoarse, { dataset: "cifar100", file: "train.bin" }),
    /train\.bin: record 1 .*coarse label 20, expected 0\.\.19/,
  );
  const badFine = hundred.slice();
  badFine[1] = 100;
  assert.throws(
    () => decodeRecords(badFine, { dataset: "cifar100", file: "train.bin", labels: "coarse" }),
    /record 0 .*fine label 100, expected 0\.\.99/,
  );
});

Deno.test("resolveLabelKind and encodeRecords reject invalid input", () => {
  assert.throws(() => resolveLabelKind("cifar100", "class"), /"fine", "coarse"/);
  assert.throws(() => resolveLabelKind("cifar9" as "cifar10"), /Unknown dataset/);
  assert.throws(() => encodeRecords(new Uint8Array(10), [1], "cifar10"), /3072 image bytes/);
  assert.throws(() => encodeRecords(new Uint8Array(3072), [1], "cifar100"), /2 label/);
});

Deno.test("parseLabelNames: trims, skips blank lines, checks the count", () => {
  assert.deepEqual(parseLabelNames("a\r\nb \n\n", 2, "n.txt"), ["a", "b"]);
  assert.throws(
    () => parseLabelNames("a\nb\nc\n", 2, "n.txt"),
    /n\.txt: expected 2 names .*found 3/,
  );
});
