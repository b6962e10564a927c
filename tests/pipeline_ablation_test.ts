/**
 * The stage-fit ablation as phases of the plan: `VARIANT/compress:l` fits from the run's own
 * baseline, with the same initialisation and batches as the run's own fits, each read out as a
 * one-step error and an in-situ accuracy, selectable by variant name, reported per objective.
 */
import assert from "node:assert/strict";
import { readCheckpoint } from "@mfi/core";
import { buildReport, outputPath, planPhases, reportMarkdown, runPipeline } from "@mfi/incubation";
import { smokeRun } from "./_smoke_run.ts";

Deno.test("ablation: variant fits are plan phases from the run's baseline, with in-situ accuracy", async () => {
  const { config, data } = await smokeRun({
    ablation: ["meanflow-prefit", "endpoint-only", "both", "legacy"],
    compress: { stages: [2, 4] },
    matched: { enabled: false },
  });
  const plan = planPhases(config);
  // "both" is the run's own objective (the default), so it is not planned twice.
  assert.deepEqual(plan.filter((p) => p.kind === "compress").map((p) => p.id), [
    "compress:2",
    "compress:4",
    "meanflow-prefit/compress:2",
    "meanflow-prefit/compress:4",
    "endpoint-only/compress:2",
    "endpoint-only/compress:4",
    "legacy/compress:2",
    "legacy/compress:4",
  ]);
  const runDir = await Deno.makeTempDir({ prefix: "mfi-ablation-" });
  const quiet = { progress: false as const, log: () => {} };
  try {
    const out = await runPipeline(config, {
      runDir,
      data,
      only: ["baseline", "compress:2", "endpoint-only", "meanflow-prefit", "legacy"],
      ...quiet,
    });
    assert.deepEqual(out.ran, [
      "baseline",
      "compress:2",
      "meanflow-prefit/compress:2",
      "meanflow-prefit/compress:4",
      "endpoint-only/compress:2",
      "endpoint-only/compress:4",
      "legacy/compress:2",
      "legacy/compress:4",
    ]);
    const r = (id: string) => out.results[id];
    for (const id of ["compress:2", "endpoint-only/compress:2", "meanflow-prefit/compress:2"]) {
      assert.ok(r(id).testAccuracy! >= 0 && r(id).testAccuracy! <= 1, id);
      assert.ok(r(id).fitRelative! > 0, id);
      assert.equal(r(id).testImages, 100);
    }
    // Prefit: the alignment's epoch comes first in the history, then the flow fit's.
    assert.equal(r("meanflow-prefit/compress:2").history.length, 2);
    assert.equal(r("compress:2").history.length, 1);
    // Endpoint alone has no MeanFlow gradient; MeanFlow alone no endpoint gradient.
    assert.equal(r("endpoint-only/compress:2").gradNorms!.end.meanflow, 0);
    assert.equal(r("meanflow-prefit/compress:2").gradNorms!.end.endpoint, 0);
    // Variants are fitted from the same baseline output: every variant fit lists its digest.
    const base = await readCheckpoint(outputPath(runDir, plan[0]));
    for (const p of plan.filter((q) => q.kind === "compress" && out.results[q.id])) {
      assert.equal(out.results[p.id].inputs.baseline, base.sidecar.sha256, p.id);
    }
    // The legacy variant's stage is strided; the run's own is average-pooled.
    const legacy = plan.find((p) => p.id === "legacy/compress:2")!;
    const stage = legacy.spec.stages[1];
    assert.equal(stage.kind === "meanflow" && stage.config.downsample, "stride");

    const report = buildReport({
      config,
      phases: plan,
      results: out.results,
      data: "sample",
      sample: true,
      backend: "wasm",
    });
    assert.deepEqual(report.stageFits.map((f) => f.variant), [
      "main",
      "meanflow-prefit",
      "endpoint-only",
      "legacy",
    ]);
    assert.equal(report.stageFits[0].inSitu[1], r("compress:2").testAccuracy);
    assert.equal(report.stageFits[0].inSitu[3], null, "compress:4 was not selected");
    const md = reportMarkdown(report);
    assert.match(md, /## Stage fits/);
    assert.match(
      md,
      /\| endpoint-only: endpoint \(variance-normalised\) regression alone; avgpool alignment, joint \|/,
    );
    assert.match(
      md,
      /\| legacy: MeanFlow loss \+ 1 x endpoint \(raw\); imagenet sampler, 0 % at the interval, p 1; stride alignment, joint \|/,
    );

    // A rerun selecting one variant skips its complete fits.
    const again = await runPipeline(config, { runDir, data, only: ["legacy"], ...quiet });
    assert.deepEqual(again.ran, []);
    assert.deepEqual(again.skipped, ["legacy/compress:2", "legacy/compress:4"]);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
