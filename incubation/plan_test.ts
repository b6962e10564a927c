import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import {
  type CompressPhase,
  matchedEpochs,
  matchesAny,
  matchesPattern,
  phaseFolder,
  planPhases,
  selectPhases,
  withDependencies,
} from "./plan.ts";
import { countSpecParameters } from "./model_spec.ts";

Deno.test("planPhases: default plan, dependencies before dependants, unique outputs", () => {
  const plan = planPhases(DEFAULT_CONFIG);
  const seen = new Set<string>();
  for (const p of plan) {
    for (const d of p.dependsOn) assert.ok(seen.has(d), `${p.id} depends on later ${d}`);
    for (const s of p.sources) assert.ok(p.dependsOn.includes(s.phase), `${p.id} reads ${s.phase}`);
    if (p.kind === "compress") assert.ok(p.dependsOn.includes(p.teacher));
    assert.equal(p.output, phaseFolder(p.id));
    seen.add(p.id);
  }
  assert.equal(new Set(plan.map((p) => p.output)).size, plan.length);
  const byId = Object.fromEntries(plan.map((p) => [p.id, p]));
  assert.deepEqual(byId["compress:3"].trainable, ["stages.2.*"]);
  assert.equal((byId["compress:3"] as CompressPhase).teacher, "baseline");
  // The compress phase's model is the in-situ model: the baseline with only stage 3 MeanFlow.
  assert.deepEqual(byId["compress:3"].spec.stages.map((s) => s.kind), [
    "residual",
    "residual",
    "meanflow",
    "residual",
  ]);
  assert.deepEqual(byId.matched.sources, [{ phase: "baseline", patterns: ["*"] }]);
  assert.equal(byId.matched.train.epochs, matchedEpochs(DEFAULT_CONFIG));
  assert.equal(byId.matched.train.lr, DEFAULT_CONFIG.finetune.lr);
  assert.equal(countSpecParameters(byId.finetune.spec).total, 12_635_082);
  assert.equal(byId["compress:3"].train.optimizer, "adamw");
  assert.deepEqual(byId.meta.trainable, ["head.*"]);
  assert.deepEqual(byId["incubate:2"].trainable, ["stages.1.*"]);
  assert.deepEqual(byId["incubate:2"].sources, [
    { phase: "meta", patterns: ["stem.*", "stages.0.*", "stages.2.*", "stages.3.*", "head.*"] },
    { phase: "baseline", patterns: ["stages.1.*"] },
  ]);
  assert.deepEqual(byId.finetune.sources[0].patterns, ["stem.*", "stages.3.*", "head.*"]);
  assert.deepEqual(byId.finetune.dependsOn, ["meta", "incubate:1", "incubate:2", "incubate:3"]);
});

Deno.test("planPhases follows the config: incubated stages, random init, meta trainable", () => {
  const c = mergeConfig(DEFAULT_CONFIG, {
    incubate: { stages: [3, 1], init: "random" },
    meta: { trainable: "all" },
  });
  const plan = planPhases(c);
  assert.deepEqual(plan.filter((p) => p.kind === "incubate").map((p) => p.id), [
    "incubate:1",
    "incubate:3",
  ]);
  const inc = plan.find((p) => p.id === "incubate:1")!;
  assert.deepEqual(inc.dependsOn, ["meta"]);
  assert.equal(inc.sources.length, 1);
  assert.deepEqual(plan.find((p) => p.id === "meta")!.trainable, ["*"]);
  const ft = plan.find((p) => p.id === "finetune")!;
  assert.deepEqual(ft.sources[0].patterns, ["stem.*", "stages.1.*", "stages.3.*", "head.*"]);
  // The compressions are independent of each other.
  for (const p of plan.filter((q) => q.kind === "compress")) {
    assert.deepEqual(p.dependsOn, ["baseline"]);
  }
});

Deno.test("withDependencies selects the closure and rejects unknown ids", () => {
  const plan = planPhases(DEFAULT_CONFIG);
  assert.deepEqual(withDependencies(plan, ["compress:2"]).map((p) => p.id), [
    "baseline",
    "compress:2",
  ]);
  // Everything but the compute-matched baseline, which MFI-ResNet does not need.
  assert.deepEqual(
    withDependencies(plan, ["finetune"]).map((p) => p.id),
    plan.map((p) => p.id).filter((id) => id !== "matched"),
  );
  assert.throws(() => withDependencies(plan, ["incubate:4"]), /Unknown phase "incubate:4"/);
});

Deno.test("name patterns", () => {
  assert.ok(matchesPattern("stem.conv.weight", "*"));
  assert.ok(matchesPattern("stages.0.conv.weight", "stages.0.*"));
  assert.ok(!matchesPattern("stages.10.conv.weight", "stages.1.*"));
  assert.ok(!matchesPattern("xstages.1.a", "stages.1.*"));
  assert.ok(matchesAny("head.fc.bias", ["stem.*", "head.*"]));
  assert.ok(!matchesAny("head.fc.bias", []));
});

Deno.test("planPhases: matched off, matched epochs, and ablation fits as phases of the plan", () => {
  const off = planPhases(mergeConfig(DEFAULT_CONFIG, { matched: { enabled: false } }));
  assert.ok(!off.some((p) => p.id === "matched"));
  assert.equal(matchedEpochs(mergeConfig(DEFAULT_CONFIG, { matched: { epochs: 7 } })), 7);
  const c = mergeConfig(DEFAULT_CONFIG, {
    ablation: ["legacy", "meanflow-prefit"],
    compress: { stages: [1, 4] },
  });
  const plan = planPhases(c);
  const fits = plan.filter((p): p is CompressPhase => p.kind === "compress");
  assert.deepEqual(fits.map((p) => p.id), [
    "compress:1",
    "compress:4",
    "meanflow-prefit/compress:1",
    "meanflow-prefit/compress:4",
    "legacy/compress:1",
    "legacy/compress:4",
  ]);
  const legacy = fits.find((p) => p.id === "legacy/compress:4")!;
  assert.equal(legacy.variant, "legacy");
  assert.deepEqual(legacy.dependsOn, ["baseline"]);
  assert.equal(legacy.output, "phases/legacy/compress-4");
  assert.equal(legacy.objective.samplerName, "imagenet");
  assert.equal(
    fits.find((p) => p.id === "meanflow-prefit/compress:1")!.objective.align.mode,
    "prefit",
  );
  // Variant fits feed nothing else: meta reads the run's own fits only.
  assert.deepEqual(plan.find((p) => p.id === "meta")!.dependsOn, [
    "baseline",
    "compress:1",
    "compress:4",
  ]);
  assert.deepEqual(selectPhases(plan, ["legacy"]), ["legacy/compress:1", "legacy/compress:4"]);
  assert.throws(() => selectPhases(plan, ["endpoint-only"]), /Unknown phase "endpoint-only"/);
});
