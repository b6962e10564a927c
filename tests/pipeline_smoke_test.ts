/**
 * The `smoke` preset end to end on the embedded sample (wasm backend, one thread): every phase,
 * the report, and resuming a run that was killed (simulated by running a phase subset), whose
 * outputs were deleted or corrupted, or whose inputs changed.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { readCheckpoint } from "@mfi/core";
import {
  buildReport,
  bundleFromCheckpoint,
  countSpecParameters,
  loadClassifier,
  mergeConfig,
  pipelineSpecs,
  planPhases,
  runPipeline,
  writeReport,
} from "@mfi/incubation";
import { rewritePhaseOutput, smokeRun } from "./_smoke_run.ts";

Deno.test("smoke preset: whole pipeline, report, resume after killed, deleted and corrupt phases", async () => {
  const { config, data } = await smokeRun();
  assert.equal(data.train.count, 10 * config.data.trainPerClass!);
  const runDir = await Deno.makeTempDir({ prefix: "mfi-smoke-" });
  const quiet = { progress: false as const, log: () => {} };
  const ids = planPhases(config).map((p) => p.id);
  try {
    // A run killed after its first phases.
    const first = await runPipeline(config, {
      runDir,
      data,
      only: ["baseline", "compress:1"],
      ...quiet,
    });
    assert.deepEqual(first.ran, ["baseline", "compress:1"]);
    await assert.rejects(
      runPipeline(config, { runDir, data, only: ["meta"], ...quiet }),
      /Cannot run meta: compress:2, compress:3, compress:4 not complete/,
    );
    // Rerun: complete phases are skipped, the rest run.
    const before = tf.memory().numTensors;
    const second = await runPipeline(config, { runDir, data, ...quiet });
    assert.deepEqual(second.skipped, ["baseline", "compress:1"]);
    assert.deepEqual(second.ran, ids.slice(2));
    assert.equal(tf.memory().numTensors, before, "a run frees its models and optimizers");
    for (const id of ids) {
      const r = second.results[id];
      assert.ok(r.complete && r.wallSeconds > 0 && r.imagesProcessed === 200, id);
      if (r.testAccuracy !== null) assert.ok(r.testAccuracy >= 0 && r.testAccuracy <= 1, id);
    }
    assert.ok(second.results["compress:3"].fitRelative! > 0);

    // The report.
    const specs = pipelineSpecs(config);
    const report = buildReport({
      config,
      specs,
      phases: second.phases,
      results: second.results,
      data: data.source.description,
      sample: false,
      backend: "wasm",
    });
    const written = await writeReport(`${runDir}/report`, report, second.results);
    assert.deepEqual(written.map((w) => w.slice(w.lastIndexOf("/") + 1)), [
      "results.json",
      "results.md",
      "accuracy_vs_parameters.svg",
      "stage_fits.svg",
      "phase_curves.svg",
    ]);
    const json = JSON.parse(await Deno.readTextFile(`${runDir}/report/results.json`));
    assert.deepEqual(json.models.map((m: { model: string }) => m.model), [
      "baseline",
      "meta",
      "mfi-resnet",
    ]);
    assert.equal(json.models[2].parameters, countSpecParameters(specs.mfi).total);
    assert.equal(json.models[2].top1, second.results.finetune.testAccuracy);
    assert.equal(json.totalImages, 200 * ids.length);
    assert.equal(json.models[2].imagesProcessed, 200 * ids.length);
    const md = await Deno.readTextFile(`${runDir}/report/results.md`);
    assert.match(md, /\| mfi-resnet \| 74,670 \| -22\.46 % \|/);
    assert.equal(json.backend, "wasm (SIMD, 1 thread)", "each phase records its backend");
    assert.match(await Deno.readTextFile(`${runDir}/report/phase_curves.svg`), /^<svg/);

    // The fine-tuned MFI-ResNet exports to an inference bundle that classifies like the run.
    const ckpt0 = await readCheckpoint(`${runDir}/phases/finetune/output/output.json`);
    const bundle = await bundleFromCheckpoint(ckpt0);
    const classifier = await loadClassifier(bundle.bytes, { backend: "wasm", threads: 1 });
    try {
      const predictions = await classifier.classify(data.test.images, { topK: 1 });
      const labels = data.test.labels;
      const hits = predictions.filter((p, i) => p[0].index === labels[i]).length;
      assert.ok(
        Math.abs(hits / data.test.count - second.results.finetune.testAccuracy!) <= 0.011,
        `bundle top-1 ${hits / data.test.count}, run ${second.results.finetune.testAccuracy}`,
      );
    } finally {
      classifier.dispose();
    }

    // Kill damage: incubate:2 deleted, finetune's weights truncated mid-write.
    await Deno.remove(`${runDir}/phases/incubate-2`, { recursive: true });
    const weights = `${runDir}/phases/finetune/output/output.safetensors`;
    const bytes = await Deno.readFile(weights);
    await Deno.writeFile(weights, bytes.subarray(0, bytes.length >> 1));
    const third = await runPipeline(config, { runDir, data, ...quiet });
    assert.deepEqual(third.ran, ["incubate:2", "finetune"]);
    assert.deepEqual(third.skipped, ids.filter((id) => id !== "incubate:2" && id !== "finetune"));

    // A redone input that came out different (e.g. on another machine) makes its dependants
    // stale: the fine-tune is redone, nothing else.
    let changed = false; // one conv weight, scaled by 1.01
    await rewritePhaseOutput(`${runDir}/phases/incubate-3/output`, (name, values) => {
      if (changed || !name.endsWith("conv.weight")) return undefined;
      changed = true;
      return values.map((v) => v * 1.01);
    });
    const lines: string[] = [];
    const fourth = await runPipeline(config, {
      runDir,
      data,
      progress: false,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(fourth.ran, ["finetune"]);
    assert.ok(
      lines.some((l) => /\[stale\] finetune: made from an earlier incubate:3/.test(l)),
      lines.join("\n"),
    );

    // Another config in the same folder is refused.
    const other = mergeConfig(config, { baseline: { lr: 0.01 } });
    await assert.rejects(
      runPipeline(other, { runDir, data, ...quiet }),
      /made with another config/,
    );
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
