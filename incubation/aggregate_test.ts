import assert from "node:assert/strict";
import { aggregateMarkdown, aggregateReports } from "./aggregate.ts";
import type { RunReport } from "./report.ts";

function run(seed: number, base: number, mfi: number | null, extra: Record<string, unknown> = {}) {
  return {
    config: { seed, name: "quick", ...extra },
    scale: "reduced",
    sample: false,
    models: [
      { model: "baseline", parameters: 100, changePercent: 0, top1: base },
      { model: "meta", parameters: 40, changePercent: -60, top1: 0.3 },
      { model: "mfi-resnet", parameters: 54, changePercent: -46, top1: mfi },
    ],
  } as unknown as RunReport;
}

Deno.test("aggregateReports: mean, sample std, delta and verdict", () => {
  const s = aggregateReports([run(0, 0.8, 0.78), run(1, 0.82, 0.8), run(2, 0.81, 0.76)]);
  assert.deepEqual(s.seeds, [0, 1, 2]);
  assert.ok(Math.abs(s.models[0].top1.mean - 0.81) < 1e-12);
  assert.ok(Math.abs(s.models[0].top1.std - 0.01) < 1e-12);
  assert.ok(Math.abs(s.deltaPoints.mean - -3) < 1e-9); // -2, -2, -5
  assert.ok(Math.abs(s.deltaPoints.std - Math.sqrt(3)) < 1e-9);
  assert.equal(s.claimHolds, false);
  const md = aggregateMarkdown(s);
  assert.match(md, /\| baseline \| 100 \| 0\.00 % \| 81\.00 ± 1\.00 \| 80\.00, 82\.00, 81\.00 \|/);
  assert.match(md, /does not hold/);
  assert.match(aggregateMarkdown(aggregateReports([run(0, 0.8, 0.8)])), /one seed: no spread/);
});

Deno.test("aggregateReports rejects mixed configs, repeated seeds and unfinished runs", () => {
  assert.throws(() => aggregateReports([]), /no reports/);
  assert.throws(() => aggregateReports([run(0, 0.8, 0.8), run(0, 0.8, 0.8)]), /seeds repeat/);
  assert.throws(
    () => aggregateReports([run(0, 0.8, 0.8), run(1, 0.8, 0.8, { name: "other" })]),
    /another config than seed 0/,
  );
  assert.throws(() => aggregateReports([run(0, 0.8, null)]), /no top-1 for mfi-resnet; finish it/);
});
