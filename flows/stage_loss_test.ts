import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { assertNoLeak } from "@mfi/core/testing";
import { Rng, trainableVariables } from "@mfi/core";
import { MeanFlowStage } from "./meanflow_stage.ts";
import { alignmentLoss, endpointError, meanFlowStageLoss, stageGradNorms } from "./stage_loss.ts";
import { SAMPLER_PRESETS } from "./time_sampler.ts";

await tf.setBackend("cpu");

/** A stage whose velocity networks are not the zero map (so that (r, t) matter). */
function make(): MeanFlowStage {
  const stage = new MeanFlowStage({
    inChannels: 4,
    outChannels: 6,
    stride: 2,
    hidden: 8,
    modules: 2,
    seed: 5,
  });
  const rng = new Rng(11);
  for (const [name, v] of stage.namedVariables()) {
    if (name.startsWith("flows.")) v.assign(tf.tensor(rng.normalArray(v.size, 0.3), v.shape));
  }
  return stage;
}

Deno.test("endpointError: variance normalisation is scale-free; 'none' sums per sample", () => {
  const target = tf.randomNormal([3, 4, 4, 6], 0, 1, "float32", 1);
  const pred = tf.randomNormal([3, 4, 4, 6], 0, 1, "float32", 2);
  const [a, b, raw, rawScaled] = tf.tidy(() =>
    [
      endpointError(pred, target, { endpointNorm: "variance" }),
      endpointError(tf.mul(pred, 10), tf.mul(target, 10), { endpointNorm: "variance" }),
      endpointError(pred, target),
      endpointError(tf.mul(pred, 10), tf.mul(target, 10)),
    ].map((t) => t.dataSync()[0])
  );
  assert.ok(Math.abs(a - b) / a < 1e-4, `${a} vs ${b}`);
  assert.ok(Math.abs(rawScaled / raw - 100) < 1e-2);
  // Per sample = one pixel row of 6 channels: about 6 x 2 for two independent unit normals.
  assert.ok(raw > 8 && raw < 16, `${raw}`);
  assert.throws(() => endpointError(pred, tf.zeros([1])), /differ/);
  tf.dispose([target, pred]);
});

Deno.test("meanFlowStageLoss: sampler, p and endpoint normalisation reach the loss; bad options named", () => {
  const stage = make();
  const xPrev = tf.randomNormal([2, 4, 4, 4], 0, 1, "float32", 3);
  const xNext = tf.randomNormal([2, 2, 2, 6], 0, 3, "float32", 4);
  const value = (opts: Record<string, unknown>) =>
    tf.tidy(() => {
      const l = meanFlowStageLoss(stage, xPrev, xNext, { rng: new Rng(0), ...opts });
      return [l.total, l.meanflow, l.endpoint].map((t) => t.dataSync()[0]);
    });
  const plain = value({});
  const normed = value({ endpointNorm: "variance" });
  assert.equal(plain[1], normed[1], "the MeanFlow term does not depend on the endpoint norm");
  assert.ok(normed[2] < plain[2] / 4, "normalised by a variance of about 9 per element");
  assert.notEqual(value({ sampler: SAMPLER_PRESETS.v1 })[1], plain[1]);
  assert.notEqual(value({ p: 0.75 })[1], plain[1]);
  assert.throws(() => value({ endpointNorm: "std" }), /endpointNorm/);
  assert.throws(() => value({ sampler: { ratio: 1 } }), /"ratio"/);
  tf.dispose([xPrev, xNext]);
  stage.dispose();
});

Deno.test("alignmentLoss trains the alignment only; stageGradNorms reports each term without advancing the rng", async () => {
  const stage = make();
  const xPrev = tf.randomNormal([2, 4, 4, 4], 0, 1, "float32", 5);
  const xNext = tf.randomNormal([2, 2, 2, 6], 0, 1, "float32", 6);
  const vars = trainableVariables(stage.namedVariables());
  const { grads, value } = tf.variableGrads(
    () => alignmentLoss(stage, xPrev, xNext, { endpointNorm: "variance" }),
    vars,
  );
  const names = new Map(stage.namedVariables().map(([n, v]) => [v.name, n]));
  const touched = Object.keys(grads).filter((k) =>
    tf.tidy(() => tf.sum(tf.abs(grads[k])).dataSync()[0]) > 0
  ).map((k) => names.get(k)!);
  assert.ok(touched.length > 0 && touched.every((n) => n.startsWith("align.")), `${touched}`);
  tf.dispose([value, ...Object.values(grads)]);

  const rng = new Rng(3);
  const before = rng.state();
  const stats = () =>
    stage.namedVariables().filter(([, v]) => !v.trainable).map(([, v]) => [...v.dataSync()]);
  const statsBefore = stats();
  const both = await stageGradNorms(stage, xPrev, xNext, vars, { rng, lambda: 2 });
  assert.deepEqual(rng.state(), before);
  assert.deepEqual(stats(), statsBefore, "batch-norm running statistics are restored");
  const one = await stageGradNorms(stage, xPrev, xNext, vars, { rng, lambda: 1 });
  assert.ok(both.meanflow > 0 && both.endpoint > 0);
  assert.ok(Math.abs(both.endpoint / one.endpoint - 2) < 1e-3, "lambda scales the endpoint term");
  assert.ok(Math.abs(both.meanflow - one.meanflow) < 1e-5 * one.meanflow);
  const off = await stageGradNorms(stage, xPrev, xNext, vars, { rng, meanflow: false, lambda: 1 });
  assert.equal(off.meanflow, 0);
  await assertNoLeak(() => stageGradNorms(stage, xPrev, xNext, vars, { rng, lambda: 1 }), {
    steps: 1,
    label: "stageGradNorms",
  });
  tf.dispose([xPrev, xNext]);
  stage.dispose();
});
