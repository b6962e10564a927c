/**
 * Size limits from the official distributions, checked before anything is allocated: a data file
 * may hold at most its official record count (record count x record length), a label-name file
 * at most 64 KiB, a whole archive at most the official data plus 16 MiB of tar headers and small
 * members once decompressed. A `.tar.gz` of a few hundred kilobytes that inflates to gigabytes is
 * refused at the first header that declares too much.
 *
 * @module
 */
import { type CifarDataset, cifarSpec } from "./spec.ts";

/** Largest label-name file accepted (the official ones are under 1 KiB). */
export const MAX_LABEL_NAMES_BYTES = 64 * 1024;

/** Slack over the official data bytes allowed for a decompressed archive (headers, readme). */
const ARCHIVE_SLACK_BYTES = 16 * 1024 * 1024;

/** Thrown when a file, archive member or decompressed archive exceeds its official size. */
export class SizeLimitError extends RangeError {
  /** The file (on disk, or `archive!member`, or the archive). */
  readonly path: string;
  /** The size found or declared (for a stream: the bytes seen when it was stopped). */
  readonly bytes: number;
  /** The limit. */
  readonly limit: number;
  /**
   * Creates the error.
   *
   * @param path The file.
   * @param bytes The size found.
   * @param limit The limit.
   * @param what What the limit is, e.g. `the official size of data_batch_1.bin`.
   */
  constructor(path: string, bytes: number, limit: number, what: string) {
    super(
      `Refusing to read ${path}: ${bytes} bytes exceed ${limit} bytes, ${what}. The file is not ` +
        `the official one (possibly a decompression bomb); delete it and download or unpack the ` +
        `official distribution again.`,
    );
    this.name = "SizeLimitError";
    this.path = path;
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * The official size of a data file of a dataset (records x record length), by file name.
 *
 * @param dataset The dataset.
 * @param name A file name (a path is reduced to its last part).
 * @returns The size in bytes, or undefined for a name that is not an official data file.
 * @example
 * ```ts
 * import { officialFileBytes } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(officialFileBytes("cifar10", "x/data_batch_1.bin"), 30_730_000);
 * assert.equal(officialFileBytes("cifar100", "train.bin"), 153_700_000);
 * assert.equal(officialFileBytes("cifar10", "batches.meta.txt"), undefined);
 * ```
 */
export function officialFileBytes(dataset: CifarDataset, name: string): number | undefined {
  const spec = cifarSpec(dataset);
  const base = name.split(/[/\\!]/).at(-1) ?? "";
  return Object.hasOwn(spec.fileRecords, base)
    ? spec.fileRecords[base] * spec.recordBytes
    : undefined;
}

/**
 * The most bytes a file of the distribution may hold: the official size of a data file, or
 * {@linkcode MAX_LABEL_NAMES_BYTES} for any other file (label names).
 *
 * @param dataset The dataset.
 * @param name A file name or path.
 * @returns The limit in bytes.
 * @example
 * ```ts
 * import { maxFileBytes } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(maxFileBytes("cifar10", "test_batch.bin"), 30_730_000);
 * assert.equal(maxFileBytes("cifar100", "fine_label_names.txt"), 65_536);
 * ```
 */
export function maxFileBytes(dataset: CifarDataset, name: string): number {
  return officialFileBytes(dataset, name) ?? MAX_LABEL_NAMES_BYTES;
}

/**
 * The most bytes a dataset's archive may inflate to: every official data file plus 16 MiB.
 *
 * @param dataset The dataset.
 * @returns The limit in bytes.
 * @example
 * ```ts
 * import { maxArchiveContentBytes } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(maxArchiveContentBytes("cifar10"), 6 * 30_730_000 + 16 * 1024 * 1024);
 * ```
 */
export function maxArchiveContentBytes(dataset: CifarDataset): number {
  const spec = cifarSpec(dataset);
  const data = Object.values(spec.fileRecords).reduce((s, n) => s + n * spec.recordBytes, 0);
  return data + ARCHIVE_SLACK_BYTES;
}
