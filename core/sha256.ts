/**
 * SHA-256 of bytes as lowercase hex, the digest that checkpoints, bundles and the pipeline's
 * staleness checks store (Web Crypto; no permission needed).
 *
 * @module
 */

/**
 * SHA-256 of bytes, as 64 lowercase hex digits.
 *
 * @param bytes The data.
 * @returns The hex digest.
 * @example
 * ```ts
 * import { sha256Hex } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(
 *   await sha256Hex(new TextEncoder().encode("abc")),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * ```
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
