/**
 * Two pieces of work timed alternately inside one process, round by round, so that a host whose
 * speed drifts from one second to the next (a shared machine) slows both alike and their ratio
 * per round stays meaningful where rates measured seconds apart do not. `deno task bench` uses it
 * for the 1x1 against 3x3 convolutions (the aim: a 1x1 no slower per flop).
 *
 * @module
 */

/** Options of {@linkcode alternate}. */
export interface AlternateOptions {
  /** Rounds (a whole number from 1 to 1000). */
  readonly rounds: number;
  /** Calls of `a` timed per round (a whole number from 1 to 1e6). */
  readonly callsA: number;
  /** Calls of `b` timed per round (a whole number from 1 to 1e6). */
  readonly callsB: number;
  /** The clock in milliseconds (default `performance.now`; tests pass their own). */
  readonly now?: () => number;
}

/** What {@linkcode alternate} measured: milliseconds per call, per round, in round order. */
export interface Alternated {
  readonly aMs: readonly number[];
  readonly bMs: readonly number[];
}

function count(name: string, v: number, hi: number): number {
  if (!Number.isInteger(v) || v < 1 || v > hi) {
    throw new RangeError(`alternate: ${name} must be a whole number from 1 to ${hi}, got ${v}`);
  }
  return v;
}

/**
 * Times `a` and `b` alternately: each round `callsA` calls of `a` and `callsB` calls of `b`, one
 * after the other, `a` first in even rounds and `b` first in odd ones (so that neither always
 * runs right after the other's caches). Warm-up calls, if any, are the caller's.
 *
 * @param a The first piece of work (awaited when it returns a promise).
 * @param b The second.
 * @param options Rounds, calls per round, and the clock.
 * @returns Milliseconds per call of each, per round.
 * @throws {RangeError} If a count is not a whole number in range.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { alternate } from "./_bench_alternate.ts";
 * let t = 0; // a clock that only the work moves: a takes 2 ms a call, b 1 ms
 * const order: string[] = [];
 * const r = await alternate(() => void (t += 2, order.push("a")), () => void (t += 1, order.push("b")), {
 *   rounds: 2,
 *   callsA: 1,
 *   callsB: 3,
 *   now: () => t,
 * });
 * assert.deepEqual(r, { aMs: [2, 2], bMs: [1, 1] });
 * assert.deepEqual(order, ["a", "b", "b", "b", "b", "b", "b", "a"]);
 * ```
 */
export async function alternate(
  a: () => void | Promise<void>,
  b: () => void | Promise<void>,
  options: AlternateOptions,
): Promise<Alternated> {
  const rounds = count("rounds", options.rounds, 1000);
  const callsA = count("callsA", options.callsA, 1e6);
  const callsB = count("callsB", options.callsB, 1e6);
  const now = options.now ?? (() => performance.now());
  const time = async (fn: () => void | Promise<void>, calls: number): Promise<number> => {
    const t0 = now();
    for (let i = 0; i < calls; i++) await fn();
    return (now() - t0) / calls;
  };
  const aMs: number[] = [];
  const bMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      aMs.push(await time(a, callsA));
      bMs.push(await time(b, callsB));
    } else {
      bMs.push(await time(b, callsB));
      aMs.push(await time(a, callsA));
    }
  }
  return { aMs, bMs };
}
