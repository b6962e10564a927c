/**
 * The one way this project writes a file: a temporary file beside the target, created
 * exclusively (`createNew`, so a file or symlink planted at the temporary name is never followed
 * or overwritten) under a name unique to this writer (process id, a counter and random bits, so
 * two runs never share a `.part`), written in full, flushed to disk (`fsync`) and renamed over the
 * target. A reader sees the old file or the new one, never a mix; a crash leaves at most a
 * `*.part` file, which every reader ignores. Refuses to write over a file the caller names as an
 * input (compared by real path, so links and `./` spellings are caught).
 *
 * @module
 */

let counter = 0;

function randomHex(bytes: number): string {
  // Uniqueness only (not a model's randomness): crypto, not the seeded Rng.
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Suffix of every temporary file written by {@linkcode writeFileAtomic} and {@linkcode openAtomic}. */
export const PART_SUFFIX = ".part";

/**
 * A temporary path beside `path`, unique to this writer: `<path>.<pid>.<n>-<random>.part`.
 *
 * @param path The final path.
 * @returns A path that no other writer (process or call) picks.
 * @example
 * ```ts
 * import { uniqueTempPath } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const a = uniqueTempPath("out/model.bin");
 * assert.match(a, /^out\/model\.bin\.\d+\.\d+-[0-9a-f]{8}\.part$/);
 * assert.notEqual(a, uniqueTempPath("out/model.bin"));
 * ```
 */
export function uniqueTempPath(path: string): string {
  return `${path}.${Deno.pid}.${counter++}-${randomHex(4)}${PART_SUFFIX}`;
}

/** Thrown when an output path names one of the command's inputs. */
export class OverwriteInputError extends Error {
  /** The output path. */
  readonly path: string;
  /** The input it is the same file as. */
  readonly input: string;
  /**
   * Creates the error.
   *
   * @param path The output path.
   * @param input The input path it resolves to.
   */
  constructor(path: string, input: string) {
    super(
      `Refusing to write ${path}: it is the input ${input} (the same file). ` +
        `Choose another output path.`,
    );
    this.name = "OverwriteInputError";
    this.path = path;
    this.input = input;
  }
}

async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Throws if `path` is (by real path) one of `inputs`. Paths that do not exist are never inputs.
 *
 * @param path The output path.
 * @param inputs Files the command reads.
 * @returns When the output is not an input.
 * @throws {OverwriteInputError} Naming both paths.
 * @example
 * ```ts
 * import { assertNotInput } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/in.txt`, "x");
 * await assertNotInput(`${dir}/out.txt`, [`${dir}/in.txt`]);
 * await assert.rejects(assertNotInput(`${dir}/./in.txt`, [`${dir}/in.txt`]), /is the input/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function assertNotInput(path: string, inputs: readonly string[]): Promise<void> {
  if (inputs.length === 0) return;
  const out = await realPathOrNull(path);
  if (out === null) return;
  for (const input of inputs) {
    if ((await realPathOrNull(input)) === out) throw new OverwriteInputError(path, input);
  }
}

/** Options of {@linkcode writeFileAtomic} and {@linkcode openAtomic}. */
export interface AtomicWriteOptions {
  /** Files the caller reads: writing over any of them is refused. */
  readonly inputs?: readonly string[];
}

/** A file being written atomically: write, then `commit` (or `abort`). */
export interface AtomicWriter {
  /** The temporary path (exclusive to this writer). */
  readonly tempPath: string;
  /** The final path. */
  readonly path: string;
  /**
   * Writes all of `bytes`.
   *
   * @param bytes The next chunk.
   */
  write(bytes: Uint8Array): Promise<void>;
  /** Flushes to disk, closes and renames over the final path. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file (safe to call after a failed commit or twice). */
  abort(): Promise<void>;
}

/**
 * Opens an atomic writer for `path`: a fresh temporary file created exclusively beside it.
 *
 * @param path The final path.
 * @param options Inputs that must not be overwritten.
 * @returns The writer.
 * @throws {OverwriteInputError} If `path` is one of `options.inputs`.
 * @throws {Deno.errors.AlreadyExists} If the temporary name exists (never for a unique name).
 * @example
 * ```ts
 * import { openAtomic } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const w = await openAtomic(`${dir}/big.bin`);
 * await w.write(new Uint8Array([1, 2]));
 * await w.write(new Uint8Array([3]));
 * await w.commit();
 * assert.deepEqual(await Deno.readFile(`${dir}/big.bin`), new Uint8Array([1, 2, 3]));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openAtomic(
  path: string,
  options: AtomicWriteOptions = {},
): Promise<AtomicWriter> {
  await assertNotInput(path, options.inputs ?? []);
  const tempPath = uniqueTempPath(path);
  // createNew: O_CREAT | O_EXCL; fails on any existing entry, a symlink included (not followed).
  const file = await Deno.open(tempPath, { createNew: true, write: true });
  let closed = false;
  let done = false;
  const close = (): void => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  return {
    tempPath,
    path,
    async write(bytes: Uint8Array): Promise<void> {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
    },
    async commit(): Promise<void> {
      try {
        await file.sync();
        close();
        await assertNotInput(path, options.inputs ?? []);
        await Deno.rename(tempPath, path);
        done = true;
      } finally {
        if (!done) {
          close();
          await Deno.remove(tempPath).catch(() => {});
        }
      }
    },
    async abort(): Promise<void> {
      close();
      if (!done) {
        done = true;
        await Deno.remove(tempPath).catch(() => {});
      }
    },
  };
}

/**
 * Writes a file atomically: exclusive unique temporary file, write, fsync, rename.
 *
 * @param path Final path.
 * @param bytes Contents.
 * @param options Inputs that must not be overwritten.
 * @returns When the file is in place.
 * @throws {OverwriteInputError} If `path` is one of `options.inputs`.
 * @example
 * ```ts
 * import { writeFileAtomic } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, new TextEncoder().encode("hi"));
 * assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "hi");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const writer = await openAtomic(path, options);
  try {
    await writer.write(bytes);
    await writer.commit();
  } finally {
    await writer.abort();
  }
}

/**
 * Writes a text file atomically (UTF-8); see {@linkcode writeFileAtomic}.
 *
 * @param path Final path.
 * @param text Contents.
 * @param options Inputs that must not be overwritten.
 * @returns When the file is in place.
 * @throws {OverwriteInputError} If `path` is one of `options.inputs`.
 * @example
 * ```ts
 * import { writeTextFileAtomic } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await writeTextFileAtomic(`${dir}/a.json`, "{}\n");
 * assert.equal(await Deno.readTextFile(`${dir}/a.json`), "{}\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeTextFileAtomic(
  path: string,
  text: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(text), options);
}
