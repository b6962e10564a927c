import assert from "node:assert/strict";
import { Rng } from "@mfi/core";
import { sampleTimes } from "./time_sampler.ts";

Deno.test("sampleTimes: r <= t, exact distinct fraction, logit-normal moments, seeded", () => {
  const n = 20000;
  const { r, t } = sampleTimes(n, new Rng(1));
  assert.ok(r.every((ri, i) => ri <= t[i] && ri > 0 && t[i] < 1));
  assert.deepEqual(r.filter((ri, i) => ri !== t[i]).length, 5000);
  // t is the max of two logit-normal(-0.4, 1) draws: its logit has mean -0.4 + 1/sqrt(pi).
  const logit = (x: number) => Math.log(x / (1 - x));
  const distinct = [...t].filter((_, i) => r[i] !== t[i]);
  const meanLogitT = distinct.reduce((s, x) => s + logit(x), 0) / distinct.length;
  assert.ok(Math.abs(meanLogitT - (-0.4 + 1 / Math.sqrt(Math.PI))) < 0.05, `${meanLogitT}`);
  const again = sampleTimes(n, new Rng(1));
  assert.deepEqual(again.t, t);
  assert.deepEqual(again.r, r);
  assert.notDeepEqual(sampleTimes(n, new Rng(2)).t, t);
});

Deno.test("sampleTimes: fraction 0 is flow matching, fraction 1 keeps every pair; intervals", () => {
  const fm = sampleTimes(100, new Rng(0), { distinctFraction: 0 });
  assert.ok(fm.r.every((ri, i) => ri === fm.t[i]));
  const all = sampleTimes(100, new Rng(0), { distinctFraction: 1 });
  assert.ok(all.r.every((ri, i) => ri < all.t[i]));
  const half = sampleTimes(1000, new Rng(0), { interval: [0.5, 1] });
  assert.ok(half.r.every((ri, i) => ri >= 0.5 && half.t[i] <= 1 && ri <= half.t[i]));
  assert.deepEqual(sampleTimes(0, new Rng(0)).t.length, 0);
});

Deno.test("sampleTimes: invalid options name the option", () => {
  const rng = new Rng(0);
  assert.throws(() => sampleTimes(-1, rng), /n must be/);
  assert.throws(() => sampleTimes(2.5, rng), /n must be/);
  assert.throws(() => sampleTimes(4, rng, { distinctFraction: 1.5 }), /distinctFraction/);
  assert.throws(() => sampleTimes(4, rng, { std: -1 }), /std/);
  assert.throws(() => sampleTimes(4, rng, { mean: NaN }), /mean/);
  assert.throws(() => sampleTimes(4, rng, { interval: [0.6, 0.2] }), /interval/);
  assert.throws(() => sampleTimes(4, rng, { ratio: 0.5 } as never), /"ratio"/);
});
