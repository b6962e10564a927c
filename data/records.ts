/**
 * Decoding of the official CIFAR binary record format into HWC images and labels.
 *
 * @module
 */
import { CIFAR_IMAGE_BYTES, type CifarDataset, type CifarLabelKind, cifarSpec } from "./spec.ts";

/** Decoded records: images as uint8 HWC, one label per image. */
export interface DecodedRecords {
  /** Number of records. */
  readonly count: number;
  /** `count * 32 * 32 * 3` bytes, image-major, then row, column, channel (NHWC). */
  readonly images: Uint8Array;
  /** `count` class indices of the requested label kind. */
  readonly labels: Uint8Array;
}

/** Options of {@linkcode decodeRecords}. */
export interface DecodeRecordsOptions {
  /** Which dataset's layout the bytes are in. */
  readonly dataset: CifarDataset;
  /** Label kind to return (CIFAR-100: `"fine"` (default) or `"coarse"`; CIFAR-10: `"class"`). */
  readonly labels?: CifarLabelKind;
  /** Name of the file the bytes came from, for error messages. */
  readonly file: string;
}

/**
 * Checks a label kind against a dataset and returns the effective one.
 *
 * @param dataset The dataset.
 * @param labels The requested label kind, or undefined for the default.
 * @returns The label kind to use.
 * @throws {TypeError} If the dataset has no such label kind.
 * @example
 * ```ts
 * import { resolveLabelKind } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(resolveLabelKind("cifar100"), "fine");
 * assert.equal(resolveLabelKind("cifar10"), "class");
 * assert.throws(() => resolveLabelKind("cifar10", "coarse"), /labels/);
 * ```
 */
export function resolveLabelKind(dataset: CifarDataset, labels?: CifarLabelKind): CifarLabelKind {
  const spec = cifarSpec(dataset);
  if (labels === undefined) return spec.labelKinds[0];
  if (!spec.labelKinds.includes(labels)) {
    throw new TypeError(
      `Invalid labels ${JSON.stringify(labels)} for ${spec.title}: expected one of ${
        spec.labelKinds.map((k) => JSON.stringify(k)).join(", ")
      }`,
    );
  }
  return labels;
}

/**
 * Decodes the bytes of one official CIFAR binary file (`data_batch_1.bin`, `test.bin`, ...):
 * records of label byte(s) followed by 1024 red, 1024 green and 1024 blue bytes (row-major planes),
 * into interleaved HWC images. Every label byte is range-checked (for CIFAR-100, both the coarse and
 * the fine label).
 *
 * @param bytes The file's contents.
 * @param options Dataset, label kind, file name for errors.
 * @returns The images and labels.
 * @throws {RangeError} If the size is not a positive whole number of records, or a label is out of
 *   range; the message names the file, what was expected and what was found.
 * @example
 * ```ts
 * import { decodeRecords } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const record = new Uint8Array(3073);
 * record[0] = 7; // label
 * record[1] = 200; // red of pixel (0, 0)
 * record[1 + 1024] = 100; // green of pixel (0, 0)
 * const { images, labels } = decodeRecords(record, { dataset: "cifar10", file: "x.bin" });
 * assert.deepEqual([...images.subarray(0, 3)], [200, 100, 0]);
 * assert.equal(labels[0], 7);
 * assert.throws(() => decodeRecords(record.subarray(1), { dataset: "cifar10", file: "x.bin" }));
 * ```
 */
export function decodeRecords(bytes: Uint8Array, options: DecodeRecordsOptions): DecodedRecords {
  const spec = cifarSpec(options.dataset);
  const kind = resolveLabelKind(options.dataset, options.labels);
  const { recordBytes, labelBytes } = spec;
  const file = options.file;
  if (bytes.length === 0 || bytes.length % recordBytes !== 0) {
    throw new RangeError(
      `Cannot read ${file}: ${spec.title} binary files hold ${recordBytes}-byte records, but the ` +
        `file has ${bytes.length} bytes (${Math.floor(bytes.length / recordBytes)} whole records ` +
        `and ${bytes.length % recordBytes} bytes left over). The file is truncated, empty or not ` +
        `a ${spec.title} binary file; download or unpack it again.`,
    );
  }
  const count = bytes.length / recordBytes;
  // Label byte positions and class counts, in record order (CIFAR-100: coarse, then fine).
  const labelKinds: CifarLabelKind[] = labelBytes === 1 ? ["class"] : ["coarse", "fine"];
  const limits = labelKinds.map((k) => spec.classes[k]!.count);
  const pick = labelKinds.indexOf(kind);
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const start = i * recordBytes;
    for (let b = 0; b < labelBytes; b++) {
      const value = bytes[start + b];
      if (value >= limits[b]) {
        throw new RangeError(
          `Cannot read ${file}: record ${i} (byte offset ${start + b}) has ${labelKinds[b]} ` +
            `label ${value}, expected 0..${limits[b] - 1} for ${spec.title}. The file is corrupt ` +
            `or not a ${spec.title} binary file.`,
        );
      }
    }
    labels[i] = bytes[start + pick];
    const r = start + labelBytes;
    const g = r + 1024;
    const bl = g + 1024;
    const o = i * CIFAR_IMAGE_BYTES;
    for (let p = 0, q = o; p < 1024; p++, q += 3) {
      images[q] = bytes[r + p];
      images[q + 1] = bytes[g + p];
      images[q + 2] = bytes[bl + p];
    }
  }
  return { count, images, labels };
}

/**
 * Encodes images and labels into the official binary record format: the inverse of
 * {@linkcode decodeRecords}, used to write fixtures and tests.
 *
 * @param images `count * 3072` bytes, HWC.
 * @param labels For CIFAR-10 one label per image; for CIFAR-100 `[coarse, fine]` pairs.
 * @param dataset The layout to write.
 * @returns The file bytes.
 * @throws {RangeError} If the sizes disagree.
 * @example
 * ```ts
 * import { decodeRecords, encodeRecords } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const images = new Uint8Array(3072).map((_, i) => i % 251);
 * const bytes = encodeRecords(images, [[3, 42]], "cifar100");
 * const back = decodeRecords(bytes, { dataset: "cifar100", file: "t.bin", labels: "coarse" });
 * assert.deepEqual(back.images, images);
 * assert.equal(back.labels[0], 3);
 * ```
 */
export function encodeRecords(
  images: Uint8Array,
  labels: ReadonlyArray<number | readonly [number, number]>,
  dataset: CifarDataset,
): Uint8Array {
  const spec = cifarSpec(dataset);
  const count = labels.length;
  if (images.length !== count * CIFAR_IMAGE_BYTES) {
    throw new RangeError(
      `Cannot encode records: ${count} labels need ${count * CIFAR_IMAGE_BYTES} image bytes, ` +
        `got ${images.length}`,
    );
  }
  const out = new Uint8Array(count * spec.recordBytes);
  for (let i = 0; i < count; i++) {
    const start = i * spec.recordBytes;
    const label = labels[i];
    const values = typeof label === "number" ? [label] : [...label];
    if (values.length !== spec.labelBytes) {
      throw new RangeError(
        `Cannot encode record ${i}: ${spec.title} needs ${spec.labelBytes} label(s), got ` +
          `${values.length}`,
      );
    }
    out.set(values, start);
    const o = i * CIFAR_IMAGE_BYTES;
    const r = start + spec.labelBytes;
    for (let p = 0; p < 1024; p++) {
      out[r + p] = images[o + 3 * p];
      out[r + 1024 + p] = images[o + 3 * p + 1];
      out[r + 2048 + p] = images[o + 3 * p + 2];
    }
  }
  return out;
}

/**
 * Parses a label-name file (`batches.meta.txt`, `fine_label_names.txt`, ...): one name a line,
 * blank lines ignored.
 *
 * @param text The file's text.
 * @param expected Number of names the file must hold.
 * @param file File name for errors.
 * @returns The names in class-index order.
 * @throws {RangeError} If the number of names differs from `expected`.
 * @example
 * ```ts
 * import { parseLabelNames } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseLabelNames("cat\ndog\n\n", 2, "meta.txt"), ["cat", "dog"]);
 * assert.throws(() => parseLabelNames("cat\n", 2, "meta.txt"), /meta\.txt/);
 * ```
 */
export function parseLabelNames(text: string, expected: number, file: string): string[] {
  const names = text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length !== expected) {
    throw new RangeError(
      `Cannot read label names from ${file}: expected ${expected} names (one a line), found ` +
        `${names.length}`,
    );
  }
  return names;
}
