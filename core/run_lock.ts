/**
 * A run-directory lock: `<dir>/.lock`, created exclusively, holding who took it (pid, host, start
 * time, command). A second run on the same folder is refused with an error naming the holder.
 *
 * Stale locks: a lock whose process is dead on this host (checked through `/proc/<pid>`, so on
 * Linux) is removed automatically and reported through `onStale`; a lock held by a live process
 * or taken on another host is never broken automatically (delete `<dir>/.lock` by hand once you
 * are sure that run is gone).
 *
 * @module
 */
/** Name of the lock file inside a run folder. */
export const LOCK_FILE = ".lock";

/** What a lock file records. */
export interface LockInfo {
  /** Process id of the holder. */
  readonly pid: number;
  /** Host name of the holder. */
  readonly hostname: string;
  /** ISO time the lock was taken. */
  readonly startedAt: string;
  /** The holder's command line. */
  readonly command: string;
  /** Random token telling this holder from a later one with the same pid. */
  readonly token: string;
}

/** Thrown when another run holds the folder's lock. */
export class RunLockedError extends Error {
  /** The lock file. */
  readonly path: string;
  /** Who holds it (null if the file is unreadable). */
  readonly holder: LockInfo | null;
  /**
   * Creates the error.
   *
   * @param path The lock file.
   * @param holder Its contents, if readable.
   */
  constructor(path: string, holder: LockInfo | null) {
    super(
      holder
        ? `Run folder is in use: ${path} is held by pid ${holder.pid} on ${holder.hostname} ` +
          `since ${holder.startedAt} (${holder.command}). Wait for that run to finish or stop ` +
          `it; if you are sure it is gone, delete ${path}.`
        : `Run folder is in use: ${path} exists but cannot be read. If no run uses this ` +
          `folder, delete ${path}.`,
    );
    this.name = "RunLockedError";
    this.path = path;
    this.holder = holder;
  }
}

/** A held lock. */
export interface RunLock {
  /** The lock file. */
  readonly path: string;
  /** What it records. */
  readonly info: LockInfo;
  /** Removes the lock if it is still ours (idempotent). */
  release(): Promise<void>;
}

/** Options of {@linkcode acquireRunLock}. */
export interface AcquireRunLockOptions {
  /** The command to record (default `Deno.args` joined). */
  readonly command?: string;
  /** Called with a message when a stale lock (dead process on this host) is removed. */
  readonly onStale?: (message: string) => void;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}

/**
 * Whether a process is alive on this host: true, false, or undefined when it cannot be told
 * (only Linux is asked, through `/proc/<pid>`).
 *
 * @param pid The process id.
 * @returns The answer.
 * @example
 * ```ts
 * import { isProcessAlive } from "@mfi/core";
 * import assert from "node:assert/strict";
 * if (Deno.build.os === "linux") assert.equal(isProcessAlive(Deno.pid), true);
 * ```
 */
export function isProcessAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    return undefined;
  }
}

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text);
    if (
      typeof v === "object" && v !== null && Number.isInteger(v.pid) &&
      typeof v.hostname === "string" && typeof v.startedAt === "string" &&
      typeof v.command === "string"
    ) {
      return { token: "", ...v } as LockInfo;
    }
  } catch { /* unreadable */ }
  return null;
}

async function readLock(path: string): Promise<{ text: string; info: LockInfo | null } | null> {
  try {
    const text = await Deno.readTextFile(path);
    return { text, info: parseLock(text) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Takes `<dir>/.lock` (the folder must exist). A stale lock (dead pid on this host) is removed
 * with a message and the lock taken.
 *
 * @param dir The run folder.
 * @param options Command to record, stale-lock callback.
 * @returns The held lock; call `release()` when the run ends.
 * @throws {RunLockedError} If another live (or foreign-host) run holds it, naming the holder.
 * @example
 * ```ts
 * import { acquireRunLock } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const lock = await acquireRunLock(dir, { command: "train --out x" });
 * await assert.rejects(acquireRunLock(dir), /held by pid \d+ .*train --out x/);
 * await lock.release();
 * await (await acquireRunLock(dir)).release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function acquireRunLock(
  dir: string,
  options: AcquireRunLockOptions = {},
): Promise<RunLock> {
  const path = `${dir.replace(/\/$/, "")}/${LOCK_FILE}`;
  const info: LockInfo = {
    pid: Deno.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    command: options.command ?? ["deno", ...Deno.args].join(" "),
    token: Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16)).join(""),
  };
  const text = JSON.stringify(info, null, 1) + "\n";
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Exclusive create of the lock itself; the contents follow (readers tolerate an empty file).
      const file = await Deno.open(path, { createNew: true, write: true });
      try {
        const bytes = new TextEncoder().encode(text);
        let off = 0;
        while (off < bytes.length) off += await file.write(bytes.subarray(off));
        await file.sync();
      } finally {
        file.close();
      }
      let released = false;
      return {
        path,
        info,
        async release(): Promise<void> {
          if (released) return;
          released = true;
          const now = await readLock(path);
          if (now !== null && now.info?.token === info.token) await Deno.remove(path);
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const held = await readLock(path);
    if (held === null) continue; // released meanwhile: try again
    const holder = held.info;
    if (holder === null || holder.hostname !== info.hostname) {
      throw new RunLockedError(path, holder);
    }
    if (isProcessAlive(holder.pid) !== false) throw new RunLockedError(path, holder);
    // Stale: move it aside under a unique name, and put it back if what moved was not it.
    const aside = `${path}.stale-${Deno.pid}-${attempt}`;
    try {
      await Deno.rename(path, aside);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    const moved = await Deno.readTextFile(aside);
    if (moved !== held.text) {
      await Deno.link(aside, path).catch(() => {});
      await Deno.remove(aside);
      throw new RunLockedError(path, parseLock(moved));
    }
    await Deno.remove(aside);
    options.onStale?.(
      `Removed a stale lock ${path}: pid ${holder.pid} on ${holder.hostname} (${holder.command}, ` +
        `since ${holder.startedAt}) is no longer running.`,
    );
  }
  throw new RunLockedError(path, (await readLock(path))?.info ?? null);
}

/**
 * Runs `fn` while holding `<dir>/.lock`; the lock is released however `fn` ends.
 *
 * @param dir The run folder (must exist).
 * @param fn The work.
 * @param options See {@linkcode acquireRunLock}.
 * @returns What `fn` returns.
 * @throws {RunLockedError} If another run holds the folder.
 * @example
 * ```ts
 * import { withRunLock } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await withRunLock(dir, () => Promise.resolve(7)), 7);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withRunLock<T>(
  dir: string,
  fn: () => Promise<T>,
  options: AcquireRunLockOptions = {},
): Promise<T> {
  const lock = await acquireRunLock(dir, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
