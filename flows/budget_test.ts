import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { countParameters } from "@mfi/core";
import { countStageParameters, widthForBudget } from "./budget.ts";
import { MeanFlowStage } from "./meanflow_stage.ts";

await tf.setBackend("cpu");

// docs/method.md section 2: ResNet-50 (CIFAR-10) has 23,520,842 parameters, 14,964,736 of them in
// stage 4. The paper's -46.28 % leaves 23,520,842 * (1 - 0.4628) for MFI-ResNet-50, so the
// MeanFlow stage 4 (1024 -> 2048, stride 2) gets that minus the 8,556,106 kept parameters.
const RESNET50_C10 = 23_520_842;
const KEPT = RESNET50_C10 - 14_964_736;
const STAGE4_BUDGET = RESNET50_C10 * (1 - 0.4628) - KEPT;

Deno.test("stage-4 budget of MFI-ResNet-50 (-46.28 %) is hit within 1 % for 1 and 2 modules", () => {
  assert.ok(Math.abs(STAGE4_BUDGET - 4_079_290) < 1);
  for (const modules of [1, 2] as const) {
    const fit = widthForBudget(STAGE4_BUDGET, {
      inChannels: 1024,
      outChannels: 2048,
      stride: 2,
      modules,
    });
    assert.ok(Math.abs(fit.relativeError) < 0.01, `modules ${modules}: ${fit.relativeError}`);
    assert.deepEqual(fit.modules, modules);
    const total = KEPT + fit.parameters;
    const reduction = 1 - total / RESNET50_C10;
    assert.ok(Math.abs(reduction - 0.4628) < 0.005, `reduction ${reduction}`);
    // The width is the best integer: one more or one less is further from the target.
    const other = (h: number) => countStageParameters({ ...fit.config, hidden: h });
    assert.ok(
      Math.abs(other(fit.hidden + 1) - STAGE4_BUDGET) >= Math.abs(fit.parameters - STAGE4_BUDGET),
    );
    assert.ok(
      Math.abs(other(fit.hidden - 1) - STAGE4_BUDGET) >= Math.abs(fit.parameters - STAGE4_BUDGET),
    );
  }
});

Deno.test("countStageParameters agrees with countParameters of the built stage", () => {
  for (
    const config of [
      { inChannels: 64, outChannels: 128, stride: 2, hidden: 40, modules: 1, seed: 0 },
      { inChannels: 32, outChannels: 16, stride: 1, hidden: 7, modules: 2, blocks: 3, seed: 1 },
      { inChannels: 8, outChannels: 8, stride: 1, hidden: 3, modules: 2, timeEmbedDim: 2, seed: 2 },
    ] as const
  ) {
    const stage = new MeanFlowStage(config);
    assert.deepEqual(countStageParameters(config), countParameters(stage));
    stage.dispose();
  }
});

Deno.test("widthForBudget: picks the closer module count and rejects impossible targets", () => {
  const shape = { inChannels: 16, outChannels: 32, stride: 2 };
  const fit = widthForBudget(50_000, shape);
  const one = widthForBudget(50_000, { ...shape, modules: 1 });
  const two = widthForBudget(50_000, { ...shape, modules: 2 });
  assert.deepEqual(
    fit.relativeError,
    [one, two].sort((a, b) => Math.abs(a.relativeError) - Math.abs(b.relativeError))[0]
      .relativeError,
  );
  assert.throws(() => widthForBudget(100, shape), /below the smallest stage/);
  assert.throws(() => widthForBudget(-1, shape), /target/);
});
