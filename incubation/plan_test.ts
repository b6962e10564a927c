import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import { matchesAny, matchesPattern, planPhases, withDependencies } from "./plan.ts";

Deno.test("planPhases: default plan, dependencies before dependants, unique outputs", () => {
  const plan = planPhases(DEFAULT_CONFIG);
  const seen = new Set<string>();
  for (const p of plan) {
    for (const d of p.dependsOn) assert.ok(seen.has(d), `${p.id} depends on later ${d}`);
    for (const s of p.sources) assert.ok(p.dependsOn.includes(s.phase), `${p.id} reads ${s.phase}`);
    if (p.teacher) assert.ok(p.dependsOn.includes(p.teacher));
    seen.add(p.id);
  }
  assert.equal(new Set(plan.map((p) => p.output)).size, plan.length);
  const byId = Object.fromEntries(plan.map((p) => [p.id, p]));
  assert.deepEqual(byId["compress:3"].trainable, ["stages.2.*"]);
  assert.equal(byId["compress:3"].teacher, "baseline");
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
  assert.equal(withDependencies(plan, ["finetune"]).length, plan.length);
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
