/**
 * The facts of the official CIFAR binary distributions: file names, record layout, class counts,
 * archive URLs and md5s, and the per-channel normalisation constants.
 *
 * @module
 */

/** The two datasets. */
export type CifarDataset = "cifar10" | "cifar100";

/** The two official splits. */
export type CifarSplitName = "train" | "test";

/**
 * Which label a record yields: CIFAR-10 has one (`"class"`); CIFAR-100 has a `"fine"` label
 * (100 classes, the default) and a `"coarse"` one (20 superclasses).
 */
export type CifarLabelKind = "class" | "fine" | "coarse";

/** Everything the reader needs to know about one dataset's official binary distribution. */
export interface CifarSpec {
  /** Dataset id. */
  readonly dataset: CifarDataset;
  /** Human name, e.g. `CIFAR-10`. */
  readonly title: string;
  /** Folder inside the archive, e.g. `cifar-10-batches-bin`. */
  readonly folder: string;
  /** Official archive file name. */
  readonly archiveName: string;
  /** Official download URL. */
  readonly url: string;
  /** Published md5 of the official archive. */
  readonly archiveMd5: string;
  /** md5 of each file of the official archive, by name inside {@linkcode CifarSpec.folder}. */
  readonly fileMd5s: Readonly<Record<string, string>>;
  /** Bytes per record: label bytes + 3072 pixel bytes. */
  readonly recordBytes: number;
  /** Label bytes at the start of each record (1 for CIFAR-10; coarse then fine for CIFAR-100). */
  readonly labelBytes: number;
  /** Data files of each split, in reading order. */
  readonly files: Readonly<Record<CifarSplitName, readonly string[]>>;
  /** Records per split in the official files. */
  readonly records: Readonly<Record<CifarSplitName, number>>;
  /** Records of each official data file, by name (its size is this times `recordBytes`). */
  readonly fileRecords: Readonly<Record<string, number>>;
  /** Size in bytes of the official archive. */
  readonly archiveBytes: number;
  /** Label kinds the dataset offers; the first is the default. */
  readonly labelKinds: readonly CifarLabelKind[];
  /** Number of classes and the label-name file of each label kind. */
  readonly classes: Readonly<Partial<Record<CifarLabelKind, { count: number; namesFile: string }>>>;
  /** Published per-channel (R, G, B) mean of the training images in [0, 1]. */
  readonly mean: readonly [number, number, number];
  /** Published per-channel (R, G, B) standard deviation of the training images in [0, 1]. */
  readonly std: readonly [number, number, number];
}

/** Image side length in pixels. */
export const CIFAR_SIZE = 32;
/** Channels per image (R, G, B). */
export const CIFAR_CHANNELS = 3;
/** Bytes of one image (32 * 32 * 3). */
export const CIFAR_IMAGE_BYTES = CIFAR_SIZE * CIFAR_SIZE * CIFAR_CHANNELS;

/**
 * The specifications of CIFAR-10 and CIFAR-100 (binary versions), as published at
 * https://www.cs.toronto.edu/~kriz/cifar.html.
 *
 * @example
 * ```ts
 * import { CIFAR_SPECS } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(CIFAR_SPECS.cifar10.recordBytes, 3073);
 * assert.equal(CIFAR_SPECS.cifar100.classes.fine?.count, 100);
 * ```
 */
export const CIFAR_SPECS: Readonly<Record<CifarDataset, CifarSpec>> = Object.freeze({
  cifar10: Object.freeze(
    {
      dataset: "cifar10",
      title: "CIFAR-10",
      folder: "cifar-10-batches-bin",
      archiveName: "cifar-10-binary.tar.gz",
      url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
      archiveMd5: "c32a1d4ab5d03f1284b67883e8d87530",
      fileMd5s: {
        "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
        "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
        "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
        "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
        "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
        "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
        "batches.meta.txt": "728051cd483f366e254dddb25bead8b3",
      },
      recordBytes: 1 + CIFAR_IMAGE_BYTES,
      labelBytes: 1,
      files: {
        train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
        test: ["test_batch.bin"],
      },
      records: { train: 50_000, test: 10_000 },
      fileRecords: {
        "data_batch_1.bin": 10_000,
        "data_batch_2.bin": 10_000,
        "data_batch_3.bin": 10_000,
        "data_batch_4.bin": 10_000,
        "data_batch_5.bin": 10_000,
        "test_batch.bin": 10_000,
      },
      archiveBytes: 170_052_171,
      labelKinds: ["class"],
      classes: { class: { count: 10, namesFile: "batches.meta.txt" } },
      mean: [0.4914, 0.4822, 0.4465],
      std: [0.2470, 0.2435, 0.2616],
    } as const,
  ),
  cifar100: Object.freeze(
    {
      dataset: "cifar100",
      title: "CIFAR-100",
      folder: "cifar-100-binary",
      archiveName: "cifar-100-binary.tar.gz",
      url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
      archiveMd5: "03b5dce01913d631647c71ecec9e9cb8",
      fileMd5s: {
        "train.bin": "6172c7755cfe09b2fe270c85cebc1b15",
        "test.bin": "4499cfba6c016c1be1438163640a0898",
        "coarse_label_names.txt": "7baf0fcbe8bbb8483327dd18f1cda1cb",
        "fine_label_names.txt": "18d2388358c0483ca2d2be3aac2d399e",
      },
      recordBytes: 2 + CIFAR_IMAGE_BYTES,
      labelBytes: 2,
      files: { train: ["train.bin"], test: ["test.bin"] },
      records: { train: 50_000, test: 10_000 },
      fileRecords: { "train.bin": 50_000, "test.bin": 10_000 },
      archiveBytes: 168_513_733,
      labelKinds: ["fine", "coarse"],
      classes: {
        fine: { count: 100, namesFile: "fine_label_names.txt" },
        coarse: { count: 20, namesFile: "coarse_label_names.txt" },
      },
      mean: [0.5071, 0.4865, 0.4409],
      std: [0.2673, 0.2564, 0.2762],
    } as const,
  ),
});

/**
 * The published md5 of a file of the official distribution, from its path (on disk, or
 * `archive!member`): the archive's md5 for the archive name, else the member's by its file name.
 *
 * @param dataset The dataset.
 * @param path Any path ending in an official file name.
 * @returns The md5, or undefined for a name that is not an official file.
 * @example
 * ```ts
 * import { publishedMd5 } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(publishedMd5("cifar10", "/d/cifar-10-batches-bin/test_batch.bin"), "803d5f7f4d78ea53de84dbe85f74fb6d");
 * assert.equal(publishedMd5("cifar100", "x/cifar-100-binary.tar.gz"), "03b5dce01913d631647c71ecec9e9cb8");
 * assert.equal(publishedMd5("cifar10", "mine.tar.gz"), undefined);
 * ```
 */
export function publishedMd5(dataset: CifarDataset, path: string): string | undefined {
  const spec = cifarSpec(dataset);
  const name = path.split(/[/\\!]/).at(-1) ?? "";
  if (name === spec.archiveName) return spec.archiveMd5;
  return Object.hasOwn(spec.fileMd5s, name) ? spec.fileMd5s[name] : undefined;
}

/**
 * Looks up a dataset's specification, validating the name.
 *
 * @param dataset `"cifar10"` or `"cifar100"`.
 * @returns The specification.
 * @throws {TypeError} If the name is not a known dataset.
 * @example
 * ```ts
 * import { cifarSpec } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(cifarSpec("cifar100").folder, "cifar-100-binary");
 * assert.throws(() => cifarSpec("mnist" as "cifar10"), /dataset/);
 * ```
 */
export function cifarSpec(dataset: CifarDataset): CifarSpec {
  if (dataset !== "cifar10" && dataset !== "cifar100") {
    throw new TypeError(
      `Unknown dataset ${JSON.stringify(dataset)}: expected "cifar10" or "cifar100"`,
    );
  }
  return CIFAR_SPECS[dataset];
}
