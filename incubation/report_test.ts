import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import { countSpecParameters } from "./model_spec.ts";
import type { PhaseResult } from "./phase_runner.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { planPhases } from "./plan.ts";
import { buildReport, reportMarkdown, writeReport } from "./report.ts";

const config = mergeConfig(DEFAULT_CONFIG, {
  model: { width: 0.125 },
  data: { trainPerClass: 10 },
});
const specs = pipelineSpecs(config);
const phases = planPhases(config);

function result(phase: string, testAccuracy: number | null): PhaseResult {
  return {
    phase,
    complete: true,
    spec: specs.baseline,
    parameters: 1,
    trainableParameters: 1,
    testAccuracy,
    initialTestAccuracy: null,
    fitMse: testAccuracy === null ? 0.5 : null,
    fitRelative: testAccuracy === null ? 0.25 : null,
    imagesProcessed: 100,
    wallSeconds: 2,
    history: testAccuracy === null ? [] : [
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
    inputs: {},
  };
}

Deno.test("buildReport: models, reductions, deltas, totals; missing phases are dashes", () => {
  const results = {
    baseline: result("baseline", 0.5),
    "compress:1": result("compress:1", null),
    meta: result("meta", 0.3),
    finetune: result("finetune", 0.52),
  };
  const r = buildReport({
    config,
    specs,
    phases,
    results,
    data: "d",
    sample: false,
    backend: "cpu",
  });
  const base = countSpecParameters(specs.baseline).total;
  assert.deepEqual(r.models.map((m) => m.model), ["baseline", "meta", "mfi-resnet"]);
  assert.equal(r.models[2].parameters, countSpecParameters(specs.mfi).total);
  assert.ok(Math.abs(r.models[2].changePercent - 100 * (r.models[2].parameters / base - 1)) < 1e-9);
  assert.ok(Math.abs(r.models[2].deltaPoints! - 2) < 1e-9);
  assert.equal(r.totalImages, 400);
  assert.equal(r.totalWallSeconds, 8);
  assert.match(r.scale, /reduced scale: width 0.125, 10 training images per class/);
  const md = reportMarkdown(r);
  assert.match(
    md,
    /\| mfi-resnet \| [\d,]+ \| -4\d\.\d\d % \| 52\.00 % \| \+2\.00 pts \| 400 \| 0\.1 min \|/,
  );
  assert.equal(r.models[0].imagesProcessed, 100);
  assert.equal(r.models[1].imagesProcessed, 300); // baseline, compress:1, meta
  assert.equal(r.models[1].wallSeconds, 6);
  assert.match(md, /\| incubate:2 \| 0 \| 0 \| 0 \| 0\.0 s \| - \| - \| - \|/);
  assert.match(md, /\| compress:1 \| 1 \| 0 \| 100 \| 2\.0 s \| - \| - \| 0\.250 \|/);
  assert.doesNotMatch(md, /SAMPLE/);
  assert.equal(
    r.backend,
    "cpu (the command that wrote this report; phases did not record theirs)",
  );
});

Deno.test("the report's backend is the phases' own when they recorded it", () => {
  const on = (phase: string, top1: number | null, backend: string) => ({
    ...result(phase, top1),
    backend,
  });
  const inputs = { config, specs, phases, data: "d", sample: false, backend: "cpu (writer)" };
  const same = buildReport({
    ...inputs,
    results: {
      baseline: on("baseline", 0.5, "wasm (SIMD, 2 threads)"),
      "compress:1": on("compress:1", null, "wasm (SIMD, 2 threads)"),
    },
  });
  assert.equal(same.backend, "wasm (SIMD, 2 threads)");
  assert.match(
    reportMarkdown(same),
    /\| compress:1 \| .* \| 0\.250 \| wasm \(SIMD, 2 threads\) \|/,
  );
  assert.match(reportMarkdown(same), /\| finetune \| .* \| - \| - \|$/m);
  const mixed = buildReport({
    ...inputs,
    results: {
      baseline: on("baseline", 0.5, "wasm (SIMD, 2 threads)"),
      meta: on("meta", 0.3, "wasm (SIMD, 1 thread)"),
    },
  });
  assert.equal(
    mixed.backend,
    "cpu (writer) (the command that wrote this report; the phases ran on several, see the phase table)",
  );
  assert.match(buildReport({ ...inputs, results: {} }).backend, /no phase has run yet/);
});

Deno.test("a run on the embedded sample says so in the report", async () => {
  const r = buildReport({
    config,
    specs,
    phases,
    results: { baseline: result("baseline", 0.4) },
    data: "sample",
    sample: true,
    backend: "cpu",
  });
  assert.match(r.scale, /EMBEDDED SAMPLE/);
  const dir = await Deno.makeTempDir();
  try {
    const written = await writeReport(dir, r, { baseline: result("baseline", 0.4) });
    assert.equal(written.length, 4);
    assert.match(
      await Deno.readTextFile(`${dir}/results.md`),
      /WARNING: this run used the embedded/,
    );
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/results.json`)).sample, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the ablation table: one row per variant, then this run's own objective", async () => {
  const ablated = mergeConfig(config, { ablation: ["meanflow-only", "endpoint-only"] });
  const row = (variant: "meanflow-only" | "endpoint-only", objective: string, mfi: number) => ({
    variant,
    objective,
    fitRelative: [0.83, 0.95, null, 1.04],
    metaTop1: 0.14,
    mfiTop1: mfi,
    mfiDeltaPoints: 100 * (mfi - 0.5),
    wallSeconds: 1800,
    report: `ablation/${variant}/report/results.md`,
  });
  const r = buildReport({
    config: ablated,
    specs,
    phases,
    results: {
      baseline: result("baseline", 0.5),
      "compress:1": result("compress:1", null),
      meta: result("meta", 0.3),
      finetune: result("finetune", 0.52),
    },
    data: "d",
    sample: false,
    backend: "cpu",
    ablation: [
      row("meanflow-only", "MeanFlow loss alone", 0.468),
      row("endpoint-only", "endpoint regression alone", 0.477),
    ],
  });
  assert.deepEqual(r.ablation.map((a) => a.variant), ["meanflow-only", "endpoint-only", "main"]);
  const main = r.ablation[2];
  assert.deepEqual(main.fitRelative, [0.25, null, null, null]);
  assert.equal(main.mfiTop1, 0.52);
  assert.ok(Math.abs(main.mfiDeltaPoints! - 2) < 1e-9);
  const md = reportMarkdown(r);
  assert.match(md, /## Stage-fit ablation/);
  assert.match(md, /this run's baseline \(top-1 50\.00 %\)/);
  assert.match(
    md,
    /\| MeanFlow loss alone \| 0\.830 \/ 0\.950 \/ - \/ 1\.040 \| 14\.00 % \| 46\.80 % \| -3\.20 pts \| 30\.0 min \| \[meanflow-only\]\(\.\.\/ablation\/meanflow-only\/report\/results\.md\) \|/,
  );
  assert.match(
    md,
    /\| MeanFlow loss \+ 1 x endpoint regression \(this run\) \| 0\.250 \/ - \/ - \/ - \| 30\.00 % \| 52\.00 % \| \+2\.00 pts \| 0\.1 min \| this one \|/,
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeReport(dir, r, {});
    const svg = await Deno.readTextFile(`${dir}/stage_fits.svg`);
    assert.equal(svg.match(/<polyline/g)?.length, 2, "a one-point line has no polyline");
    assert.match(svg, /endpoint regression alone/);
    assert.match(svg, /MeanFlow loss \+ 1 x endpoint regression/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const plain = buildReport({
    config,
    specs,
    phases,
    results: {},
    data: "d",
    sample: false,
    backend: "cpu",
  });
  assert.deepEqual(plain.ablation, []);
  assert.doesNotMatch(reportMarkdown(plain), /ablation/i);
});
