// Table-driven over every model kind of a run (baseline, meta, each incubation hybrid, MFI-ResNet),
// built as the pipeline builds them: pipelineSpecs + buildModel (= buildResNet + withStage).
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { disposeModule, sha256Hex } from "@mfi/core";
import { assertNoLeak } from "@mfi/core/testing";
import { buildResNet, residualStageInfo, type StagedModel } from "@mfi/resnet";
import {
  buildModel,
  DEFAULT_CONFIG,
  mergeConfig,
  type ModelSpec,
  pipelineSpecs,
} from "@mfi/incubation";

await tf.setBackend("cpu");

const SPECS = pipelineSpecs(
  mergeConfig(DEFAULT_CONFIG, { model: { width: 1 / 16 }, meanflow: { hidden: [4, 4, 4, 8] } }),
);

const KINDS: Array<[string, ModelSpec]> = [
  ["baseline", SPECS.baseline],
  ["meta", SPECS.meta],
  ...Object.entries(SPECS.hybrids).map(([k, v]): [string, ModelSpec] => [`hybrid${k}`, v]),
  ["mfi", SPECS.mfi],
];

// Pinned with the builder as it was before buildModel became buildResNet + withStage (seed 0,
// resnet50 at width 1/16, MeanFlow hidden [4, 4, 4, 8]): sha256 of the float32 initial weights
// concatenated in namedVariables order. A change here changes every checkpoint a seed produces.
const PINNED: Record<string, string> = {
  baseline: "a9f2dde89bd9bb6dd30aea3164dd17511ccc39874ae02662826a210a7b81dce9",
  meta: "86af038732849eaf25bfb8c0c1e6cf16246daac4a1cb803f5d3b06bfef7b5445",
  hybrid1: "8a098ea6f48bc30392ae68df4c856f72d021d99332044d2d69353711584f7b0e",
  hybrid2: "b663d9728fe21cc9c487e2f2bcd804073f495795db750622161f8651b6dff51d",
  hybrid3: "3d6b16defed3fe25df3b1b2da6f1de00126c4318ab52e937e3dec3d7b662212f",
  mfi: "c5f66c1b646e993838bb52e2b83695109eceb7f15c0ab707139b09a8d26a6d6b",
};

async function weightsDigest(model: StagedModel): Promise<string> {
  const vars = model.namedVariables();
  const flat = new Float32Array(vars.reduce((n, [, v]) => n + v.size, 0));
  let offset = 0;
  for (const [, v] of vars) {
    flat.set(v.dataSync() as Float32Array, offset);
    offset += v.size;
  }
  return await sha256Hex(new Uint8Array(flat.buffer));
}

Deno.test("model kinds: the table covers every kind of a run", () => {
  assert.deepEqual(KINDS.map(([k]) => k), Object.keys(PINNED));
  assert.deepEqual(KINDS.map(([, s]) => s.family), [
    "resnet",
    "meta",
    "hybrid",
    "hybrid",
    "hybrid",
    "mfi-resnet",
  ]);
});

Deno.test("model kinds: a residual spec builds buildResNet's model weight for weight", async () => {
  const s = SPECS.baseline;
  const a = buildModel(s, { seed: 0 });
  const b = buildResNet({ arch: s.arch, classes: s.classes, width: s.width, seed: 0 });
  try {
    assert.deepEqual(a.namedVariables().map(([n]) => n), b.namedVariables().map(([n]) => n));
    assert.equal(await weightsDigest(b), PINNED.baseline);
  } finally {
    disposeModule(a);
    disposeModule(b);
  }
});

for (const [kind, spec] of KINDS) {
  Deno.test(`${kind}: initial weights are bit-identical to the pinned builder's, nothing leaks`, async () => {
    const before = tf.memory().numTensors;
    const model = buildModel(spec, { seed: 0 });
    try {
      // Only the model's variables stay allocated: residual stages replaced by MeanFlow were freed.
      assert.equal(tf.memory().numTensors - before, model.namedVariables().length);
      assert.deepEqual(
        model.stageInfos().map((s) => s.kind),
        spec.stages.map((s, i) =>
          s.kind === "meanflow" ? "meanflow" : residualStageInfo(spec.arch, i, spec.width).kind
        ),
      );
      assert.equal(await weightsDigest(model), PINNED[kind]);
    } finally {
      disposeModule(model);
    }
    assert.equal(tf.memory().numTensors, before);
  });

  Deno.test(`${kind}: logits shape, no NaN, every trainable variable gets a gradient, no leak`, async () => {
    const model = buildModel(spec, { seed: 1 });
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 3);
    const labels = tf.oneHot(tf.tensor1d([3, 8], "int32"), spec.classes);
    try {
      for (const training of [false, true]) {
        const y = tf.tidy(() => model.apply(x, { training }));
        assert.deepEqual(y.shape, [2, spec.classes]);
        assert.ok(y.dataSync().every(Number.isFinite), `${kind} training=${training}: NaN/Inf`);
        y.dispose();
      }
      const named = model.namedVariables().filter(([, v]) => v.trainable);
      const vars = named.map(([, v]) => v);
      const loss = () =>
        tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true })) as tf.Scalar;
      await assertNoLeak(() =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(loss, vars);
          for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 1e-3)));
          assert.ok(Number.isFinite(value.dataSync()[0]));
        }), { label: `${kind} training step` });
      // MeanFlow's output layer is zero-initialised (a step starts as the identity), so at
      // initialisation nothing behind it has a gradient; after the steps above every variable must.
      const { value, grads } = tf.variableGrads(loss, vars);
      try {
        for (const [name, v] of named) {
          const g = grads[v.name];
          assert.ok(g !== undefined, `${kind}: no gradient for ${name}`);
          assert.ok(
            tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0,
            `${kind}: zero gradient for ${name}`,
          );
        }
      } finally {
        tf.dispose([value, grads]);
      }
    } finally {
      tf.dispose([x, labels]);
      disposeModule(model);
    }
  });
}
