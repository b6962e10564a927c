import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { countParameters, disposeModule } from "@mfi/core";
import { buildResNet } from "./resnet.ts";
import { residualStage } from "./stage.ts";
import { Projection } from "./blocks.ts";
import { StagedModel } from "./staged_model.ts";

await tf.setBackend("cpu");

const WIDTH = 1 / 16;

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("StagedModel: stem, stage ranges and head compose to apply", () => {
  const model = buildResNet({ arch: "resnet34", classes: 10, width: WIDTH, seed: 1 });
  const x = tf.randomNormal([2, 8, 8, 3], 0, 1, "float32", 0);
  const opts = { training: false };
  tf.tidy(() => {
    const whole = model.apply(x, opts);
    const s = model.stemForward(x, opts);
    const mid = model.runStages(s, 0, 2, opts);
    const composed = model.headForward(model.runStages(mid, 2, 4, opts), opts);
    assert.ok(maxAbsDiff(whole, composed) === 0);
    assert.ok(maxAbsDiff(model.features(x, { to: 2, ...opts }), mid) === 0);
    assert.ok(
      maxAbsDiff(
        model.features(mid, { from: 2, to: 3, ...opts }),
        model.runStages(mid, 2, 3, opts),
      ) === 0,
    );
    assert.ok(model.runStages(mid, 2, 2, opts) === mid);
    assert.deepEqual(model.features(x, opts).shape, [2, 1, 1, 32]);
    assert.deepEqual(model.features(s, { from: 0, to: 0, ...opts }).shape, s.shape);
  });
  for (const [from, to] of [[-1, 2], [0, 5], [3, 2], [0.5, 2]]) {
    assert.throws(() => model.runStages(x, from, to, opts), /Cannot run stages/);
  }
  assert.deepEqual(model.stageInfos().map((s) => [s.index, s.name, s.kind, s.stride]), [
    [0, "stage1", "basic", 1],
    [1, "stage2", "basic", 2],
    [2, "stage3", "basic", 2],
    [3, "stage4", "basic", 2],
  ]);
  x.dispose();
  disposeModule(model);
});

Deno.test("StagedModel.withStage swaps one stage and shares every other module", () => {
  const model = buildResNet({ arch: "resnet18", classes: 10, width: WIDTH, seed: 1 });
  const info = model.stages[3].info;
  const replacement = new Projection({
    inChannels: info.inChannels,
    outChannels: info.outChannels,
    stride: info.stride,
    seed: 9,
  });
  const hybrid = model.withStage(3, replacement, { kind: "projection" });
  assert.equal(hybrid.constructor, StagedModel);
  assert.equal(hybrid.stem, model.stem);
  assert.equal(hybrid.head, model.head);
  assert.equal(hybrid.stages[3].module, replacement);
  assert.deepEqual(hybrid.stages[3].info, { ...info, kind: "projection" });
  const original = new Map(model.namedVariables());
  const swapped = hybrid.namedVariables();
  for (const [name, v] of swapped) {
    if (name.startsWith("stages.3.")) {
      assert.ok(![...original.values()].includes(v), `${name} must be the new stage's`);
    } else {
      assert.equal(v, original.get(name), `${name} must be shared, not copied`);
    }
  }
  assert.deepEqual(
    swapped.filter(([n]) => n.startsWith("stages.3.")).map(([n]) => n),
    [
      "stages.3.conv.weight",
      "stages.3.bn.weight",
      "stages.3.bn.bias",
      "stages.3.bn.running_mean",
      "stages.3.bn.running_var",
    ],
  );
  assert.equal(
    countParameters(hybrid),
    countParameters(model) - countParameters(model.stages[3].module) + countParameters(replacement),
  );
  // Training the shared stem through the hybrid changes the original model too.
  const x = tf.randomNormal([1, 8, 8, 3], 0, 1, "float32", 2);
  tf.tidy(() => {
    const y = hybrid.apply(x, { training: false });
    assert.deepEqual(y.shape, [1, 10]);
    const before = model.runStages(model.stemForward(x, { training: false }), 0, 3, {
      training: false,
    });
    const same = hybrid.features(x, { to: 3, training: false });
    assert.equal(maxAbsDiff(before, same), 0);
  });
  // Swapping back with the original module gives the original function.
  const back = hybrid.withStage(3, model.stages[3].module, { kind: "basic" });
  tf.tidy(() =>
    assert.equal(
      maxAbsDiff(back.apply(x, { training: false }), model.apply(x, { training: false })),
      0,
    )
  );
  assert.throws(() => model.withStage(4, replacement), /Cannot replace stage 4/);
  assert.throws(
    () => model.withStage(3, replacement, { inChannels: 5 }),
    /stage 2 outputs 16 channels but stage 3 expects 5/,
  );
  x.dispose();
  disposeModule(replacement);
  disposeModule(model);
});

Deno.test("residualStage builds the same stage as buildResNet with the same seed", () => {
  for (const arch of ["resnet18", "resnet50"] as const) {
    const model = buildResNet({ arch, classes: 10, width: WIDTH, seed: 4 });
    const { module, info } = residualStage(arch, 2, { width: WIDTH, seed: 4 });
    assert.deepEqual(info, model.stages[2].info);
    const expected = model.stages[2].module.namedVariables();
    const actual = module.namedVariables();
    assert.deepEqual(actual.map(([n]) => n), expected.map(([n]) => n));
    actual.forEach(([name, v], i) =>
      assert.deepEqual(v.dataSync(), expected[i][1].dataSync(), name)
    );
    disposeModule(module);
    disposeModule(model);
  }
  assert.throws(() => residualStage("resnet18", 4, { seed: 0 }), /Cannot build stage 4/);
  assert.throws(() => residualStage("resnet18", 0, { seed: 0, width: -1 }), /width/);
});

Deno.test("StagedModel rejects inconsistent stages", () => {
  const a = residualStage("resnet18", 0, { width: WIDTH, seed: 0 });
  const c = residualStage("resnet18", 2, { width: WIDTH, seed: 0 });
  const model = buildResNet({ arch: "resnet18", classes: 10, width: WIDTH, seed: 0 });
  assert.throws(
    () =>
      new StagedModel({
        stem: model.stem,
        stages: [a, { ...c, info: { ...c.info, index: 1 } }],
        head: model.head,
      }),
    /stage 0 outputs 4 channels but stage 1 expects 8/,
  );
  assert.throws(
    () => new StagedModel({ stem: model.stem, stages: [a, c], head: model.head }),
    /position 1 has info.index 2/,
  );
  [a.module, c.module, model].forEach(disposeModule);
});
