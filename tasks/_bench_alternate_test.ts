import assert from "node:assert/strict";
import { alternate } from "./_bench_alternate.ts";

Deno.test("alternate: per-call times of each side per round, the order swapped every round", async () => {
  // A clock that only the work moves. a's calls get slower round by round (a host's drift: the
  // k-th call takes 2 + floor(k / 2) ms, two calls a round), b's take 1 ms and are asynchronous.
  let t = 0;
  let aCalls = 0;
  const log: string[] = [];
  const a = () => {
    t += 2 + Math.floor(aCalls++ / 2);
    log.push("a");
  };
  const b = async () => {
    await Promise.resolve();
    t += 1;
    log.push("b");
  };
  const r = await alternate(a, b, { rounds: 3, callsA: 2, callsB: 1, now: () => t });
  assert.deepEqual(r.aMs, [2, 3, 4]);
  assert.deepEqual(r.bMs, [1, 1, 1]);
  assert.deepEqual(log.join(""), "aab" + "baa" + "aab");
});

Deno.test("alternate: counts out of range are errors that name them", async () => {
  const noop = () => {};
  for (
    const [options, name] of [
      [{ rounds: 0, callsA: 1, callsB: 1 }, "rounds"],
      [{ rounds: 1.5, callsA: 1, callsB: 1 }, "rounds"],
      [{ rounds: 1, callsA: 0, callsB: 1 }, "callsA"],
      [{ rounds: 1, callsA: 1, callsB: Number.NaN }, "callsB"],
    ] as const
  ) {
    await assert.rejects(
      () => alternate(noop, noop, options),
      (e: Error) => e instanceof RangeError && e.message.includes(`${name} must be a whole number`),
    );
  }
});
