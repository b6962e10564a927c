import assert from "node:assert/strict";
import { aggregateMarkdown, aggregateReports, summaryJson } from "./aggregate.ts";
import type { RunReport } from "./report.ts";
import { poolPaired } from "./statistics.ts";

function run(
  seed: number,
  base: number,
  matched: number,
  mfi: number | null,
  extra: Record<string, unknown> = {},
) {
  const pair = (aOnly: number, bOnly: number) => poolPaired([{ n: 1000, aOnly, bOnly }]);
  return {
    format: "mfi-results/2",
    config: { seed, name: "quick", ...extra },
    scale: "reduced",
    sample: false,
    testImages: 1000,
    models: [
      { model: "baseline", parameters: 100, changePercent: 0, top1: base },
      { model: "matched", parameters: 100, changePercent: 0, top1: matched },
      { model: "meta", parameters: 40, changePercent: -60, top1: 0.3 },
      { model: "mfi-resnet", parameters: 54, changePercent: -46, top1: mfi },
    ],
    paired: { mfiVsBaseline: pair(10, 30), mfiVsMatched: pair(5, 45) },
    stageFits: [
      {
        variant: "main",
        objective: "both",
        fitRelative: [0.3, 0.4, 0.5, 0.6],
        inSitu: [0.5, 0.4, 0.3, 0.2 + seed / 100],
      },
      {
        variant: "legacy",
        objective: "old",
        fitRelative: [0.3, 0.4, 0.5, 0.6],
        inSitu: [0.25, 0.25, 0.25, null],
      },
    ],
  } as unknown as RunReport;
}

Deno.test("aggregateReports: mean, sample std, both comparisons, pooled McNemar, verdict", () => {
  const s = aggregateReports([
    run(0, 0.8, 0.82, 0.78),
    run(1, 0.82, 0.84, 0.8),
    run(2, 0.81, 0.83, 0.76),
  ]);
  assert.deepEqual(s.seeds, [0, 1, 2]);
  assert.ok(Math.abs(s.models[0].top1.mean - 0.81) < 1e-12);
  assert.ok(Math.abs(s.models[0].top1.std - 0.01) < 1e-12);
  const [vsBase, vsMatched] = s.comparisons;
  assert.deepEqual([vsBase.against, vsMatched.against], ["baseline", "matched"]);
  assert.ok(Math.abs(vsBase.deltaPoints.mean - -3) < 1e-9); // -2, -2, -5
  assert.ok(Math.abs(vsMatched.deltaPoints.mean - -5) < 1e-9);
  assert.deepEqual([vsMatched.pooled.aOnly, vsMatched.pooled.bOnly, vsMatched.pooled.n], [
    15,
    135,
    3000,
  ]);
  assert.ok(vsMatched.pooled.p < 1e-20);
  assert.equal(s.decisive, "matched");
  assert.equal(s.claimHolds, false);
  assert.ok(Math.abs(s.stageFits[0].inSitu[3]! - 0.21) < 1e-12);
  assert.equal(s.stageFits[1].inSitu[3], null);
  const md = aggregateMarkdown(s);
  assert.match(md, /\| baseline \| 100 \| 0\.00 % \| 81\.00 ± 1\.00 \| 80\.00, 82\.00, 81\.00 \|/);
  assert.match(
    md,
    /\| compute-matched baseline \| -5\.00 ± 1\.73 \| -4\.00, -4\.00, -7\.00 \| .* \| 15 \/ 135 \|/,
  );
  assert.match(
    md,
    /Claim \(MFI-ResNet >= the compute-matched baseline within the seed spread\): \*\*does not hold\*\*/,
  );
  // deno-lint-ignore no-explicit-any
  const j = summaryJson(s) as Record<string, any>;
  assert.deepEqual(
    Object.keys(j).filter((k) =>
      ![
        "scale",
        "unit",
        "meta",
        "claimHolds",
        "decisiveComparison",
        "objectives",
        "inSituSeeds",
        "notes",
      ].includes(k)
    ),
    [
      "preset",
      "seeds",
      "testImages",
      "baseline",
      "baselineMatched",
      "mfi",
      "mcnemarPooled",
      "inSitu",
    ],
  );
  assert.equal(j.preset, "quick");
  assert.ok(Math.abs(j.baselineMatched.mean - 83) < 1e-9);
  assert.ok(Math.abs(j.mfi.std - 100 * s.models[3].top1.std) < 1e-9);
  assert.equal(j.mcnemarPooled.mfiVsMatched, vsMatched.pooled.p);
  assert.deepEqual(j.inSitu.legacy, [25, 25, 25, null]);
  assert.match(aggregateMarkdown(aggregateReports([run(0, 0.8, 0.8, 0.8)])), /one seed: no spread/);
});

Deno.test("aggregateReports rejects mixed configs, repeated seeds, other test sets and unfinished runs", () => {
  assert.throws(() => aggregateReports([]), /no reports/);
  assert.throws(
    () => aggregateReports([run(0, 0.8, 0.8, 0.8), run(0, 0.8, 0.8, 0.8)]),
    /seeds repeat/,
  );
  assert.throws(
    () => aggregateReports([run(0, 0.8, 0.8, 0.8), run(1, 0.8, 0.8, 0.8, { name: "other" })]),
    /another config than seed 0/,
  );
  assert.throws(
    () => aggregateReports([run(0, 0.8, 0.8, null)]),
    /no top-1 for mfi-resnet; finish it/,
  );
  const old = { ...run(0, 0.8, 0.8, 0.8), format: "mfi-results/1" } as unknown as RunReport;
  assert.throws(() => aggregateReports([old]), /regenerate the report/);
  const fewer = { ...run(1, 0.8, 0.8, 0.8), testImages: 500 } as unknown as RunReport;
  assert.throws(() => aggregateReports([run(0, 0.8, 0.8, 0.8), fewer]), /different test sets/);
});

Deno.test("aggregateReports: ablation variants averaged over the runs that have them; free keys", () => {
  const withAblation = run(0, 0.8, 0.8, 0.78, {
    ablation: ["legacy"],
    baseline: { checkpoint: "runs/base/phases/baseline/output/output.json" },
  });
  const plain = run(1, 0.8, 0.8, 0.78, { ablation: [], baseline: { checkpoint: null } });
  const onlyMain = { ...plain, stageFits: plain.stageFits.filter((f) => f.variant === "main") };
  const s = aggregateReports([withAblation, onlyMain as RunReport]);
  assert.deepEqual(s.stageFits.map((f) => [f.variant, f.seeds]), [["main", [0, 1]], [
    "legacy",
    [0],
  ]]);
  assert.equal(s.stageFits[0].inSitu[3], (0.2 + 0.21) / 2);
  assert.equal(s.stageFits[1].inSitu[0], 0.25);
  assert.equal(s.notes.length, 1);
  assert.match(s.notes[0], /seed 0: the baseline was trained in its own run/);
  const md = aggregateMarkdown(s);
  assert.match(md, /legacy: old \(seed 0 only\)/);
  assert.match(md, /Notes:/);
  const j = summaryJson(s) as { inSituSeeds: Record<string, number[]>; notes: string[] };
  assert.deepEqual(j.inSituSeeds, { main: [0, 1], legacy: [0] });
  // Any other key still has to agree, and the error names it.
  assert.throws(
    () => aggregateReports([run(0, 0.8, 0.8, 0.8, { lr: 1 }), run(1, 0.8, 0.8, 0.8, { lr: 2 })]),
    /another config than seed 0 \(beyond the seed\) at lr;/,
  );
});
