/**
 * Where downloaded datasets live.
 *
 * @module
 */
import { join } from "node:path";

/**
 * The data cache folder: `MFI_DATA_DIR` if set, else `mfi-resnet` under the user's cache folder
 * (`$XDG_CACHE_HOME`, else `~/.cache`; `%LOCALAPPDATA%` on Windows).
 *
 * @returns An absolute or home-relative folder path (not created).
 * @throws {Error} If neither `MFI_DATA_DIR` nor a home/cache folder is set in the environment.
 * @example
 * ```ts
 * import { defaultDataDir } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.ok(defaultDataDir().length > 0);
 * ```
 */
export function defaultDataDir(): string {
  const env = (name: string): string | undefined => {
    try {
      const value = Deno.env.get(name);
      return value === "" ? undefined : value;
    } catch {
      return undefined; // no --allow-env
    }
  };
  const explicit = env("MFI_DATA_DIR");
  if (explicit !== undefined) return explicit;
  const base = env("XDG_CACHE_HOME") ?? env("LOCALAPPDATA") ??
    (env("HOME") !== undefined ? join(env("HOME")!, ".cache") : undefined);
  if (base === undefined) {
    throw new Error(
      "Cannot choose a data folder: set MFI_DATA_DIR (or HOME / XDG_CACHE_HOME) or pass `dir`",
    );
  }
  return join(base, "mfi-resnet");
}
