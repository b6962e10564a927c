import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { assertNoLeak } from "@mfi/core/testing";
import { countParameters, Rng, trainableVariables } from "@mfi/core";
import { countStageParameters } from "./budget.ts";
import { MeanFlowStage } from "./meanflow_stage.ts";
import type { MeanFlowStageConfig } from "./stage_config.ts";
import { meanFlowStageLoss, trainStageStep } from "./stage_loss.ts";

await tf.setBackend("cpu");

const CONFIGS: MeanFlowStageConfig[] = [
  { inChannels: 4, outChannels: 6, stride: 1, hidden: 8, modules: 1, seed: 1 },
  { inChannels: 4, outChannels: 8, stride: 2, hidden: 5, modules: 2, blocks: 2, seed: 2 },
  {
    inChannels: 3,
    outChannels: 4,
    stride: 2,
    hidden: 6,
    modules: 2,
    timeEmbedDim: 8,
    moduleSplit: "cascade",
    seed: 3,
  },
];

function randomise(stage: MeanFlowStage, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, v] of stage.namedVariables()) {
    if (name.startsWith("flows.")) v.assign(tf.tensor(rng.normalArray(v.size, 0.3), v.shape));
  }
}

for (const config of CONFIGS) {
  const label = `modules=${config.modules} stride=${config.stride} ${config.moduleSplit ?? "time"}`;

  Deno.test(`stage ${label}: shape, identity at init, parameter count, names`, () => {
    const stage = new MeanFlowStage(config);
    const s = config.stride;
    const x = tf.randomNormal([2, 4, 4, config.inChannels], 0, 1, "float32", 1);
    const [y, z] = tf.tidy(() => [
      stage.apply(x, { training: false }),
      stage.align(x, { training: false }),
    ]);
    assert.deepEqual(y.shape, [2, 4 / s, 4 / s, config.outChannels]);
    assert.deepEqual(tf.tidy(() => tf.max(tf.abs(tf.sub(y, z)))).dataSync()[0], 0); // u = 0 untrained
    assert.deepEqual(countParameters(stage), countStageParameters(config));
    const names = stage.namedVariables().map(([n]) => n);
    assert.deepEqual(names.slice(0, 5), [
      "align.conv.weight",
      "align.bn.weight",
      "align.bn.bias",
      "align.bn.running_mean",
      "align.bn.running_var",
    ]);
    assert.ok(names.includes(`flows.${config.modules - 1}.in.weight`));
    assert.deepEqual(new Set(names).size, names.length);
    assert.ok(Object.isFrozen(stage.config));
    tf.dispose([x, y, z]);
    stage.dispose();
  });

  Deno.test(`stage ${label}: every trainable variable gets a gradient; totals follow the switches`, () => {
    const stage = new MeanFlowStage(config);
    randomise(stage, 5);
    const s = config.stride;
    const xPrev = tf.randomNormal([2, 4, 4, config.inChannels], 0, 1, "float32", 1);
    const xNext = tf.randomNormal([2, 4 / s, 4 / s, config.outChannels], 0, 1, "float32", 2);
    const vars = trainableVariables(stage.namedVariables());
    for (const opts of [{}, { lambda: 0 }, { meanflow: false }]) {
      const { value, grads } = tf.variableGrads(
        () => meanFlowStageLoss(stage, xPrev, xNext, { rng: new Rng(0), ...opts }).total,
        vars,
      );
      for (const v of vars) {
        assert.ok(grads[v.name] !== undefined, `${JSON.stringify(opts)}: no gradient`);
        assert.ok(tf.max(tf.abs(grads[v.name])).dataSync()[0] > 0, JSON.stringify(opts));
      }
      tf.dispose([value, ...Object.values(grads)]);
    }
    const l = tf.tidy(() => meanFlowStageLoss(stage, xPrev, xNext, { rng: new Rng(0), lambda: 0 }));
    assert.ok(Math.abs(l.total.dataSync()[0] - l.meanflow.dataSync()[0]) < 1e-6);
    assert.ok(l.endpoint.dataSync()[0] > 0); // still reported
    const e = tf.tidy(() =>
      meanFlowStageLoss(stage, xPrev, xNext, { rng: new Rng(0), meanflow: false, lambda: 2 })
    );
    assert.ok(Math.abs(e.total.dataSync()[0] - 2 * e.endpoint.dataSync()[0]) < 1e-3);
    assert.ok(e.meanflow.dataSync()[0] > 0); // still reported
    tf.dispose([xPrev, xNext, l.total, l.meanflow, l.endpoint, e.total, e.meanflow, e.endpoint]);
    stage.dispose();
  });
}

Deno.test("time split: module 0 jumps 1 -> 1/2, module 1 jumps 1/2 -> 0; steps subdivide", () => {
  const stage = new MeanFlowStage({
    inChannels: 3,
    outChannels: 4,
    stride: 1,
    hidden: 6,
    modules: 2,
    seed: 0,
  });
  randomise(stage, 1);
  assert.deepEqual(stage.moduleInterval(0), [0.5, 1]);
  assert.deepEqual(stage.moduleInterval(1), [0, 0.5]);
  assert.throws(() => stage.moduleInterval(2), /k must be in/);
  const x = tf.randomNormal([1, 2, 2, 3], 0, 1, "float32", 1);
  const [y, manual, y3, manual3] = tf.tidy(() => {
    const z = stage.align(x, { training: false });
    const [f0, f1] = stage.flows;
    const z1 = tf.sub(z, tf.mul(0.5, f0.velocity(z, 0.5, 1)));
    const manual = tf.sub(z1, tf.mul(0.5, f1.velocity(z1, 0, 0.5)));
    let w = z;
    for (
      const [net, hi] of [[f0, 1], [f0, 5 / 6], [f0, 4 / 6], [f1, 0.5], [f1, 2 / 6], [
        f1,
        1 / 6,
      ]] as const
    ) {
      w = tf.sub(w, tf.mul(1 / 6, net.velocity(w, hi - 1 / 6, hi)));
    }
    return [
      stage.apply(x, { training: false }),
      manual,
      stage.apply(x, { training: false, steps: 3 }),
      w,
    ];
  });
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(y, manual)))).dataSync()[0] < 1e-5);
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(y3, manual3)))).dataSync()[0] < 1e-5);
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(y3, y)))).dataSync()[0] > 1e-4);
  assert.throws(() => stage.apply(x, { training: false, steps: 0 }), /steps/);
  tf.dispose([x, y, manual, y3, manual3]);
  stage.dispose();
});

Deno.test("config: unknown keys, missing keys and wrong types are errors naming the key", () => {
  const ok = { inChannels: 2, outChannels: 3, stride: 1, hidden: 4, modules: 1, seed: 0 } as const;
  const cases: Array<[unknown, RegExp]> = [
    [{ ...ok, hiddn: 4 }, /"hiddn"/],
    [{ ...ok, hidden: undefined }, /"hidden"/],
    [{ ...ok, hidden: "4" }, /"hidden" must be a number/],
    [{ ...ok, stride: 0 }, /"stride"/],
    [{ ...ok, modules: 3 }, /"modules"/],
    [{ ...ok, blocks: 1.5 }, /"blocks"/],
    [{ ...ok, timeEmbedDim: 7 }, /"timeEmbedDim"/],
    [{ ...ok, timeMaxFrequency: "100" }, /"timeMaxFrequency"/],
    [{ ...ok, moduleSplit: "parallel" }, /"moduleSplit"/],
    [{ ...ok, seed: null }, /"seed"/],
    [null, /must be an object/],
    [[1], /must be an object/],
  ];
  for (const [config, re] of cases) {
    assert.throws(() => new MeanFlowStage(config as MeanFlowStageConfig), re);
  }
});

Deno.test("trainStageStep: loss falls, no tensor leak, BN running stats move", async () => {
  const stage = new MeanFlowStage({
    inChannels: 3,
    outChannels: 4,
    stride: 2,
    hidden: 16,
    modules: 2,
    seed: 4,
  });
  const xPrev = tf.randomNormal([4, 4, 4, 3], 0, 1, "float32", 1);
  const xNext = tf.tidy(() => tf.relu(tf.randomNormal([4, 2, 2, 4], 0.5, 1, "float32", 2)));
  const opt: tf.Optimizer = tf.train.adam(1e-2);
  const rng = new Rng(0);
  const first = await trainStageStep(stage, opt, { xPrev, xNext }, { rng });
  let last = first;
  // 30 more steps (a warm-up, then 29 checked) leave the tensor count unchanged.
  await assertNoLeak(async () => {
    last = await trainStageStep(stage, opt, { xPrev, xNext }, { rng });
  }, { steps: 29, label: "trainStageStep" });
  assert.ok(last.endpoint < first.endpoint, `${last.endpoint} vs ${first.endpoint}`);
  assert.ok(tf.max(tf.abs(stage.bn.runningMean)).dataSync()[0] > 0);
  await assert.rejects(
    () => trainStageStep(stage, opt, { xPrev, xNext }, { rng, meanflow: false, lambda: 0 }),
    /nothing to train/,
  );
  await assert.rejects(
    () => trainStageStep(stage, opt, { xPrev, xNext }, { rng, lambda: -1 }),
    /lambda/,
  );
  await assert.rejects(
    () => trainStageStep(stage, opt, { xPrev, xNext: tf.zeros([4, 4, 4, 4]) }, { rng }),
    /z_align's shape/,
  );
  tf.dispose([xPrev, xNext]);
  opt.dispose();
  stage.dispose();
});

Deno.test("downsample: avgpool and space-to-depth let every input position reach the output; stride drops 3 of 4", () => {
  const base = {
    inChannels: 3,
    outChannels: 5,
    stride: 2,
    hidden: 4,
    modules: 1,
    seed: 4,
  } as const;
  const x = tf.randomNormal([2, 4, 4, 3], 0, 1, "float32", 9);
  for (
    const [downsample, reached] of [["avgpool", 16], ["space-to-depth", 16], ["stride", 4]] as const
  ) {
    const stage = new MeanFlowStage({ ...base, downsample });
    assert.equal(countParameters(stage), countStageParameters({ ...base, downsample }), downsample);
    const g = tf.tidy(() => {
      const grad = tf.grad((input: tf.Tensor) => tf.sum(stage.align(input, { training: false })));
      return tf.sum(tf.abs(grad(x)), [0, 3]);
    });
    const touched = [...g.dataSync()].filter((v) => v > 0).length;
    assert.equal(touched, reached, `${downsample}: input positions with a gradient`);
    const y = tf.tidy(() => stage.apply(x, { training: false }));
    assert.deepEqual(y.shape, [2, 2, 2, 5]);
    tf.dispose([g, y]);
    stage.dispose();
  }
  // avgpool and stride have the same parameters (the 1x1 convolution); space-to-depth has 4x its weights.
  const count = (downsample: "avgpool" | "stride" | "space-to-depth") =>
    countStageParameters({ ...base, downsample });
  assert.equal(count("avgpool"), count("stride"));
  assert.equal(count("space-to-depth") - count("stride"), 3 * 3 * 5);
  // avgpool = the 1x1 convolution of the 2x2 means.
  const stage = new MeanFlowStage({ ...base, downsample: "avgpool" });
  const diff = tf.tidy(() => {
    const want = tf.relu(
      stage.bn.apply(stage.conv.apply(tf.avgPool(x as tf.Tensor4D, 2, 2, "valid")), {
        training: false,
      }),
    );
    return tf.max(tf.abs(tf.sub(stage.align(x, { training: false }), want)));
  });
  assert.ok(diff.dataSync()[0] < 1e-6);
  assert.throws(() => new MeanFlowStage({ ...base, downsample: "maxpool" as never }), /downsample/);
  tf.dispose([x, diff]);
  stage.dispose();
});
