import assert from "node:assert/strict";
import {
  ABLATION_VARIANTS,
  DEFAULT_CONFIG,
  mergeConfig,
  parseConfigYaml,
  parseOverrides,
  validatePipelineConfig,
} from "./config.ts";

Deno.test("validatePipelineConfig: defaults are docs/method.md section 8", () => {
  const c = validatePipelineConfig(structuredClone(DEFAULT_CONFIG));
  assert.equal(c.baseline.lr, 0.1);
  assert.equal(c.baseline.epochs, 200);
  assert.equal(c.baseline.nesterov, true);
  assert.equal(c.compress.optimizer, "adamw");
  assert.equal(c.compress.lr, 1e-3);
  assert.equal(c.incubate.lr, 0.01);
  assert.equal(c.finetune.weightDecay, 5e-4);
  assert.deepEqual(c.meanflow.modules, [1, 1, 1, 2]);
  assert.deepEqual(c.incubate.stages, [1, 2, 3]);
  assert.ok(Object.isFrozen(c.data));
});

Deno.test("invalid configs name the key", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ seed: -1 }, /"seed" must be >= 0/],
    [{ data: { dataset: "mnist" } }, /"data.dataset" must be one of/],
    [{ data: { trainPerClass: 0 } }, /"data.trainPerClass" must be >= 1/],
    [{ model: { width: "wide" } }, /"model.width" must be a number/],
    [{ meanflow: { modules: [1, 1, 3, 2] } }, /"meanflow.modules\[2\]"/],
    [{ meanflow: { hidden: [1, 2, 3] } }, /"meanflow.hidden" must have 4 entries/],
    [{ meanflow: { hidden: [1, "big", 3, 4] } }, /"meanflow.hidden\[1\]/],
    [{ meanflow: { meanflow: false, lambda: 0 } }, /"meanflow.lambda" must be > 0/],
    [{ incubate: { stages: [1, 1] } }, /"incubate.stages" has duplicates/],
    [{ incubate: { stages: [5] } }, /"incubate.stages\[0\]" must be <= 4/],
    [{ incubate: { init: "zeros" } }, /"incubate.init"/],
    [{ baseline: { epochs: 2, lr: null } }, /"baseline.lr" must be a number/],
    [{ finetune: { epoch: 2 } }, /"finetune.epoch" is not a known key/],
    [{ extra: 1 }, /"extra" is not a known key/],
  ];
  for (const [patch, pattern] of cases) {
    assert.throws(() => mergeConfig(DEFAULT_CONFIG, patch), pattern, JSON.stringify(patch));
  }
  const { seed: _s, ...noSeed } = DEFAULT_CONFIG;
  assert.throws(() => validatePipelineConfig(noSeed), /"seed" is missing/);
});

Deno.test("overrides and YAML merge in order", () => {
  const file = parseConfigYaml(
    "baseline:\n  epochs: 5\n  lr: 0.05\ndata:\n  trainPerClass: 10\n",
    "p.yaml",
  );
  const sets = parseOverrides([
    "baseline.epochs=7",
    "data.testPerClass=null",
    "meanflow.hidden=[4, 4, auto, paper]",
  ]);
  const c = mergeConfig(DEFAULT_CONFIG, file, sets);
  assert.equal(c.baseline.epochs, 7);
  assert.equal(c.baseline.lr, 0.05);
  assert.equal(c.data.trainPerClass, 10);
  assert.equal(c.data.testPerClass, null);
  assert.deepEqual(c.meanflow.hidden, [4, 4, "auto", "paper"]);
  assert.throws(() => parseOverrides(["baseline.epochs"]), /expected key.path=value/);
  assert.throws(() => parseOverrides(["a..b=1"]), /empty key segment/);
  assert.throws(
    () => parseConfigYaml("- 1\n- 2\n", "list.yaml"),
    /list.yaml must contain a YAML mapping/,
  );
  assert.throws(() => parseConfigYaml("a: [", "bad.yaml"), /Cannot parse bad.yaml/);
});

Deno.test("ablation: known variants only, no duplicates, kept in report order", () => {
  assert.deepEqual(DEFAULT_CONFIG.ablation, []);
  const c = mergeConfig(DEFAULT_CONFIG, { ablation: ["legacy", "endpoint-only", "meanflow-only"] });
  assert.deepEqual(c.ablation, ["meanflow-only", "endpoint-only", "legacy"]);
  assert.deepEqual(
    mergeConfig(DEFAULT_CONFIG, { ablation: [...ABLATION_VARIANTS] }).ablation,
    ABLATION_VARIANTS,
  );
  assert.throws(
    () => mergeConfig(DEFAULT_CONFIG, { ablation: ["all"] }),
    /"ablation\[0\]" must be one of "meanflow-only", "meanflow-prefit", "endpoint-only", "both", "legacy", got "all"/,
  );
  assert.throws(
    () => mergeConfig(DEFAULT_CONFIG, { ablation: ["endpoint-only", "endpoint-only"] }),
    /"ablation" has duplicates/,
  );
  assert.throws(
    () => mergeConfig(DEFAULT_CONFIG, { ablation: "all" }),
    /"ablation" must be a list/,
  );
});

Deno.test("fair-test options: defaults, presets or explicit samplers, bad values named", () => {
  const d = DEFAULT_CONFIG;
  assert.deepEqual(
    [d.align.downsample, d.align.mode, d.meanflow.sampler, d.meanflow.intervalShare, d.meanflow.p],
    ["avgpool", "joint", "v1", 0.25, 0.75],
  );
  assert.deepEqual([d.meanflow.endpointNorm, d.finetune.recalibrateBatches], ["variance", 50]);
  assert.deepEqual(d.matched, { enabled: true, epochs: "auto" });
  const explicit = {
    tMean: -1,
    tStd: 1,
    rMean: -3,
    rStd: 1,
    distinctFraction: 0.5,
    order: "mask-then-min",
  };
  assert.deepEqual(mergeConfig(d, { meanflow: { sampler: explicit } }).meanflow.sampler, explicit);
  assert.equal(mergeConfig(d, { meanflow: { sampler: "imagenet" } }).meanflow.sampler, "imagenet");
  assert.throws(
    () => mergeConfig(d, { meanflow: { sampler: "v2" } }),
    /"meanflow.sampler" must be one of "v1", "v0", "imagenet", got "v2"/,
  );
  assert.throws(
    () => mergeConfig(d, { meanflow: { sampler: { ...explicit, order: "sort" } } }),
    /"meanflow.sampler.order" must be one of "sort-then-mask", "mask-then-min"/,
  );
  assert.throws(
    () => mergeConfig(d, { meanflow: { sampler: { tMean: 0 } } }),
    /"meanflow.sampler.tStd" is missing/,
  );
  assert.throws(() => mergeConfig(d, { meanflow: { sampler: 3 } }), /must be a preset name/);
  assert.throws(
    () => mergeConfig(d, { align: { downsample: "maxpool" } }),
    /"align.downsample" must be one of "avgpool", "stride", "space-to-depth"/,
  );
  assert.throws(() => mergeConfig(d, { align: { mode: "frozen" } }), /"align.mode"/);
  assert.throws(
    () => mergeConfig(d, { meanflow: { intervalShare: 1.5 } }),
    /"meanflow.intervalShare" must be <= 1/,
  );
  assert.throws(() => mergeConfig(d, { meanflow: { c: 0 } }), /"meanflow.c" must be > 0/);
  assert.throws(
    () => mergeConfig(d, { finetune: { recalibrateBatches: 2.5 } }),
    /"finetune.recalibrateBatches" must be an integer/,
  );
  assert.throws(
    () => mergeConfig(d, { matched: { epochs: "all" } }),
    /"matched.epochs \(or "auto"\)" must be a number/,
  );
  assert.equal(mergeConfig(d, { matched: { epochs: 3 } }).matched.epochs, 3);
});
