/**
 * Paired comparison of two classifiers on the same test images: per-image correctness as a
 * compact bitset, the discordant counts, and McNemar's exact test (two-sided binomial test on
 * the discordant pairs), per seed and pooled over seeds.
 *
 * @module
 */

/**
 * Packs 0/1 flags into base64 (flag i = bit i % 8 of byte i / 8).
 *
 * @param flags The flags (non-zero = set).
 * @returns Base64 text.
 * @example
 * ```ts
 * import { packCorrect, unpackCorrect } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...unpackCorrect(packCorrect([1, 0, 0, 1, 1, 0, 1, 0, 1]), 9)], [1, 0, 0, 1, 1, 0, 1, 0, 1]);
 * ```
 */
export function packCorrect(flags: ArrayLike<number>): string {
  const bytes = new Uint8Array(Math.ceil(flags.length / 8));
  for (let i = 0; i < flags.length; i++) if (flags[i]) bytes[i >> 3] |= 1 << (i & 7);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * Unpacks {@linkcode packCorrect}'s text.
 *
 * @param text Base64 text.
 * @param count Number of flags.
 * @returns One 0/1 per image.
 * @throws {RangeError} If the text holds fewer than `count` flags or is not base64.
 * @example
 * ```ts
 * import { packCorrect, unpackCorrect } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.throws(() => unpackCorrect(packCorrect([1]), 9), /holds 8 flags, need 9/);
 * ```
 */
export function unpackCorrect(text: string, count: number): Uint8Array {
  let raw: string;
  try {
    raw = atob(text);
  } catch {
    throw new RangeError("unpackCorrect: the correctness record is not base64");
  }
  if (raw.length * 8 < count) {
    throw new RangeError(`unpackCorrect: the record holds ${raw.length * 8} flags, need ${count}`);
  }
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (raw.charCodeAt(i >> 3) >> (i & 7)) & 1;
  return out;
}

/** Discordant counts of model A vs model B on the same images. */
export interface PairedCounts {
  /** Images both models saw. */
  readonly n: number;
  /** A right, B wrong. */
  readonly aOnly: number;
  /** A wrong, B right. */
  readonly bOnly: number;
}

/**
 * Counts the images on which exactly one of two models is right.
 *
 * @param a Model A's per-image correctness.
 * @param b Model B's, same images in the same order.
 * @returns The counts.
 * @throws {RangeError} If the lengths differ.
 * @example
 * ```ts
 * import { pairedCounts } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(pairedCounts([1, 1, 0, 0], [1, 0, 1, 0]), { n: 4, aOnly: 1, bOnly: 1 });
 * ```
 */
export function pairedCounts(a: ArrayLike<number>, b: ArrayLike<number>): PairedCounts {
  if (a.length !== b.length) {
    throw new RangeError(
      `pairedCounts: the models saw different numbers of images (${a.length} vs ${b.length})`,
    );
  }
  let aOnly = 0;
  let bOnly = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && !b[i]) aOnly++;
    else if (!a[i] && b[i]) bOnly++;
  }
  return { n: a.length, aOnly, bOnly };
}

/** log(k!) for the binomial terms. */
function logFactorial(k: number): number {
  let s = 0;
  for (let i = 2; i <= k; i++) s += Math.log(i);
  return s;
}

/**
 * McNemar's exact test: the two-sided p-value of the discordant counts under H0 "both models are
 * equally often right", i.e. `min(1, 2 P(X <= min(b, c)))` for X ~ Binomial(b + c, 1/2).
 *
 * @param b Discordant count one way (A right, B wrong).
 * @param c Discordant count the other way.
 * @returns The p-value (1 when there are no discordant pairs).
 * @throws {RangeError} If a count is not a non-negative integer.
 * @example
 * ```ts
 * import { mcnemarExact } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(mcnemarExact(0, 0), 1);
 * // 0 vs 6 discordant pairs: 2 * 0.5^6 = 0.03125.
 * assert.ok(Math.abs(mcnemarExact(0, 6) - 0.03125) < 1e-12);
 * assert.ok(Math.abs(mcnemarExact(3, 3) - 1) < 1e-12);
 * ```
 */
export function mcnemarExact(b: number, c: number): number {
  for (const [name, v] of [["b", b], ["c", c]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`mcnemarExact: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  const lf = logFactorial(n);
  let tail = 0;
  let logI = 0; // log(i!) accumulated
  for (let i = 0; i <= k; i++) {
    if (i > 0) logI += Math.log(i);
    tail += Math.exp(lf - logI - logFactorial(n - i) - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/** A paired comparison: counts and p-value. */
export interface PairedTest extends PairedCounts {
  /** McNemar's exact two-sided p-value. */
  readonly p: number;
}

/**
 * Pools paired counts over seeds (the discordant counts add up) and tests the pool.
 *
 * @param parts Per-seed counts.
 * @returns The pooled counts and p-value.
 * @example
 * ```ts
 * import { poolPaired } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const p = poolPaired([{ n: 10, aOnly: 0, bOnly: 3 }, { n: 10, aOnly: 0, bOnly: 3 }]);
 * assert.deepEqual([p.n, p.aOnly, p.bOnly], [20, 0, 6]);
 * assert.ok(Math.abs(p.p - 0.03125) < 1e-12);
 * ```
 */
export function poolPaired(parts: readonly PairedCounts[]): PairedTest {
  const n = parts.reduce((s, x) => s + x.n, 0);
  const aOnly = parts.reduce((s, x) => s + x.aOnly, 0);
  const bOnly = parts.reduce((s, x) => s + x.bOnly, 0);
  return { n, aOnly, bOnly, p: mcnemarExact(aOnly, bOnly) };
}
