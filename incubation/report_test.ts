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
