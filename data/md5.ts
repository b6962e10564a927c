/**
 * md5 digests (Web Crypto has none), through `node:crypto`, which Deno implements natively.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** An incremental md5 digest. */
export interface Md5 {
  /**
   * Adds bytes.
   *
   * @param bytes The next chunk.
   */
  update(bytes: Uint8Array): void;
  /**
   * Finishes the digest (call once).
   *
   * @returns The lowercase hex digest of everything added.
   */
  hex(): string;
}

/**
 * Starts an incremental md5 digest, for streams.
 *
 * @returns A digest to `update` with chunks and finish with `hex`.
 * @example
 * ```ts
 * import { createMd5 } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const md5 = createMd5();
 * md5.update(new TextEncoder().encode("a"));
 * md5.update(new TextEncoder().encode("bc"));
 * assert.equal(md5.hex(), "900150983cd24fb0d6963f7d28e17f72");
 * ```
 */
export function createMd5(): Md5 {
  const hash = createHash("md5");
  return {
    update(bytes: Uint8Array): void {
      hash.update(bytes);
    },
    hex(): string {
      return hash.digest("hex");
    },
  };
}

/**
 * Computes the md5 digest of some bytes.
 *
 * @param bytes The data.
 * @returns The lowercase hex digest.
 * @example
 * ```ts
 * import { md5Hex } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(md5Hex(new Uint8Array()), "d41d8cd98f00b204e9800998ecf8427e");
 * ```
 */
export function md5Hex(bytes: Uint8Array): string {
  const md5 = createMd5();
  md5.update(bytes);
  return md5.hex();
}
