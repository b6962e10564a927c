import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import { countSpecParameters } from "./model_spec.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";

const reduction = (c: ReturnType<typeof mergeConfig>) => {
  const s = pipelineSpecs(c);
  return 1 - countSpecParameters(s.mfi).total / countSpecParameters(s.baseline).total;
};

Deno.test("MFI-ResNet-50 at full width has the paper's size within 0.5 points", () => {
  const c10 = reduction(DEFAULT_CONFIG);
  const c100 = reduction(mergeConfig(DEFAULT_CONFIG, { data: { dataset: "cifar100" } }));
  assert.ok(Math.abs(c10 * 100 - 46.28) < 0.5, `CIFAR-10: ${c10}`);
  assert.ok(Math.abs(c100 * 100 - 45.59) < 0.5, `CIFAR-100: ${c100}`);
  const s = pipelineSpecs(DEFAULT_CONFIG);
  assert.deepEqual(s.mfi.stages.map((x) => x.kind), [
    "residual",
    "residual",
    "residual",
    "meanflow",
  ]);
  assert.equal(s.meta.stages.every((x) => x.kind === "meanflow"), true);
  const stage4 = s.mfi.stages[3];
  assert.ok(stage4.kind === "meanflow" && stage4.config.modules === 2);
  assert.deepEqual(Object.keys(s.hybrids), ["1", "2", "3"]);
  assert.equal(s.hybrids[2].stages[1].kind, "residual");
  assert.equal(s.hybrids[2].stages[0].kind, "meanflow");
});

Deno.test("paper widths keep the relative reduction at reduced width", () => {
  const r = reduction(mergeConfig(DEFAULT_CONFIG, { model: { width: 0.25 } }));
  assert.ok(Math.abs(r - 0.4628) < 0.01, `${r}`);
  const fixed = pipelineSpecs(mergeConfig(DEFAULT_CONFIG, { meanflow: { hidden: [8, 8, 8, 16] } }));
  const st = fixed.meta.stages[3];
  assert.ok(st.kind === "meanflow" && st.config.hidden === 16);
});

Deno.test("pipelineSpecs rejects paper widths on incubated or several stages", () => {
  assert.throws(
    () => pipelineSpecs(mergeConfig(DEFAULT_CONFIG, { meanflow: { hidden: ["paper", 4, 4, 4] } })),
    /stage 1 is incubated/,
  );
  assert.throws(
    () =>
      pipelineSpecs(
        mergeConfig(DEFAULT_CONFIG, {
          incubate: { stages: [1] },
          meanflow: { hidden: [4, "paper", 4, "paper"] },
        }),
      ),
    /one stage/,
  );
});
