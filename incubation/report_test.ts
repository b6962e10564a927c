import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import { countSpecParameters } from "./model_spec.ts";
import type { PhaseResult } from "./phase_output.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { planPhases } from "./plan.ts";
import { buildReport, reportMarkdown, writeReport } from "./report.ts";
import { packCorrect } from "./statistics.ts";

const config = mergeConfig(DEFAULT_CONFIG, {
  model: { width: 0.125 },
  data: { trainPerClass: 10 },
});
const specs = pipelineSpecs(config);
const phases = planPhases(config);

/** Right on the first `right` of 10 test images. */
const correct = (right: number) =>
  packCorrect(Array.from({ length: 10 }, (_, i) => (i < right ? 1 : 0)));

function result(phase: string, testAccuracy: number | null, extra: Partial<PhaseResult> = {}) {
  const fit = phase.includes("compress");
  return {
    phase,
    complete: true,
    spec: specs.baseline,
    parameters: 1,
    trainableParameters: 1,
    testAccuracy,
    initialTestAccuracy: null,
    recalibratedTestAccuracy: null,
    fitMse: fit ? 0.5 : null,
    fitRelative: fit ? 0.25 : null,
    gradNorms: fit
      ? { start: { meanflow: 2, endpoint: 1 }, end: { meanflow: 3, endpoint: 2 } }
      : null,
    testImages: 10,
    correct: testAccuracy === null ? null : correct(Math.round(10 * testAccuracy)),
    imagesProcessed: 100,
    wallSeconds: 2,
    history: testAccuracy === null || fit ? [] : [
      {
        epoch: 1,
        step: 2,
        loss: 1,
        trainAccuracy: 0.5,
        testAccuracy,
        testLoss: 1,
        lr: 0.1,
        imagesPerSecond: 50,
        seconds: 2,
        metrics: {},
      },
    ],
    data: "test",
    backend: "",
    inputs: {},
    ...extra,
  } as PhaseResult;
}

Deno.test("buildReport: models (matched included), reductions, deltas, totals, paired tests", () => {
  const results = {
    baseline: result("baseline", 0.5),
    matched: result("matched", 0.6),
    "compress:1": result("compress:1", 0.4),
    meta: result("meta", 0.3),
    finetune: result("finetune", 0.7, { recalibratedTestAccuracy: 0.2 }),
  };
  const r = buildReport({ config, phases, results, data: "d", sample: false, backend: "cpu" });
  const base = countSpecParameters(specs.baseline).total;
  assert.deepEqual(r.models.map((m) => m.model), ["baseline", "matched", "meta", "mfi-resnet"]);
  const mfi = r.models[3];
  assert.equal(mfi.parameters, countSpecParameters(specs.mfi).total);
  assert.ok(Math.abs(mfi.changePercent - 100 * (mfi.parameters / base - 1)) < 1e-9);
  assert.ok(Math.abs(mfi.deltaPoints! - 20) < 1e-9);
  assert.equal(r.models[1].parameters, base, "the matched baseline is the baseline's model");
  assert.equal(r.totalImages, 500);
  assert.equal(r.testImages, 10);
  assert.match(r.scale, /reduced scale: width 0.125, 10 training images per class, 10 test images/);
  // MFI right on 7 images, baseline on the first 5 of them, matched on the first 6.
  assert.deepEqual(
    [r.paired.mfiVsBaseline!.aOnly, r.paired.mfiVsBaseline!.bOnly, r.paired.mfiVsBaseline!.n],
    [2, 0, 10],
  );
  assert.equal(r.paired.mfiVsMatched!.aOnly, 1);
  assert.ok(Math.abs(r.paired.mfiVsBaseline!.p - 0.5) < 1e-12);
  assert.equal(r.correct["mfi-resnet"], results.finetune.correct);
  assert.equal(r.models[2].imagesProcessed, 300); // baseline, compress:1, meta
  assert.deepEqual(r.stageFits.map((f) => f.variant), ["main"]);
  assert.deepEqual(r.stageFits[0].inSitu, [0.4, null, null, null]);
  assert.deepEqual(r.stageFits[0].fitRelative, [0.25, null, null, null]);
  const md = reportMarkdown(r);
  assert.match(md, /\| mfi-resnet \| [\d,]+ \| -4\d\.\d\d % \| 70\.00 % \| \+20\.00 pts \| 400 \|/);
  assert.match(md, /\| MFI-ResNet vs baseline \| 2 \| 0 \| \+20\.00 pts \| 0\.500 \|/);
  assert.match(
    md,
    /\| MFI-ResNet vs compute-matched baseline \| 1 \| 0 \| \+10\.00 pts \| 1\.000 \|/,
  );
  assert.match(
    md,
    /\| \*\*this run\*\*: MeanFlow loss \+ 1 x endpoint \(variance-normalised\); v1 sampler, 25 % at the interval, p 0\.75; avgpool alignment, joint \| 0\.250 \/ - \/ - \/ - \| 40\.0 \/ - \/ - \/ - \| 1\.5 \/ - \/ - \/ - \|/,
  );
  assert.match(
    md,
    /\| finetune \| 1 \| 1 \| 100 \| 2\.0 s \| - \(20\.00 % recalibrated\) \| 70\.00 % \|/,
  );
  assert.match(
    md,
    /\| compress:1 \| 1 \| 0 \| 100 \| 2\.0 s \| - \| 40\.00 % in situ \| 0\.250 \|/,
  );
  assert.match(md, /\| incubate:2 \| 0 \| 0 \| 0 \| 0\.0 s \| - \| - \| - \|/);
  assert.match(md, /batch-norm recalibration before fine-tuning: 50 batches/);
  assert.match(md, /\| matched \| 80 \| 128 \| sgd/);
  assert.doesNotMatch(md, /SAMPLE/);
});

Deno.test("the report's backend is the phases' own when they recorded it", () => {
  const on = (phase: string, top1: number | null, backend: string) =>
    result(phase, top1, { backend });
  const inputs = { config, phases, data: "d", sample: false, backend: "cpu (writer)" };
  const same = buildReport({
    ...inputs,
    results: {
      baseline: on("baseline", 0.5, "wasm (SIMD, 2 threads)"),
      "compress:1": on("compress:1", 0.1, "wasm (SIMD, 2 threads)"),
    },
  });
  assert.equal(same.backend, "wasm (SIMD, 2 threads)");
  const mixed = buildReport({
    ...inputs,
    results: {
      baseline: on("baseline", 0.5, "wasm (SIMD, 2 threads)"),
      meta: on("meta", 0.3, "wasm (SIMD, 1 thread)"),
    },
  });
  assert.match(mixed.backend, /the phases ran on several, see the phase table/);
  assert.match(buildReport({ ...inputs, results: {} }).backend, /no phase has run yet/);
  assert.doesNotMatch(reportMarkdown(same), /SOFTWARE/);

  // A phase on a software WebGPU adapter (--allow-software-adapter) makes the report say so.
  const software = "webgpu (software adapter: llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541)";
  for (
    const results of [
      { baseline: on("baseline", 0.5, software) } as Record<string, PhaseResult>,
      { baseline: on("baseline", 0.5, "wasm (SIMD, 2 threads)"), meta: on("meta", 0.3, software) },
    ]
  ) {
    const md = reportMarkdown(buildReport({ ...inputs, results }));
    assert.match(md, /^> \*\*WARNING: phases of this run ran on a SOFTWARE WebGPU adapter\*\*$/m);
  }
  const gpu = buildReport({
    ...inputs,
    results: { baseline: on("baseline", 0.5, "webgpu (NVIDIA H200, vendor nvidia, hopper)") },
  });
  assert.doesNotMatch(reportMarkdown(gpu), /SOFTWARE/);
});

Deno.test("a run on the embedded sample says so; plots only with data; ablation rows per variant", async () => {
  const ablated = mergeConfig(config, { ablation: ["endpoint-only", "legacy"] });
  const plan = planPhases(ablated);
  const r = buildReport({
    config: ablated,
    phases: plan,
    results: {
      baseline: result("baseline", 0.4),
      "compress:2": result("compress:2", 0.3),
      "endpoint-only/compress:2": result("endpoint-only/compress:2", 0.35),
    },
    data: "sample",
    sample: true,
    backend: "cpu",
  });
  assert.match(r.scale, /EMBEDDED SAMPLE/);
  assert.deepEqual(r.stageFits.map((f) => f.variant), ["main", "endpoint-only", "legacy"]);
  assert.deepEqual(r.stageFits[1].inSitu, [null, 0.35, null, null]);
  assert.equal(r.paired.mfiVsBaseline, null);
  const md = reportMarkdown(r);
  assert.match(
    md,
    /\| endpoint-only: endpoint \(variance-normalised\) regression alone; avgpool alignment, joint \| - \/ 0\.250 \/ - \/ - \| - \/ 35\.0 \/ - \/ - \| - \/ 1\.5 \/ - \/ - \|/,
  );
  assert.doesNotMatch(md, /## Paired test/);
  const dir = await Deno.makeTempDir();
  try {
    const written = await writeReport(dir, r, { baseline: result("baseline", 0.4) });
    assert.deepEqual(written.map((w) => w.slice(dir.length + 1)), [
      "results.json",
      "results.md",
      "accuracy_vs_parameters.svg",
      "in_situ.svg",
      "stage_fits.svg",
      "phase_curves.svg",
    ]);
    assert.match(
      await Deno.readTextFile(`${dir}/results.md`),
      /WARNING: this run used the embedded/,
    );
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/results.json`)).sample, true);
    assert.match(await Deno.readTextFile(`${dir}/in_situ.svg`), /endpoint-only/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
