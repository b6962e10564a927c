import assert from "node:assert/strict";
import { deriveSeed, Rng } from "./random.ts";

Deno.test("Rng is deterministic per seed and differs across seeds", () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const xa = Array.from({ length: 5 }, () => a.next());
  const xb = Array.from({ length: 5 }, () => b.next());
  const xc = Array.from({ length: 5 }, () => c.next());
  assert.deepEqual(xa, xb);
  assert.ok(JSON.stringify(xa) !== JSON.stringify(xc));
  for (const x of xa) assert.ok(x >= 0 && x < 1);
});

Deno.test("Rng state round-trips mid-sequence", () => {
  const a = new Rng(3);
  for (let i = 0; i < 10; i++) a.next();
  const b = Rng.fromState(a.state());
  assert.deepEqual(
    Array.from({ length: 4 }, () => a.nextUint32()),
    Array.from({ length: 4 }, () => b.nextUint32()),
  );
});

Deno.test("Rng normals have the right moments", () => {
  const x = new Rng(1).normalArray(200_000, 2, 1);
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
  assert.ok(Math.abs(mean - 1) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(variance - 4) < 0.05, `variance ${variance}`);
});

Deno.test("Rng shuffle is a permutation", () => {
  const x = new Rng(5).shuffle(Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual([...x].sort((p, q) => p - q), Array.from({ length: 100 }, (_, i) => i));
  assert.ok(x.some((v, i) => v !== i));
});

Deno.test("bad seeds, states and bounds are rejected", () => {
  assert.throws(() => new Rng(NaN), RangeError);
  assert.throws(
    () => Rng.fromState([1, 2, 3] as unknown as [number, number, number, number]),
    TypeError,
  );
  assert.throws(() => new Rng(1).int(0), RangeError);
  assert.throws(() => deriveSeed(Infinity, "x"), RangeError);
});

Deno.test("deriveSeed separates purposes and indices", () => {
  const seeds = new Set([
    deriveSeed(0, "a"),
    deriveSeed(0, "b"),
    deriveSeed(0, "a", 1),
    deriveSeed(0, "a", 2),
    deriveSeed(1, "a"),
  ]);
  assert.deepEqual(seeds.size, 5);
});
