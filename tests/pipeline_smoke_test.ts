/**
 * The `smoke` preset end to end on the embedded sample (wasm backend, one thread): every phase,
 * the report, and resuming a run that was killed (simulated by running a phase subset), whose
 * outputs were deleted or corrupted, or whose inputs changed.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { readCheckpoint } from "@mfi/core";
import {
  buildReport,
  countSpecParameters,
  mergeConfig,
  PhaseNotReadyError,
  pipelineSpecs,
  planPhases,
  runPipeline,
  writeReport,
} from "@mfi/incubation";
import { bundleFromCheckpoint, loadClassifier } from "@mfi/serve";
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
      (e) =>
        e instanceof PhaseNotReadyError && e.phase === "meta" &&
        e.missing.join() === "compress:2,compress:3,compress:4",
    );
    // Rerun: complete phases are skipped, the rest run.
    const before = tf.memory().numTensors;
    const second = await runPipeline(config, { runDir, data, ...quiet });
    assert.deepEqual(second.skipped, ["baseline", "compress:1"]);
    assert.deepEqual(second.ran, ids.filter((id) => id !== "baseline" && id !== "compress:1"));
    assert.equal(tf.memory().numTensors, before, "a run frees its models and optimizers");
    for (const id of ids) {
      const r = second.results[id];
      // The compute-matched baseline trains 3 incubations + 1 fine-tune = 4 epochs.
      assert.ok(r.complete && r.wallSeconds > 0, id);
      assert.equal(r.imagesProcessed, id === "matched" ? 800 : 200, id);
      assert.ok(r.testAccuracy! >= 0 && r.testAccuracy! <= 1, id);
      assert.equal(r.testImages, 100, id);
      assert.equal(r.correct!.length, Math.ceil(100 / 8 / 3) * 4, `${id}: 100 bits as base64`);
    }
    assert.ok(second.results["compress:3"].fitRelative! > 0);
    assert.ok(second.results["compress:3"].gradNorms!.end.meanflow > 0);
    assert.ok(second.results.finetune.recalibratedTestAccuracy !== null);

    // The report.
    const specs = pipelineSpecs(config);
    const report = buildReport({
      config,
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
      "in_situ.svg",
      "stage_fits.svg",
      "phase_curves.svg",
    ]);
    const json = JSON.parse(await Deno.readTextFile(`${runDir}/report/results.json`));
    assert.deepEqual(json.models.map((m: { model: string }) => m.model), [
      "baseline",
      "matched",
      "meta",
      "mfi-resnet",
    ]);
    const mfiRow = json.models[3];
    assert.equal(mfiRow.parameters, countSpecParameters(specs.mfi).total);
    assert.equal(mfiRow.top1, second.results.finetune.testAccuracy);
    assert.equal(json.totalImages, 200 * (ids.length - 1) + 800);
    assert.equal(mfiRow.imagesProcessed, 200 * (ids.length - 1), "MFI's lineage has no matched");
    assert.equal(json.paired.mfiVsMatched.n, 100);
    assert.deepEqual(json.stageFits.map((f: { variant: string }) => f.variant), ["main"]);
    assert.equal(json.stageFits[0].inSitu[2], second.results["compress:3"].testAccuracy);
    const md = await Deno.readTextFile(`${runDir}/report/results.md`);
    assert.match(md, /\| mfi-resnet \| 74,670 \| -22\.46 % \|/);
    assert.equal(json.backend, "wasm (SIMD, 1 thread)", "each phase records its backend");
    assert.match(await Deno.readTextFile(`${runDir}/report/phase_curves.svg`), /^<svg/);

    // The fine-tuned MFI-ResNet exports to an inference bundle that classifies like the run.
    const ckpt0 = await readCheckpoint(`${runDir}/phases/finetune/output/output.json`);
    // (the bundle reads the run's own checkpoint; its result is bound to its weights)
    const bundle = await bundleFromCheckpoint(ckpt0);
    // The bundle says which backend made it: the run's wasm, not a software adapter.
    assert.equal(bundle.info.backend?.label, second.results.finetune.backend);
    assert.match(bundle.info.backend!.label, /^wasm \((no )?SIMD, 1 thread\)$/);
    assert.equal(bundle.info.backend!.softwareAdapter, false);
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
    await rewritePhaseOutput(runDir, config, "incubate:3", (name, values) => {
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

    // A result edited by hand (an accuracy typed into output.json) is not trusted: redone.
    const sidecar = `${runDir}/phases/meta/output/output.json`;
    const edited = JSON.parse(await Deno.readTextFile(sidecar));
    edited.extra.testAccuracy = 0.99;
    await Deno.writeTextFile(sidecar, JSON.stringify(edited));
    const redo: string[] = [];
    const fifth = await runPipeline(config, {
      runDir,
      data,
      only: ["meta"],
      progress: false,
      log: (l) => redo.push(l),
    });
    assert.deepEqual(fifth.ran, ["meta"]);
    assert.notEqual(fifth.results.meta.testAccuracy, 0.99);
    assert.ok(redo.some((l) => /\[redo\] meta: .*edited/.test(l)), redo.join("\n"));

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
