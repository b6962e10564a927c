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

Deno.test("aggregateReports: stage-fit ablation rows over seeds, and their errors", () => {
  const row = (objective: string, fit: number | null, meta: number | null, mfi: number | null) => ({
    variant: "main",
    objective,
    fitRelative: [fit, 0.4, 0.5, 0.6],
    metaTop1: meta,
    mfiTop1: mfi,
    mfiDeltaPoints: mfi === null ? null : 100 * (mfi - 0.8),
    wallSeconds: 1,
    report: null,
  });
  const withAblation = (seed: number, rows: unknown[]) => ({
    ...run(seed, 0.8, 0.8),
    ablation: rows,
  });
  const s = aggregateReports([
    withAblation(0, [row("MeanFlow loss alone", 0.8, 0.1, 0.46), row("both", 0.3, 0.25, 0.48)]),
    withAblation(1, [row("MeanFlow loss alone", 1.0, 0.2, 0.44), row("both", null, 0.23, 0.5)]),
  ] as unknown as RunReport[]);
  assert.deepEqual(s.ablation.map((a) => a.objective), ["MeanFlow loss alone", "both"]);
  assert.ok(Math.abs(s.ablation[0].fitRelative[0]! - 0.9) < 1e-12);
  assert.equal(s.ablation[1].fitRelative[0], null, "a missing fit in one seed gives no mean");
  assert.ok(Math.abs(s.ablation[0].mfiTop1.mean - 0.45) < 1e-12);
  assert.ok(Math.abs(s.ablation[1].metaTop1.std - Math.sqrt(2e-4)) < 1e-12);
  const md = aggregateMarkdown(s);
  assert.match(md, /## Stage-fit ablation/);
  assert.match(
    md,
    /\| MeanFlow loss alone \| 0\.900 \/ 0\.400 \/ 0\.500 \/ 0\.600 \| 15\.00 ± 7\.07 \| 45\.00 ± 1\.41 \| 46\.00, 44\.00 \| -35\.00 ± 1\.41 \|/,
  );
  assert.doesNotMatch(aggregateMarkdown(aggregateReports([run(0, 0.8, 0.8)])), /ablation/);
  assert.throws(
    () =>
      aggregateReports([
        withAblation(0, [row("both", 0.3, 0.2, 0.5)]),
        withAblation(1, [row("other", 0.3, 0.2, 0.5)]),
      ] as unknown as RunReport[]),
    /seed 1 has no "both" ablation row/,
  );
  assert.throws(
    () =>
      aggregateReports([withAblation(0, [row("both", 0.3, 0.2, null)])] as unknown as RunReport[]),
    /"both" ablation of seed 0 is not finished/,
  );
});
