import assert from "node:assert/strict";
import {
  ablationRow,
  ablationRunDir,
  objectiveName,
  parsePhaseId,
  planAblation,
  selectedPhases,
} from "./ablation.ts";
import { ABLATION_VARIANTS, DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import type { PhaseResult } from "./phase_runner.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { planPhases } from "./plan.ts";
import { buildReport } from "./report.ts";

const config = mergeConfig(DEFAULT_CONFIG, {
  model: { width: 0.125 },
  data: { trainPerClass: 10 },
  ablation: [...ABLATION_VARIANTS],
});

Deno.test("planAblation: one sub-run per variant, differing only in objective and baseline source", () => {
  const runs = planAblation(config, "runs/q");
  assert.deepEqual(runs.map((r) => r.variant), ["meanflow-only", "endpoint-only"]);
  assert.deepEqual(runs.map((r) => r.runDir), [
    "runs/q/ablation/meanflow-only",
    "runs/q/ablation/endpoint-only",
  ]);
  assert.deepEqual(runs.map((r) => r.objective), [
    "MeanFlow loss alone",
    "endpoint regression alone",
  ]);
  for (const r of runs) {
    assert.ok(Object.isFrozen(r.config.meanflow));
    assert.equal(r.config.baseline.checkpoint, "runs/q/phases/baseline/output/output.safetensors");
    assert.deepEqual(r.config.ablation, [], "a sub-run has no ablation of its own");
    const strip = (c: typeof config) => ({
      ...c,
      ablation: null,
      baseline: { ...c.baseline, checkpoint: null },
      meanflow: { ...c.meanflow, lambda: null, meanflow: null },
    });
    assert.deepEqual(strip(r.config), strip(config), "everything else is the run's");
  }
  assert.deepEqual(runs[0].config.meanflow.lambda, 0);
  assert.equal(runs[0].config.meanflow.meanflow, true);
  assert.equal(runs[1].config.meanflow.lambda, 1);
  assert.equal(runs[1].config.meanflow.meanflow, false);
  assert.equal(ablationRunDir("runs/q", "meanflow-only"), runs[0].runDir);
  assert.deepEqual(planAblation(mergeConfig(config, { ablation: [] }), "runs/q"), []);
});

Deno.test("planAblation leaves out the variant that is the run's own objective", () => {
  const mfOnly = mergeConfig(config, { meanflow: { lambda: 0 } });
  assert.deepEqual(planAblation(mfOnly, "r").map((r) => r.variant), ["endpoint-only"]);
  const endpoint = planAblation(mfOnly, "r")[0].config.meanflow;
  assert.equal(endpoint.lambda, 1, "lambda 0 would leave no loss: 1 instead");
  const noMf = mergeConfig(config, { meanflow: { meanflow: false, lambda: 2 } });
  const [only] = planAblation(noMf, "r");
  assert.equal(only.variant, "meanflow-only");
  assert.equal(only.config.meanflow.meanflow, true);
  const weighted = mergeConfig(config, { meanflow: { lambda: 2 } });
  assert.equal(planAblation(weighted, "r")[1].config.meanflow.lambda, 2, "the run's weight kept");
  assert.equal(objectiveName(weighted.meanflow), "MeanFlow loss + 2 x endpoint regression");
});

Deno.test("selectedPhases routes --phase ids to the main run and to sub-runs", () => {
  assert.equal(selectedPhases(undefined, "endpoint-only"), undefined);
  assert.deepEqual(selectedPhases(["endpoint-only/meta"], null), []);
  assert.deepEqual(selectedPhases(["baseline"], "endpoint-only"), []);
  assert.deepEqual(selectedPhases(["endpoint-only/meta", "meanflow-only/meta"], "endpoint-only"), [
    "baseline",
    "meta",
  ]);
  assert.deepEqual(selectedPhases(["endpoint-only/baseline"], "endpoint-only"), ["baseline"]);
  assert.equal(selectedPhases(["endpoint-only"], "endpoint-only"), undefined);
  // An unknown prefix belongs to no run here (reproduce rejects it before running anything).
  assert.deepEqual(selectedPhases(["both/meta"], null), []);
  assert.deepEqual(parsePhaseId("both/meta"), { variant: "both", phase: "meta" });
});

Deno.test("ablationRow: fits per stage, meta and MFI top-1, delta vs the shared baseline", () => {
  const specs = pipelineSpecs(config);
  const phases = planPhases(config);
  const r = (phase: string, top1: number | null, fit: number | null = null) =>
    ({
      phase,
      testAccuracy: top1,
      initialTestAccuracy: null,
      fitRelative: fit,
      trainableParameters: 1,
      imagesProcessed: 10,
      wallSeconds: 60,
      history: [],
    }) as unknown as PhaseResult;
  const report = buildReport({
    config,
    specs,
    phases,
    results: {
      baseline: r("baseline", 0.5),
      "compress:1": r("compress:1", null, 0.36),
      "compress:3": r("compress:3", null, 0.59),
      meta: r("meta", 0.25),
      finetune: r("finetune", 0.47),
    },
    data: "d",
    sample: false,
    backend: "cpu",
  });
  const row = ablationRow(report, "endpoint-only", 0.493);
  assert.deepEqual(row.fitRelative, [0.36, null, 0.59, null]);
  assert.equal(row.metaTop1, 0.25);
  assert.equal(row.mfiTop1, 0.47);
  assert.ok(Math.abs(row.mfiDeltaPoints! - -2.3) < 1e-9);
  assert.equal(row.wallSeconds, 4 * 60, "the baseline's time is not the variant's");
  assert.equal(row.report, "ablation/endpoint-only/report/results.md");
  assert.equal(row.objective, "MeanFlow loss + 1 x endpoint regression");
  assert.equal(ablationRow(report, "main", null).mfiDeltaPoints, null);
});
