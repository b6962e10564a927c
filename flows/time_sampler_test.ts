import assert from "node:assert/strict";
import { Rng } from "@mfi/core";
import { SAMPLER_PRESETS, sampleTimes } from "./time_sampler.ts";

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

Deno.test("sampleTimes: the defaults draw exactly what the original ImageNet-style sampler drew", () => {
  // Reference: the sampler before t and r had their own distributions (sorted draws, then mask).
  const reference = (n: number, rng: Rng) => {
    const s = (x: number) => 1 / (1 + Math.exp(-x));
    const r = new Float32Array(n);
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const a = s(-0.4 + rng.normal());
      const b = s(-0.4 + rng.normal());
      r[i] = Math.min(a, b);
      t[i] = Math.max(a, b);
    }
    const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
    for (const i of order.slice(Math.round(0.25 * n))) r[i] = t[i];
    return { r, t };
  };
  const got = sampleTimes(999, new Rng(7));
  const want = reference(999, new Rng(7));
  assert.deepEqual(got.r, want.r);
  assert.deepEqual(got.t, want.t);
  const preset = sampleTimes(999, new Rng(7), SAMPLER_PRESETS.imagenet);
  assert.deepEqual(preset.r, want.r);
});

Deno.test("sampleTimes: v1 keeps t's own distribution, pushes r towards 0, 75 % distinct", () => {
  const n = 20000;
  const { r, t } = sampleTimes(n, new Rng(3), SAMPLER_PRESETS.v1);
  assert.ok(r.every((ri, i) => ri <= t[i]));
  // 75 % are unmasked; of those, the few with r drawn above t end at r = min(r, t) = t.
  const distinct = r.filter((ri, i) => ri !== t[i]).length;
  assert.ok(distinct <= 15000 && distinct > 0.9 * 15000, `${distinct}`);
  const logit = (x: number) => Math.log(x / (1 - x));
  const meanLogitT = t.reduce((s, x) => s + logit(x), 0) / n;
  assert.ok(Math.abs(meanLogitT - -0.6) < 0.05, `${meanLogitT}`);
  const distinctR = [...r].filter((ri, i) => ri !== t[i]);
  const medianR = distinctR.sort((x, y) => x - y)[distinctR.length >> 1];
  assert.ok(medianR < 0.05, `median r ${medianR}`);
  // v0: sorted draws from LN(-2, 2); t is the larger one, so its logit mean is above -2.
  const v0 = sampleTimes(n, new Rng(3), SAMPLER_PRESETS.v0);
  const meanLogitT0 = v0.t.reduce((s, x) => s + logit(Math.min(Math.max(x, 1e-7), 1 - 1e-7)), 0) /
    n;
  assert.ok(meanLogitT0 > -2 + 0.5, `${meanLogitT0}`);
});

Deno.test("sampleTimes: the exact share sits on the (mapped) inference interval", () => {
  const n = 1000;
  const s = sampleTimes(n, new Rng(0), {
    ...SAMPLER_PRESETS.v1,
    exactShare: 0.25,
    interval: [0.5, 1],
  });
  assert.equal(s.r.filter((ri, i) => ri === 0.5 && s.t[i] === 1).length, 250);
  assert.ok(s.r.every((ri, i) => ri >= 0.5 && ri <= s.t[i] && s.t[i] <= 1));
  // Share 0 draws nothing more from the generator.
  const g1 = new Rng(5);
  const g2 = new Rng(5);
  sampleTimes(10, g1, { exactShare: 0 });
  sampleTimes(10, g2);
  assert.equal(g1.normal(), g2.normal());
  assert.throws(() => sampleTimes(4, new Rng(0), { exactShare: 2 }), /exactShare/);
  assert.throws(
    () => sampleTimes(4, new Rng(0), { order: "min" as never }),
    /order must be "sort-then-mask" or "mask-then-min"/,
  );
  assert.throws(() => sampleTimes(4, new Rng(0), { t: { mean: 0, std: -1 } }), /t\.std/);
});
