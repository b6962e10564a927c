/**
 * Downloading the official CIFAR archives into the data cache, md5-verified, atomically.
 *
 * @module
 */
import { join } from "node:path";
import { createProgress, type ProgressMode } from "./_progress.ts";

export type { ProgressMode };
import { defaultDataDir } from "./cache_dir.ts";
import { createMd5 } from "./md5.ts";
import { type CifarDataset, cifarSpec } from "./spec.ts";

/** Options of {@linkcode ensureCifar}. */
export interface EnsureCifarOptions {
  /** `"cifar10"` or `"cifar100"`. */
  readonly dataset: CifarDataset;
  /** Cache folder; default {@linkcode defaultDataDir} (`MFI_DATA_DIR` or `~/.cache/mfi-resnet`). */
  readonly dir?: string;
  /** Where to download from; default the official URL (tests point this at a local server). */
  readonly url?: string;
  /** Expected md5 of the archive; default the published one. */
  readonly md5?: string;
  /** `"auto"` (default: a bar on a terminal, plain lines otherwise), `"bar"`, `"lines"`, `"none"`. */
  readonly progress?: ProgressMode;
  /** Aborts the download. */
  readonly signal?: AbortSignal;
}

/** Where the archive is and how it got there. */
export interface CifarArchive {
  /** Path of the verified archive; pass it as `archive` to `loadCifar`. */
  readonly path: string;
  /** Its md5 (equal to the expected one). */
  readonly md5: string;
  /** Size in bytes. */
  readonly bytes: number;
  /** True if this call downloaded it; false if a verified copy was already cached. */
  readonly downloaded: boolean;
}

const KEYS = new Set(["dataset", "dir", "url", "md5", "progress", "signal"]);

async function md5OfFile(path: string): Promise<{ md5: string; bytes: number }> {
  const md5 = createMd5();
  let bytes = 0;
  const file = await Deno.open(path);
  for await (const chunk of file.readable) {
    md5.update(chunk);
    bytes += chunk.length;
  }
  return { md5: md5.hex(), bytes };
}

/**
 * Makes sure the official archive of a dataset is in the cache folder, downloading it if needed.
 * The download streams into a temporary file in the same folder while computing its md5 (progress
 * on stderr), and is renamed into place only if the size and md5 are right; on any failure the
 * temporary file is removed, so the cache never holds a partial or unverified archive. A cached
 * archive is re-verified by md5 on every call.
 *
 * @param options Dataset, cache folder, URL and md5 overrides, progress mode.
 * @returns The verified archive's path and md5.
 * @throws {Error} On a network failure, an HTTP error, a truncated transfer or an md5 mismatch,
 *   naming the URL, the expected md5 and how to place the file by hand; or if a cached file with
 *   the archive's name has the wrong md5.
 * @throws {TypeError} If an option is unknown or invalid.
 * @example
 * ```ts
 * import { ensureCifar, md5Hex } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const body = new TextEncoder().encode("not really an archive");
 * const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => new Response(body));
 * const dir = await Deno.makeTempDir();
 * const got = await ensureCifar({
 *   dataset: "cifar10", dir, url: `http://127.0.0.1:${server.addr.port}/a.tar.gz`,
 *   md5: md5Hex(body), progress: "none",
 * });
 * assert.equal(got.downloaded, true);
 * assert.deepEqual(await Deno.readFile(got.path), body);
 * await server.shutdown();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function ensureCifar(options: EnsureCifarOptions): Promise<CifarArchive> {
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new TypeError(
        `ensureCifar: unknown option ${JSON.stringify(key)}; expected ${[...KEYS].join(", ")}`,
      );
    }
  }
  const spec = cifarSpec(options.dataset);
  const expected = (options.md5 ?? spec.archiveMd5).toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(expected)) {
    throw new TypeError(
      `ensureCifar: md5 must be 32 hex digits, got ${JSON.stringify(options.md5)}`,
    );
  }
  const progressMode = options.progress ?? "auto";
  if (!["auto", "bar", "lines", "none"].includes(progressMode)) {
    throw new TypeError(
      `ensureCifar: progress must be "auto", "bar", "lines" or "none", got ${
        JSON.stringify(progressMode)
      }`,
    );
  }
  const url = options.url ?? spec.url;
  const dir = options.dir ?? defaultDataDir();
  const target = join(dir, spec.archiveName);
  const byHand = `To place it by hand, download ${spec.url} (md5 ${expected}) with a browser or ` +
    `curl and save it as ${target}; or pass \`archive\`/\`dir\` to loadCifar.`;

  try {
    const cached = await md5OfFile(target);
    if (cached.md5 === expected) return { path: target, ...cached, downloaded: false };
    throw new Error(
      `Cached archive ${target} has md5 ${cached.md5} (${cached.bytes} bytes), expected ` +
        `${expected}: it is corrupt or not ${spec.archiveName}. Delete it to download again. ${byHand}`,
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }

  await Deno.mkdir(dir, { recursive: true });
  const fail = (what: string, cause?: unknown): Error =>
    new Error(`Cannot download ${spec.title} from ${url}: ${what}. ${byHand}`, { cause });
  let response: Response;
  try {
    response = await fetch(url, { signal: options.signal });
  } catch (error) {
    throw fail(`network error (${(error as Error).message})`, error);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw fail(`HTTP ${response.status} ${response.statusText}`);
  }
  const header = response.headers.get("content-length");
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  const temp = await Deno.makeTempFile({ dir, prefix: `${spec.archiveName}.`, suffix: ".part" });
  let renamed = false;
  try {
    const md5 = createMd5();
    let received = 0;
    const progress = createProgress(`${spec.archiveName}`, total, progressMode);
    const file = await Deno.open(temp, { write: true, truncate: true });
    try {
      for await (const chunk of response.body) {
        md5.update(chunk);
        received += chunk.length;
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
        progress.update(received);
      }
    } catch (error) {
      progress.abort();
      throw fail(
        `transfer interrupted after ${received} bytes (${(error as Error).message})`,
        error,
      );
    } finally {
      file.close();
    }
    progress.done();
    if (total !== undefined && received !== total) {
      throw fail(`transfer ended after ${received} of ${total} bytes`);
    }
    const got = md5.hex();
    if (got !== expected) {
      throw fail(`md5 mismatch: expected ${expected}, got ${got} (${received} bytes)`);
    }
    await Deno.rename(temp, target);
    renamed = true;
    return { path: target, md5: got, bytes: received, downloaded: true };
  } finally {
    if (!renamed) await Deno.remove(temp).catch(() => {});
  }
}
