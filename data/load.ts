/**
 * Loading one split of CIFAR-10 or CIFAR-100 from the official binary distribution, either an
 * extracted folder or the official `.tar.gz` archive (read as a stream, nothing written to disk).
 *
 * @module
 */
import { join } from "node:path";
import { readTarGz } from "./archive.ts";
import { defaultDataDir } from "./cache_dir.ts";
import { maxArchiveContentBytes, maxFileBytes, SizeLimitError } from "./limits.ts";
import { md5Hex } from "./md5.ts";
import { decodeRecords, parseLabelNames, resolveLabelKind } from "./records.ts";
import {
  CIFAR_IMAGE_BYTES,
  type CifarDataset,
  type CifarLabelKind,
  cifarSpec,
  type CifarSplitName,
} from "./spec.ts";

/** A file that was read, with its md5. */
export interface CifarFileInfo {
  /** Path of the file (on disk, or `archive!member` inside an archive). */
  readonly path: string;
  /** Size in bytes. */
  readonly bytes: number;
  /** md5 of the file's bytes. */
  readonly md5: string;
}

/** One split of a dataset in memory: raw uint8 images and labels. */
export interface CifarSplit {
  /** Dataset id. */
  readonly dataset: CifarDataset;
  /** `"train"` or `"test"`. */
  readonly split: CifarSplitName;
  /** Which labels `labels` holds. */
  readonly labelKind: CifarLabelKind;
  /** Number of images. */
  readonly count: number;
  /** `count * 32 * 32 * 3` raw pixel bytes, NHWC (image, row, column, R/G/B). */
  readonly images: Uint8Array;
  /** `count` class indices. */
  readonly labels: Uint8Array;
  /** Class names, indexed by label. */
  readonly classNames: readonly string[];
  /** Every file read (archive, data files, label-name file) with its md5. */
  readonly files: readonly CifarFileInfo[];
}

/** Options of {@linkcode loadCifar}. */
export interface LoadCifarOptions {
  /** `"cifar10"` or `"cifar100"`. */
  readonly dataset: CifarDataset;
  /** `"train"` or `"test"`. */
  readonly split: CifarSplitName;
  /**
   * An extracted folder: the one containing `cifar-10-batches-bin/` (or `cifar-100-binary/`),
   * or that folder itself; a folder with neither but with the official archive
   * (`cifar-10-binary.tar.gz`, as `ensureCifar` leaves the cache) is read through the archive.
   */
  readonly dir?: string;
  /** The official archive (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`) instead of `dir`. */
  readonly archive?: string;
  /** CIFAR-100 only: `"fine"` (default, 100 classes) or `"coarse"` (20 superclasses). */
  readonly labels?: CifarLabelKind;
}

/** Thrown when a file of the distribution is absent, so callers can tell absent from corrupt. */
export class CifarFileMissingError extends Error {
  /** The path that was looked for. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param path The missing path.
   * @param message The full message.
   */
  constructor(path: string, message: string) {
    super(message);
    this.name = "CifarFileMissingError";
    this.path = path;
  }
}

const OPTION_KEYS = new Set(["dataset", "split", "dir", "archive", "labels"]);

function validate(options: LoadCifarOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("loadCifar: options must be an object");
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new TypeError(
        `loadCifar: unknown option ${JSON.stringify(key)}; expected ${[...OPTION_KEYS].join(", ")}`,
      );
    }
  }
  cifarSpec(options.dataset);
  if (options.split !== "train" && options.split !== "test") {
    throw new TypeError(
      `loadCifar: split must be "train" or "test", got ${JSON.stringify(options.split)}`,
    );
  }
  if (options.dir !== undefined && options.archive !== undefined) {
    throw new TypeError("loadCifar: pass either dir or archive, not both");
  }
  for (const key of ["dir", "archive"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "string") {
      throw new TypeError(`loadCifar: ${key} must be a path string, got ${typeof options[key]}`);
    }
  }
  resolveLabelKind(options.dataset, options.labels);
}

async function exists(path: string, kind: "file" | "dir"): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return kind === "file" ? info.isFile : info.isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Finds the extracted dataset folder under `dir`: `dir/<folder>` or `dir` itself.
 *
 * @param dir The folder given by the user.
 * @param dataset The dataset.
 * @returns The folder holding the `.bin` files, or undefined if neither candidate has them.
 */
async function findFolder(dir: string, dataset: CifarDataset): Promise<string | undefined> {
  const spec = cifarSpec(dataset);
  const nested = join(dir, spec.folder);
  if (await exists(nested, "dir")) return nested;
  const allFiles = [...spec.files.train, ...spec.files.test];
  for (const file of allFiles) {
    if (await exists(join(dir, file), "file")) return dir;
  }
  return undefined;
}

function howToGet(dataset: CifarDataset): string {
  const spec = cifarSpec(dataset);
  return `Download it with \`deno task data download --dataset ${dataset}\` (or ensureCifar()), ` +
    `or place ${spec.archiveName} (md5 ${spec.archiveMd5}, from ${spec.url}) in the data folder ` +
    `and extract it there`;
}

function assemble(
  options: LoadCifarOptions,
  labelKind: CifarLabelKind,
  parts: { file: string; bytes: Uint8Array }[],
  names: { file: string; bytes: Uint8Array },
  files: CifarFileInfo[],
): CifarSplit {
  const spec = cifarSpec(options.dataset);
  const decoded = parts.map((p) =>
    decodeRecords(p.bytes, { dataset: options.dataset, labels: labelKind, file: p.file })
  );
  const count = decoded.reduce((n, d) => n + d.count, 0);
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const d of decoded) {
    images.set(d.images, at * CIFAR_IMAGE_BYTES);
    labels.set(d.labels, at);
    at += d.count;
  }
  const classNames = parseLabelNames(
    new TextDecoder().decode(names.bytes),
    spec.classes[labelKind]!.count,
    names.file,
  );
  return Object.freeze({
    dataset: options.dataset,
    split: options.split,
    labelKind,
    count,
    images,
    labels,
    classNames: Object.freeze(classNames),
    files: Object.freeze(files),
  });
}

/**
 * Reads a file of at most `limit` bytes: its size (from the open handle) is checked before a
 * buffer is allocated, and a file that grows while read is refused too.
 *
 * @param path The file.
 * @param limit Most bytes allowed.
 * @param name The official file name, for the message.
 * @returns The contents.
 */
async function readBounded(path: string, limit: number, name: string): Promise<Uint8Array> {
  const file = await Deno.open(path);
  try {
    const size = (await file.stat()).size;
    const what = `the official size of ${name}`;
    if (size > limit) throw new SizeLimitError(path, size, limit, what);
    const out = new Uint8Array(size + 1); // one spare byte tells a file that grew
    let at = 0;
    while (at < out.length) {
      const n = await file.read(out.subarray(at));
      if (n === null) break;
      at += n;
    }
    if (at > size) throw new SizeLimitError(path, at, size, `its size when opened (it grew)`);
    return out.subarray(0, at);
  } finally {
    file.close();
  }
}

/**
 * Loads one split of CIFAR-10 or CIFAR-100 from the official binary distribution into memory:
 * from an extracted folder (`dir`), from the official archive (`archive`, streamed through gzip
 * and tar without writing to disk), or, with neither, from the data cache folder
 * ({@linkcode defaultDataDir}: an extracted folder there, else the archive there). Every file's
 * md5 is recorded.
 *
 * @param options Dataset, split, source and label kind.
 * @returns The split's raw images (uint8 NHWC), labels, class names and file md5s.
 * @throws {CifarFileMissingError} If a file of the split (or the archive) is absent.
 * @throws {SizeLimitError} If a file (or archive member, or the decompressed archive) is larger
 *   than the official one: refused before it is read into memory.
 * @throws {RangeError} If a file is not a whole number of records or holds a label out of range.
 * @throws {Error} If the archive is truncated or corrupt.
 * @throws {TypeError} If an option is unknown or invalid.
 * @example
 * ```ts
 * import { encodeRecords, loadCifar } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const folder = `${dir}/cifar-10-batches-bin`;
 * await Deno.mkdir(folder);
 * await Deno.writeTextFile(`${folder}/batches.meta.txt`, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
 * await Deno.writeFile(`${folder}/test_batch.bin`, encodeRecords(new Uint8Array(2 * 3072), [4, 9], "cifar10"));
 * const test = await loadCifar({ dataset: "cifar10", split: "test", dir });
 * assert.equal(test.count, 2);
 * assert.deepEqual([...test.labels], [4, 9]);
 * assert.equal(test.classNames[9], "j");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadCifar(options: LoadCifarOptions): Promise<CifarSplit> {
  validate(options);
  const spec = cifarSpec(options.dataset);
  const labelKind = resolveLabelKind(options.dataset, options.labels);
  const dataFiles = spec.files[options.split];
  const namesFile = spec.classes[labelKind]!.namesFile;
  let archive = options.archive;
  let dir = options.dir;
  if (archive === undefined && dir === undefined) {
    const cache = defaultDataDir();
    if (await findFolder(cache, options.dataset) !== undefined) dir = cache;
    else if (await exists(join(cache, spec.archiveName), "file")) {
      archive = join(cache, spec.archiveName);
    } else {
      throw new CifarFileMissingError(
        cache,
        `Cannot load ${spec.title} ${options.split}: the data folder ${cache} holds neither ` +
          `${spec.folder}/ nor ${spec.archiveName}. ${
            howToGet(options.dataset)
          }; or pass dir/archive.`,
      );
    }
  }
  if (archive === undefined && (await findFolder(dir!, options.dataset)) === undefined) {
    // A data folder holding only the official archive (as ensureCifar leaves it): read that.
    const inDir = join(dir!, spec.archiveName);
    if (await exists(inDir, "file")) archive = inDir;
  }
  if (archive !== undefined) {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(archive);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new CifarFileMissingError(
          archive,
          `Cannot load ${spec.title} ${options.split}: archive ${archive} does not exist. ` +
            howToGet(options.dataset),
        );
      }
      throw error;
    }
    const wanted = [...dataFiles, namesFile].map((f) => `${spec.folder}/${f}`);
    const contents = await readTarGz(file.readable, {
      wanted,
      name: archive,
      maxMemberBytes: Object.fromEntries(
        wanted.map((m) => [m, maxFileBytes(options.dataset, m)]),
      ),
      maxTotalBytes: maxArchiveContentBytes(options.dataset),
    });
    const files: CifarFileInfo[] = [{ path: archive, bytes: contents.bytes, md5: contents.md5 }];
    const get = (member: string): { file: string; bytes: Uint8Array } => {
      const bytes = contents.members.get(`${spec.folder}/${member}`);
      const path = `${archive}!${spec.folder}/${member}`;
      if (bytes === undefined) {
        throw new CifarFileMissingError(
          path,
          `Cannot load ${spec.title} ${options.split}: archive ${archive} has no member ` +
            `${spec.folder}/${member} (archive md5 ${contents.md5}, expected the official ` +
            `${spec.archiveName} with md5 ${spec.archiveMd5}). ${howToGet(options.dataset)}`,
        );
      }
      files.push({ path, bytes: bytes.length, md5: md5Hex(bytes) });
      return { file: path, bytes };
    };
    const parts = dataFiles.map(get);
    const names = get(namesFile);
    return assemble(options, labelKind, parts, names, files);
  }
  const folder = await findFolder(dir!, options.dataset);
  if (folder === undefined) {
    throw new CifarFileMissingError(
      dir!,
      `Cannot load ${spec.title} ${options.split}: ${dir} contains neither ${spec.folder}/ nor ` +
        `its files (${dataFiles.join(", ")}) nor ${spec.archiveName}. Pass the folder that ` +
        `contains ${spec.folder}/ or that folder itself. ${howToGet(options.dataset)}`,
    );
  }
  const files: CifarFileInfo[] = [];
  const read = async (name: string): Promise<{ file: string; bytes: Uint8Array }> => {
    const path = join(folder, name);
    let bytes: Uint8Array;
    try {
      bytes = await readBounded(path, maxFileBytes(options.dataset, name), name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new CifarFileMissingError(
          path,
          `Cannot load ${spec.title} ${options.split}: missing file ${path} (the ${options.split} ` +
            `split needs ${dataFiles.join(", ")} and ${namesFile}). ${howToGet(options.dataset)}`,
        );
      }
      throw error;
    }
    files.push({ path, bytes: bytes.length, md5: md5Hex(bytes) });
    return { file: path, bytes };
  };
  const parts = [];
  for (const name of dataFiles) parts.push(await read(name));
  const names = await read(namesFile);
  return assemble(options, labelKind, parts, names, files);
}
