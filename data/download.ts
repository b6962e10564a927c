/**
 * Downloading the official CIFAR archives into the data cache, md5-verified, atomically, bounded:
 * the body may not exceed the official archive size (checked on the `Content-Length` and while
 * streaming), a server that sends nothing for `readTimeoutMs` is given up on, and partial files
 * left by a killed download are removed (and said so) before the next one starts.
 *
 * @module
 */
import { join } from "node:path";
import { isProcessAlive, openAtomic, PART_SUFFIX } from "@mfi/core";
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
  /**
   * Most bytes the body may hold (default: the official archive's size, `CifarSpec.archiveBytes`);
   * the transfer is stopped as soon as it is exceeded.
   */
  readonly maxBytes?: number;
  /** Give up when the server sends nothing for this long, in ms (default 60,000). */
  readonly readTimeoutMs?: number;
  /** Where messages go (stale partial files removed); default `console.error`. */
  readonly log?: (message: string) => void;
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

const KEYS = new Set([
  "dataset",
  "dir",
  "url",
  "md5",
  "progress",
  "signal",
  "maxBytes",
  "readTimeoutMs",
  "log",
]);

/** Default read timeout of {@linkcode ensureCifar}. */
const READ_TIMEOUT_MS = 60_000;

/**
 * Removes partial downloads of `archiveName` in `dir` left by killed downloads: every
 * `<archiveName>.*.part` whose writer (the pid in its name) is not running on this host, and
 * every one of the older naming without a pid. Partial files of a live process are kept.
 *
 * @param dir The cache folder.
 * @param archiveName The archive's file name.
 * @param log Where to say what was removed.
 */
async function removeStaleParts(
  dir: string,
  archiveName: string,
  log: (message: string) => void,
): Promise<void> {
  const prefix = `${archiveName}.`;
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(dir)) entries.push(e);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.startsWith(prefix) || !e.name.endsWith(PART_SUFFIX)) continue;
    const pid = /^(\d+)\.\d+-[0-9a-f]+$/.exec(
      e.name.slice(prefix.length, -PART_SUFFIX.length),
    )?.[1];
    const path = join(dir, e.name);
    if (pid !== undefined && Number(pid) !== Deno.pid && isProcessAlive(Number(pid)) !== false) {
      log(`${path}: a download by pid ${pid} may be in progress; left alone`);
      continue;
    }
    if (pid !== undefined && Number(pid) === Deno.pid) continue; // ours, in progress
    const bytes = await Deno.stat(path).then((s) => s.size, () => 0);
    await Deno.remove(path).catch(() => {});
    log(`removed ${path} (${bytes} bytes), a partial file left by an interrupted download`);
  }
}

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
 * The download streams into a temporary file in the same folder (created exclusively, unique to
 * this download) while computing its md5 (progress on stderr), and is renamed into place only if
 * the size and md5 are right; on any failure the temporary file is removed, so the cache never
 * holds a partial or unverified archive. The body is limited to `maxBytes` (the official size),
 * a stalled server times out after `readTimeoutMs`, and partial files left by a killed download
 * are removed first (with a message). A cached archive is re-verified by md5 on every call.
 *
 * @param options Dataset, cache folder, URL and md5 overrides, progress mode.
 * @returns The verified archive's path and md5.
 * @throws {Error} On a network failure, an HTTP error, a body over `maxBytes`, a stalled server,
 *   a truncated transfer or an md5 mismatch,
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
  const maxBytes = options.maxBytes ?? spec.archiveBytes;
  if (!(Number.isInteger(maxBytes) && maxBytes > 0)) {
    throw new TypeError(`ensureCifar: maxBytes must be a positive integer, got ${maxBytes}`);
  }
  const readTimeoutMs = options.readTimeoutMs ?? READ_TIMEOUT_MS;
  if (!(readTimeoutMs > 0 && Number.isFinite(readTimeoutMs))) {
    throw new TypeError(
      `ensureCifar: readTimeoutMs must be a positive number, got ${readTimeoutMs}`,
    );
  }
  const log = options.log ?? ((m: string) => console.error(m));
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
  await removeStaleParts(dir, spec.archiveName, log);
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
  if (total !== undefined && total > maxBytes) {
    await response.body.cancel();
    throw fail(
      `the server announces ${total} bytes, more than the ${maxBytes} bytes of ` +
        `${spec.archiveName}; nothing was written`,
    );
  }
  const writer = await openAtomic(target);
  const reader = response.body.getReader();
  let committed = false;
  try {
    const md5 = createMd5();
    let received = 0;
    const progress = createProgress(`${spec.archiveName}`, total, progressMode);
    try {
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<"stalled">((resolve) => {
          timer = setTimeout(() => resolve("stalled"), readTimeoutMs);
        });
        const next = await Promise.race([reader.read(), stalled]).finally(() =>
          clearTimeout(timer)
        );
        if (next === "stalled") {
          throw new Error(
            `the server sent nothing for ${readTimeoutMs / 1000} s (stalled); try again later`,
          );
        }
        if (next.done) break;
        const chunk = next.value;
        if (received + chunk.length > maxBytes) {
          throw new Error(
            `the body exceeds ${maxBytes} bytes, the size of ${spec.archiveName}; stopped`,
          );
        }
        received += chunk.length;
        md5.update(chunk);
        await writer.write(chunk);
        progress.update(received);
      }
    } catch (error) {
      progress.abort();
      await reader.cancel().catch(() => {});
      throw fail(
        `transfer interrupted after ${received} bytes (${(error as Error).message})`,
        error,
      );
    }
    progress.done();
    if (total !== undefined && received !== total) {
      throw fail(`transfer ended after ${received} of ${total} bytes`);
    }
    const got = md5.hex();
    if (got !== expected) {
      throw fail(`md5 mismatch: expected ${expected}, got ${got} (${received} bytes)`);
    }
    await writer.commit();
    committed = true;
    return { path: target, md5: got, bytes: received, downloaded: true };
  } finally {
    if (!committed) await writer.abort();
    reader.releaseLock();
  }
}
