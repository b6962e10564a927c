/** Every shipped preset is a valid config that plans, and says its scale. */
import assert from "node:assert/strict";
import {
  buildReport,
  DEFAULT_CONFIG,
  mergeConfig,
  parseConfigYaml,
  planPhases,
} from "@mfi/incubation";

const DIR = new URL("../configs/presets/", import.meta.url);

Deno.test("presets: each validates, plans every phase, and reports its scale", async () => {
  const names: string[] = [];
  for await (const entry of Deno.readDir(DIR)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, DIR));
    const config = mergeConfig(DEFAULT_CONFIG, parseConfigYaml(text, entry.name));
    assert.equal(`${config.name}.yaml`, entry.name, "a preset's name is its file name");
    const phases = planPhases(config);
    assert.ok(phases.some((p) => p.id === "finetune"), entry.name);
    const report = buildReport({
      config,
      phases,
      results: {},
      data: "-",
      sample: false,
      backend: "-",
    });
    assert.match(report.scale, entry.name.startsWith("paper") ? /paper scale/ : /reduced scale/);
    // Every preset but smoke evaluates on the full test split.
    assert.equal(config.data.testPerClass === null, entry.name !== "smoke.yaml", entry.name);
    names.push(config.name);
  }
  assert.ok(names.includes("quick") && names.includes("medium") && names.includes("smoke"));
});
