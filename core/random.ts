/**
 * Seeded, serialisable pseudo-random numbers. Library code never calls `Math.random()`: every
 * random draw takes an {@linkcode Rng} derived from one base seed with {@linkcode deriveSeed}.
 *
 * @module
 */

/** The complete state of an {@linkcode Rng}: four unsigned 32-bit words (sfc32). */
export type RngState = readonly [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Derives an independent 32-bit seed for one purpose from a base seed and labels, like JAX's
 * `fold_in`: `deriveSeed(seed, "init")`, `deriveSeed(seed, "shuffle", epoch)`.
 *
 * @param seed The base seed (any integer; taken modulo 2^32).
 * @param labels Purpose labels: strings or integers.
 * @returns A seed in [0, 2^32).
 * @example
 * ```ts
 * import { deriveSeed } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.deepEqual(deriveSeed(1, "init"), deriveSeed(1, "init"));
 * assert.ok(deriveSeed(1, "init") !== deriveSeed(1, "shuffle"));
 * ```
 */
export function deriveSeed(seed: number, ...labels: ReadonlyArray<string | number>): number {
  if (!Number.isFinite(seed)) {
    throw new RangeError(`Cannot derive a seed: seed must be finite, got ${seed}`);
  }
  let h = (Math.trunc(seed) >>> 0) ^ 0x811c9dc5;
  for (const label of labels) {
    const text = typeof label === "number" ? `#${label}` : label;
    for (let i = 0; i < text.length; i++) {
      h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    }
    h = splitmix32(h ^ 0x5bd1e995)();
  }
  return h >>> 0;
}

/**
 * A small fast seeded generator (sfc32) whose state can be saved in a checkpoint and restored.
 *
 * @example
 * ```ts
 * import { Rng } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const a = new Rng(42);
 * a.next();
 * const b = Rng.fromState(a.state());
 * assert.deepEqual(a.next(), b.next());
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  /**
   * Seeds a generator.
   *
   * @param seed Any integer; the same seed always gives the same sequence.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Cannot seed Rng: seed must be finite, got ${seed}`);
    }
    const sm = splitmix32(Math.trunc(seed) >>> 0);
    this.#a = sm();
    this.#b = sm();
    this.#c = sm();
    this.#d = sm();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /**
   * Restores a generator saved with {@linkcode Rng.state}.
   *
   * @param state Four unsigned 32-bit words.
   * @returns A generator that continues the saved sequence.
   * @throws {TypeError} If the state is not four integers in [0, 2^32).
   */
  static fromState(state: RngState): Rng {
    if (
      !Array.isArray(state) || state.length !== 4 ||
      !state.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)
    ) {
      throw new TypeError(
        `Cannot restore Rng: state must be four integers in [0, 2^32), got ${
          JSON.stringify(state)
        }`,
      );
    }
    const rng = new Rng(0);
    [rng.#a, rng.#b, rng.#c, rng.#d] = state;
    rng.#spare = undefined;
    return rng;
  }

  /**
   * The generator's state.
   *
   * @returns The state, to save and later pass to {@linkcode Rng.fromState}.
   */
  state(): RngState {
    return [this.#a, this.#b, this.#c, this.#d];
  }

  /**
   * Draws 32 random bits.
   *
   * @returns The next unsigned 32-bit integer.
   */
  nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = (this.#b ^ (this.#b >>> 9)) >>> 0;
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /**
   * Draws a uniform float.
   *
   * @returns A uniform float in [0, 1).
   */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * Draws a uniform integer.
   *
   * @param n Exclusive upper bound, a positive integer.
   * @returns A uniform integer in [0, n).
   * @throws {RangeError} If `n` is not a positive integer.
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /**
   * Draws a standard normal value.
   *
   * @returns A standard normal draw (Box-Muller).
   */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * Fills a new array with normal draws.
   *
   * @param n Number of values.
   * @param std Standard deviation (default 1).
   * @param mean Mean (default 0).
   * @returns The values.
   */
  normalArray(n: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /**
   * Fills a new array with uniform draws in [low, high).
   *
   * @param n Number of values.
   * @param low Lower bound.
   * @param high Upper bound.
   * @returns The values.
   */
  uniformArray(n: number, low: number, high: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = low + (high - low) * this.next();
    return out;
  }

  /**
   * Shuffles an array in place (Fisher-Yates) and returns it.
   *
   * @param array The array to shuffle.
   * @returns The same array.
   */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }
}
