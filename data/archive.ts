/**
 * Reading members of a `.tar.gz` archive straight from a stream, without extracting to disk:
 * gzip through the platform's `DecompressionStream`, tar through `npm:tar-stream`.
 *
 * @module
 */
// @ts-types="@types/tar-stream"
import tar from "tar-stream";
import { SizeLimitError } from "./limits.ts";
import { createMd5 } from "./md5.ts";

/** What {@linkcode readTarGz} found. */
export interface TarGzContents {
  /** Wanted members that were present, by path inside the archive (leading `./` removed). */
  readonly members: ReadonlyMap<string, Uint8Array>;
  /** md5 of the compressed archive bytes. */
  readonly md5: string;
  /** Size of the compressed archive in bytes. */
  readonly bytes: number;
}

/** Options of {@linkcode readTarGz}. */
export interface ReadTarGzOptions {
  /** Paths of the members to keep (others are skipped without buffering). */
  readonly wanted: readonly string[];
  /** Name of the archive for error messages (a path or URL). */
  readonly name: string;
  /**
   * Largest size of each wanted member, by path; a member whose header declares more is refused
   * before its buffer is allocated. Members not listed have no limit.
   */
  readonly maxMemberBytes?: Readonly<Record<string, number>>;
  /** Largest size of the whole decompressed tar stream; reading stops once it is exceeded. */
  readonly maxTotalBytes?: number;
}

function corrupt(name: string, cause: unknown, bytes: number): Error {
  const what = cause instanceof Error ? cause.message : String(cause);
  return new Error(
    `Cannot read archive ${name}: ${what} after ${bytes} compressed bytes. The archive is ` +
      `truncated or corrupt (expected a complete gzip-compressed tar); download it again.`,
    { cause },
  );
}

function normaliseName(name: string): string {
  return name.replace(/^(\.\/)+/, "");
}

/**
 * Reads the wanted members of a gzip-compressed tar archive from a byte stream. Members that are
 * not wanted are streamed past. Missing members are not an error here: check `members`.
 *
 * @param source The compressed bytes, e.g. `(await Deno.open(path)).readable`.
 * @param options Wanted member paths and the archive's name for errors.
 * @returns The wanted members found, with the archive's md5 and size.
 * @throws {SizeLimitError} If a wanted member declares more than its `maxMemberBytes`, or the
 *   decompressed stream exceeds `maxTotalBytes` (checked before allocating, while streaming).
 * @throws {Error} If the gzip or tar data is truncated or corrupt; the message names the archive.
 * @example
 * ```ts
 * import { readTarGz } from "@mfi/data";
 * import assert from "node:assert/strict";
 * // An empty tar archive is 1024 zero bytes.
 * const gz = new Blob([new Uint8Array(1024)]).stream().pipeThrough(new CompressionStream("gzip"));
 * const { members } = await readTarGz(gz, { wanted: ["a.bin"], name: "empty.tar.gz" });
 * assert.equal(members.size, 0);
 * ```
 */
export async function readTarGz(
  source: ReadableStream<Uint8Array>,
  options: ReadTarGzOptions,
): Promise<TarGzContents> {
  const wanted = new Set(options.wanted.map(normaliseName));
  const limits = new Map(
    Object.entries(options.maxMemberBytes ?? {}).map(([k, v]) => [normaliseName(k), v]),
  );
  const maxTotal = options.maxTotalBytes ?? Infinity;
  let inflated = 0;
  const md5 = createMd5();
  let bytes = 0;
  const counted = source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        md5.update(chunk);
        bytes += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  const gunzip = new DecompressionStream("gzip") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const tarBytes = counted.pipeThrough(gunzip);
  const extract = tar.extract();
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const chunk of tarBytes) {
        if (extract.destroyed) break; // the reader gave up; stop (cancels the source)
        inflated += chunk.length;
        if (inflated > maxTotal) {
          throw new SizeLimitError(
            options.name,
            inflated,
            maxTotal,
            `the most its decompressed contents may hold (stopped after ${bytes} compressed bytes)`,
          );
        }
        if (!extract.write(chunk)) {
          // Wait for room, or for the extractor to be closed by an error on the reading side.
          await new Promise<void>((resolve) => {
            const done = (): void => {
              extract.off("drain", done);
              extract.off("close", done);
              resolve();
            };
            extract.on("drain", done);
            extract.on("close", done);
          });
        }
      }
      if (!extract.destroyed) extract.end();
    } catch (error) {
      feedError = error;
      extract.destroy(error as Error);
    }
  })();
  const members = new Map<string, Uint8Array>();
  try {
    for await (const entry of extract) {
      const name = normaliseName(entry.header.name);
      if (entry.header.type === "file" && wanted.has(name)) {
        const size = entry.header.size ?? 0;
        const limit = limits.get(name);
        if (limit !== undefined && size > limit) {
          throw new SizeLimitError(
            `${options.name}!${name}`,
            size,
            limit,
            "the official size of that file (its tar header declares more)",
          );
        }
        const out = new Uint8Array(size);
        let at = 0;
        for await (const chunk of entry) {
          out.set(chunk, at);
          at += chunk.length;
        }
        if (at !== size) {
          throw new Error(`member ${name} ends after ${at} of ${size} bytes`);
        }
        members.set(name, out);
      } else {
        for await (const _ of entry) { /* skip */ }
      }
    }
  } catch (error) {
    extract.destroy();
    await feeding;
    const cause = feedError ?? error;
    if (cause instanceof SizeLimitError) throw cause;
    if (error instanceof SizeLimitError) throw error;
    throw corrupt(options.name, cause, bytes);
  }
  await feeding;
  if (feedError !== undefined) {
    if (feedError instanceof SizeLimitError) throw feedError;
    throw corrupt(options.name, feedError, bytes);
  }
  return { members, md5: md5.hex(), bytes };
}
