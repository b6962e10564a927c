/**
 * The stage-fit ablation end to end on the `smoke` preset (embedded sample, wasm, one thread):
 * sub-runs start from the run's own baseline, differ only in the stage-fit objective, resume like
 * any run, land in the run's report, and are reloaded when the run's baseline changes.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  ablationRow,
  buildReport,
  pipelineSpecs,
  planPhases,
  reportMarkdown,
  runAblation,
  runPipeline,
} from "@mfi/incubation";
import { rewritePhaseOutput, smokeRun } from "./_smoke_run.ts";

Deno.test("smoke preset with --ablation: sub-runs from the run's baseline, in its report", async () => {
  const { config, data } = await smokeRun({ ablation: ["meanflow-only", "endpoint-only"] });
  const runDir = await Deno.makeTempDir({ prefix: "mfi-ablation-" });
  const quiet = { progress: false as const, log: () => {} };
  const describe = { data: "sample", sample: true, backend: "wasm" };
  const ids = planPhases(config).map((p) => p.id);
  try {
    await assert.rejects(
      runAblation(config, { runDir, data, describe, ...quiet }),
      /needs the run's own baseline, which is not complete/,
    );
    const main = await runPipeline(config, { runDir, data, only: ["baseline"], ...quiet });
    const baseTop1 = main.results.baseline.testAccuracy!;

    // A killed ablation: only part of one sub-run ran (selection as with --phase).
    const before = tf.memory().numTensors;
    const partial = await runAblation(config, {
      runDir,
      data,
      only: ["endpoint-only/compress:1"],
      describe,
      ...quiet,
    });
    assert.deepEqual(partial.runs.map((r) => r.outcome.ran), [[], ["baseline", "compress:1"]]);
    const done = await runAblation(config, { runDir, data, describe, ...quiet });
    assert.equal(tf.memory().numTensors, before, "sub-runs free their models");
    const [mf, ep] = done.runs;
    assert.deepEqual(mf.outcome.ran, ids);
    assert.deepEqual(ep.outcome.skipped, ["baseline", "compress:1"]);
    assert.deepEqual(ep.outcome.ran, ids.slice(2));
    for (const { outcome } of done.runs) {
      // The baseline is the run's: loaded, not trained, same accuracy.
      assert.equal(outcome.results.baseline.imagesProcessed, 0);
      assert.equal(outcome.results.baseline.testAccuracy, baseTop1);
    }
    // Only the objective differs, and it changes the fits.
    assert.equal(mf.run.config.meanflow.lambda, 0);
    assert.equal(ep.run.config.meanflow.meanflow, false);
    const fit = (r: typeof mf, l: number) => r.outcome.results[`compress:${l}`].fitRelative!;
    assert.notEqual(fit(mf, 1), fit(ep, 1));
    for (const r of done.runs) {
      const md = await Deno.readTextFile(`${r.run.runDir}/report/results.md`);
      assert.match(
        md,
        new RegExp(
          `MeanFlow objective: ${
            r.run.config.meanflow.meanflow ? "MeanFlow loss" : "no MeanFlow loss"
          }`,
        ),
      );
    }

    // The run itself, then its report with the ablation table.
    const full = await runPipeline(config, { runDir, data, ...quiet });
    const report = buildReport({
      config,
      specs: pipelineSpecs(config),
      phases: full.phases,
      results: full.results,
      ...describe,
      ablation: done.runs.map((r) => ablationRow(r.report, r.run.variant, baseTop1)),
    });
    assert.deepEqual(report.ablation.map((a) => a.objective), [
      "MeanFlow loss alone",
      "endpoint regression alone",
      "MeanFlow loss + 1 x endpoint regression",
    ]);
    assert.equal(report.ablation[1].mfiTop1, ep.outcome.results.finetune.testAccuracy);
    assert.equal(report.ablation[2].mfiTop1, full.results.finetune.testAccuracy);
    assert.equal(report.ablation[0].fitRelative[3], fit(mf, 4));
    assert.match(
      reportMarkdown(report),
      /\| endpoint regression alone \| [\d.]+ \/ [\d.]+ \/ [\d.]+ \/ [\d.]+ \|/,
    );

    // The run's baseline redone with other weights: sub-runs reload it; what was made from the
    // old one is discarded (here without running anything: an empty selection only collects).
    await rewritePhaseOutput(`${runDir}/phases/baseline/output`, (_, v) => v.map((x) => x * 0.5));
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const kept = await runAblation(config, {
      runDir,
      data,
      only: [],
      describe,
      progress: false,
      log,
    });
    assert.ok(
      lines.some((l) => /\[stale\] endpoint-only: its baseline copy .* not selected, kept/.test(l)),
      lines.join("\n"),
    );
    for (const r of kept.runs) assert.deepEqual(Object.keys(r.outcome.results), []);
    await Deno.stat(`${ep.run.runDir}/phases/compress-1/output/output.json`); // still there
    // Selected (here: only its baseline copy): reloaded, and what was made from the old one is
    // discarded.
    lines.length = 0;
    const after = await runAblation(config, {
      runDir,
      data,
      only: ["endpoint-only/baseline"],
      describe,
      progress: false,
      log,
    });
    assert.ok(
      lines.some((l) =>
        /\[stale\] endpoint-only\/baseline: its copy is not of the run's current/.test(l)
      ),
      lines.join("\n"),
    );
    assert.deepEqual(after.runs[1].outcome.ran, ["baseline"]);
    assert.deepEqual(Object.keys(after.runs[1].outcome.results), ["baseline"]);
    assert.ok(
      lines.some((l) =>
        /\[stale\] compress:1: made from an earlier baseline; not selected/.test(l)
      ),
    );
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
