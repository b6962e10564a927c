import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { BatchNorm, countParameters, deriveSeed, disposeModule, type Module } from "@mfi/core";
import type { ResidualStage } from "./stage.ts";
import { buildResNet, validateResNetConfig } from "./resnet.ts";
import { ResNetStem } from "./stem.ts";
import { ClassifierHead } from "./head.ts";
import { Bottleneck } from "./blocks.ts";
import { countResNetParameters } from "./count.ts";
import { resnet18, RESNET_ARCHS, type ResNetArchName } from "./arch.ts";
import { assertNoLeak } from "@mfi/core/testing";

await tf.setBackend("cpu");

// Table-driven over every architecture of the table (timm's test_models.py).
const ARCHS = Object.keys(RESNET_ARCHS) as ResNetArchName[];
const WIDTH = 1 / 16;

/** Every BatchNorm reachable from a module's fields (blocks, stages, shortcuts). */
function batchNorms(root: unknown): BatchNorm[] {
  const found: BatchNorm[] = [];
  const seen = new Set<unknown>();
  const walk = (o: unknown): void => {
    if (typeof o !== "object" || o === null || seen.has(o) || o instanceof tf.Tensor) return;
    seen.add(o);
    if (o instanceof BatchNorm) {
      found.push(o);
      return;
    }
    for (const v of Object.values(o)) walk(v);
  };
  walk(root);
  return found;
}

function images(seed: number): tf.Tensor4D {
  return tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", seed) as tf.Tensor4D;
}

for (const arch of ARCHS) {
  Deno.test(`${arch}: shape, finite outputs, gradients reach every parameter, no leak`, async () => {
    const model = buildResNet({ arch, classes: 10, width: WIDTH, seed: 7 });
    const x = images(1);
    const labels = tf.oneHot(tf.tensor1d([3, 8], "int32"), 10);
    try {
      assert.equal(
        countParameters(model),
        countResNetParameters(arch, { classes: 10, width: WIDTH }).total,
      );
      assert.equal(
        batchNorms(model).length * 4,
        model.namedVariables().filter(([n]) => /\.bn\d?\./.test(n)).length,
      );
      for (const training of [false, true]) {
        const y = tf.tidy(() => model.apply(x, { training }));
        assert.deepEqual(y.shape, [2, 10]);
        assert.ok(Array.from(y.dataSync()).every(Number.isFinite), `${arch} training=${training}`);
        y.dispose();
      }
      const named = model.namedVariables().filter(([, v]) => v.trainable);
      const vars = named.map(([, v]) => v);
      const loss = () =>
        tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true })) as tf.Scalar;
      const { value, grads } = tf.variableGrads(loss, vars);
      for (const [name, v] of named) {
        const g = grads[v.name];
        assert.ok(g !== undefined, `no gradient for ${name}`);
        assert.deepEqual(g.shape, v.shape, name);
        assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0, `zero gradient for ${name}`);
      }
      tf.dispose([value, grads]);
      const opt = tf.train.sgd(0.01);
      const step = () => {
        const { value, grads } = tf.variableGrads(loss, vars);
        opt.applyGradients(grads);
        tf.dispose([value, grads]);
        tf.tidy(() => {
          model.apply(x, { training: false });
        });
      };
      await assertNoLeak(step, { label: `${arch} training step` });
      opt.dispose();
    } finally {
      tf.dispose([x, labels]);
      disposeModule(model);
    }
  });

  Deno.test(`${arch}: train and eval modes differ only through batch norm`, () => {
    const model = buildResNet({ arch, classes: 10, width: WIDTH, seed: 3 });
    const x = images(2);
    const bns = batchNorms(model);
    const stats = new Map<BatchNorm, { mean: tf.Tensor; variance: tf.Tensor }>();
    for (const bn of bns) {
      const apply = BatchNorm.prototype.apply;
      bn.apply = (input: tf.Tensor, options) => {
        if (options.training) {
          const m = tf.moments(input, [0, 1, 2]);
          stats.set(bn, { mean: tf.keep(m.mean), variance: tf.keep(m.variance) });
        }
        return apply.call(bn, input, options);
      };
    }
    try {
      const train = tf.tidy(() => model.apply(x, { training: true }));
      assert.equal(stats.size, bns.length);
      for (const [bn, { mean, variance }] of stats) {
        bn.runningMean.assign(mean);
        bn.runningVar.assign(variance);
      }
      const evalOut = tf.tidy(() => model.apply(x, { training: false }));
      const t = train.dataSync();
      const e = evalOut.dataSync();
      const scale = Math.max(...Array.from(t, Math.abs));
      for (let i = 0; i < t.length; i++) {
        assert.ok(Math.abs(t[i] - e[i]) <= 1e-4 * scale, `logit ${i}: train ${t[i]} eval ${e[i]}`);
      }
      // With the default running statistics (0 mean, unit variance) eval differs from train.
      for (const bn of bns) {
        bn.runningMean.assign(tf.zerosLike(bn.runningMean));
        bn.runningVar.assign(tf.onesLike(bn.runningVar));
      }
      const fresh = tf.tidy(() => model.apply(x, { training: false }));
      const f = fresh.dataSync();
      assert.ok(f.some((v, i) => Math.abs(v - t[i]) > 1e-3 * scale));
      tf.dispose([train, evalOut, fresh]);
    } finally {
      for (const { mean, variance } of stats.values()) tf.dispose([mean, variance]);
      x.dispose();
      disposeModule(model);
    }
  });
}

Deno.test("buildResNet: same config gives the same weights, different seeds differ", () => {
  const config = { arch: "resnet18", classes: 10, width: WIDTH, seed: 5 } as const;
  const a = buildResNet(config);
  const b = buildResNet(JSON.parse(JSON.stringify(a.config)));
  const c = buildResNet({ ...config, seed: 6 });
  const av = a.namedVariables();
  const bv = b.namedVariables();
  const cv = c.namedVariables();
  av.forEach(([name, v], i) => {
    assert.equal(bv[i][0], name);
    assert.deepEqual(v.dataSync(), bv[i][1].dataSync(), name);
  });
  assert.notDeepEqual(av[0][1].dataSync(), cv[0][1].dataSync());
  // Different layers of one model get different initialisations.
  assert.notDeepEqual(
    a.namedVariables().find(([n]) => n === "stages.0.blocks.0.conv2.weight")![1].dataSync(),
    a.namedVariables().find(([n]) => n === "stages.0.blocks.1.conv2.weight")![1].dataSync(),
  );
  [a, b, c].forEach(disposeModule);
});

Deno.test("buildResNet: architecture data, width rounding and class count", () => {
  const model = buildResNet({
    arch: { ...resnet18, depths: [1, 1, 1, 1], widths: [10, 20, 30, 40] },
    classes: 7,
    width: 0.5,
    seed: 0,
  });
  assert.deepEqual(model.stageInfos().map((s) => [s.inChannels, s.outChannels, s.stride]), [
    [32, 5, 1],
    [5, 10, 2],
    [10, 15, 2],
    [15, 20, 2],
  ]);
  const y = tf.tidy(() => model.apply(tf.zeros([1, 8, 8, 3]), { training: false }));
  assert.deepEqual(y.shape, [1, 7]);
  y.dispose();
  disposeModule(model);
});

Deno.test("ResNet-18 parameter names and shapes are stable (snapshot)", async () => {
  const model = buildResNet({ arch: "resnet18", classes: 10, width: WIDTH, seed: 0 });
  const actual = model.namedVariables().map(([n, v]) =>
    `${n} [${v.shape.join(",")}]${v.trainable ? "" : " buffer"}`
  );
  const expected =
    (await Deno.readTextFile(new URL("testdata/resnet18_names.txt", import.meta.url)))
      .trim().split("\n");
  assert.deepEqual(actual, expected);
  disposeModule(model);
});

Deno.test("validateResNetConfig rejects bad configs, naming the key", () => {
  const ok = { arch: "resnet50", classes: 10, width: 1, seed: 0 };
  const cases: Array<[unknown, RegExp]> = [
    [null, /expected an object/],
    [[1], /expected an object/],
    [{ ...ok, depth: 50 }, /unknown key "depth"/],
    [{ classes: 10, seed: 0 }, /"arch" is missing/],
    [{ arch: "resnet50", seed: 0 }, /"classes" is missing/],
    [{ arch: "resnet50", classes: 10 }, /"seed" is missing/],
    [{ ...ok, arch: "resnet51" }, /arch "resnet51" is unknown/],
    [{ ...ok, arch: 50 }, /arch must be/],
    [{ ...ok, classes: "10" }, /"classes" must be a number/],
    [{ ...ok, classes: 0 }, /"classes" must be a positive integer/],
    [{ ...ok, classes: 10.8 }, /"classes" must be a positive integer/],
    [{ ...ok, width: "1" }, /"width" must be a number/],
    [{ ...ok, width: 0 }, /"width" must be a positive number/],
    [{ ...ok, width: Infinity }, /"width" must be a positive number/],
    [{ ...ok, seed: null }, /"seed" must be a number/],
    [{ ...ok, seed: 1.5 }, /"seed" must be an integer/],
    [{ ...ok, seed: -1 }, /"seed" must be an integer/],
    [{ ...ok, arch: { ...resnet18, extra: 1 } }, /unknown key arch\.extra/],
    [{ ...ok, arch: { ...resnet18, block: "wide" } }, /arch\.block/],
    [{ ...ok, arch: { ...resnet18, depths: [2, 2, 2] } }, /one entry per stage/],
    [{ ...ok, arch: { ...resnet18, depths: [2, 0, 2, 2] } }, /arch\.depths\[1\]/],
    [{ ...ok, arch: { ...resnet18, strides: "1222" } }, /arch\.strides/],
    [
      { ...ok, arch: { block: "basic", depths: [1], widths: [1], strides: [1] } },
      /arch\.stem is missing/,
    ],
  ];
  for (const [raw, pattern] of cases) {
    assert.throws(() => validateResNetConfig(raw), pattern, JSON.stringify(raw));
  }
  const config = validateResNetConfig({ arch: { ...resnet18 }, classes: 100, seed: 0 });
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.arch));
  assert.equal(config.width, 1);
  assert.throws(() => buildResNet({ ...ok, classes: -1 } as never), /classes/);
});

Deno.test("buildResNet's seed scheme is the documented contract", () => {
  const seed = 12;
  const model = buildResNet({ arch: "resnet50", classes: 10, width: WIDTH, seed });
  const stem = new ResNetStem({ inChannels: 3, outChannels: 4, seed: deriveSeed(seed, "stem") });
  const block = new Bottleneck({
    inChannels: 16,
    width: 8,
    stride: 2,
    seed: deriveSeed(seed, "stages", 1, "blocks", 0),
  });
  const head = new ClassifierHead({ inChannels: 128, classes: 10, seed: deriveSeed(seed, "head") });
  const same = (a: Module, b: Module) =>
    a.namedVariables().forEach(([n, v], i) => {
      assert.equal(b.namedVariables()[i][0], n);
      assert.deepEqual(v.dataSync(), b.namedVariables()[i][1].dataSync(), n);
    });
  same(stem, model.stem);
  same(block, (model.stages[1].module as ResidualStage).blocks[0]);
  same(head, model.head);
  [stem, block, head, model].forEach(disposeModule);
});
