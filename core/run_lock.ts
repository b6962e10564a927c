/**
 * A run-directory lock: `<dir>/.lock`, created exclusively, holding who took it (pid, host, start
 * time, command). A second run on the same folder is refused with an error naming the holder.
 * Parts of a folder can be locked on their own (`scopes`, files `<dir>/.lock.<scope>`), e.g. the
 * independent phases of one run started as separate processes.
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
  /** The lock file (the first one, with several scopes). */
  readonly path: string;
  /** What it records. */
  readonly info: LockInfo;
  /** Removes the lock file(s) that are still ours (idempotent). */
  release(): Promise<void>;
}

/** Options of {@linkcode acquireRunLock}. */
export interface AcquireRunLockOptions {
  /** Lock only these parts of the folder (e.g. phase ids) instead of the whole folder. */
  readonly scopes?: readonly string[];
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
 * If the lock file at `path` is stale (its holder is a dead process on this host), removes it and
 * says so; otherwise throws {@linkcode RunLockedError} naming its holder.
 *
 * @returns False when the file vanished meanwhile (nothing to remove), true when it was removed.
 */
async function breakIfStale(
  path: string,
  host: string,
  onStale: ((message: string) => void) | undefined,
): Promise<boolean> {
  const held = await readLock(path);
  if (held === null) return false; // released meanwhile
  const holder = held.info;
  if (holder === null || holder.hostname !== host) throw new RunLockedError(path, holder);
  if (isProcessAlive(holder.pid) !== false) throw new RunLockedError(path, holder);
  // Stale: move it aside under a unique name, and put it back if what moved was not it.
  const dir = path.slice(0, path.lastIndexOf("/") + 1);
  const aside = `${dir}.stale-lock-${Deno.pid}-${crypto.randomUUID()}`;
  try {
    await Deno.rename(path, aside);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  const moved = await Deno.readTextFile(aside);
  if (moved !== held.text) {
    await Deno.link(aside, path).catch(() => {});
    await Deno.remove(aside);
    throw new RunLockedError(path, parseLock(moved));
  }
  await Deno.remove(aside);
  onStale?.(
    `Removed a stale lock ${path}: pid ${holder.pid} on ${holder.hostname} (${holder.command}, ` +
      `since ${holder.startedAt}) is no longer running.`,
  );
  return true;
}

/** Creates `path` exclusively with `text`, breaking a stale lock in the way; throws if held. */
async function createLockFile(
  path: string,
  text: string,
  host: string,
  onStale: ((message: string) => void) | undefined,
): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await Deno.open(path, { createNew: true, write: true });
      try {
        const bytes = new TextEncoder().encode(text);
        let off = 0;
        while (off < bytes.length) off += await file.write(bytes.subarray(off));
        await file.sync();
      } finally {
        file.close();
      }
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    await breakIfStale(path, host, onStale);
  }
  throw new RunLockedError(path, (await readLock(path))?.info ?? null);
}

/**
 * The lock file of a scope: `.lock` for the whole folder, `.lock.<scope>` (characters other than
 * letters, digits, `.`, `_`, `+`, `-` replaced by `_`) for a part of it.
 *
 * @param scope The scope, or undefined for the whole folder.
 * @returns The file name.
 */
function lockName(scope: string | undefined): string {
  return scope === undefined
    ? LOCK_FILE
    : `${LOCK_FILE}.${scope.replace(/[^A-Za-z0-9._+-]/g, "_")}`;
}

/**
 * Takes the lock of a run folder (the folder must exist): `<dir>/.lock`, or with `scopes` one
 * `<dir>/.lock.<scope>` per scope (e.g. one per phase, so that independent phases of one run can
 * run as separate processes). A whole-folder lock and any scoped lock exclude each other; two
 * scoped locks exclude each other only on a shared scope. Each file is created exclusively; a
 * stale one (dead pid on this host) is removed with a message.
 *
 * @param dir The run folder.
 * @param options Scopes, command to record, stale-lock callback.
 * @returns The held lock; call `release()` when the run ends.
 * @throws {RunLockedError} If another live (or foreign-host) run holds it, naming the holder;
 *   nothing of this call's is left behind.
 * @example
 * ```ts
 * import { acquireRunLock } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const lock = await acquireRunLock(dir, { command: "train --out x" });
 * await assert.rejects(acquireRunLock(dir), /held by pid \d+ .*train --out x/);
 * await assert.rejects(acquireRunLock(dir, { scopes: ["incubate:1"] }), /held by pid/);
 * await lock.release();
 * const a = await acquireRunLock(dir, { scopes: ["incubate:1"] });
 * const b = await acquireRunLock(dir, { scopes: ["incubate:2"] });
 * await assert.rejects(acquireRunLock(dir), /\.lock\.incubate_[12] is held/);
 * await a.release();
 * await b.release();
 * await (await acquireRunLock(dir)).release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function acquireRunLock(
  dir: string,
  options: AcquireRunLockOptions = {},
): Promise<RunLock> {
  const base = dir.replace(/\/$/, "");
  const host = hostname();
  const info: LockInfo = {
    pid: Deno.pid,
    hostname: host,
    startedAt: new Date().toISOString(),
    command: options.command ?? ["deno", ...Deno.args].join(" "),
    token: crypto.randomUUID(),
  };
  const text = JSON.stringify(info, null, 1) + "\n";
  const scopes = options.scopes?.length ? [...new Set(options.scopes)].sort() : [undefined];
  const paths = scopes.map((s) => `${base}/${lockName(s)}`);
  const taken: string[] = [];
  const releaseTaken = async (): Promise<void> => {
    for (const path of taken) {
      const now = await readLock(path).catch(() => null);
      if (now?.info?.token === info.token) await Deno.remove(path).catch(() => {});
    }
  };
  try {
    for (const path of paths) {
      await createLockFile(path, text, host, options.onStale);
      taken.push(path);
    }
    // The other kind of lock: created first, checked second, so two runs never both proceed.
    const others: string[] = [];
    if (options.scopes?.length) {
      others.push(`${base}/${LOCK_FILE}`);
    } else {
      for await (const e of Deno.readDir(base)) {
        if (e.name.startsWith(`${LOCK_FILE}.`)) others.push(`${base}/${e.name}`);
      }
    }
    for (const other of others) await breakIfStale(other, host, options.onStale);
  } catch (e) {
    await releaseTaken();
    throw e;
  }
  let released = false;
  return {
    path: paths[0],
    info,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await releaseTaken();
    },
  };
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
