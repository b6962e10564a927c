import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { countParameters, disposeModule } from "@mfi/core";
import { buildResNet } from "@mfi/resnet";
import {
  buildModel,
  countSpecParameters,
  MODEL_SPEC_FORMAT,
  replaceStages,
  resnetSpec,
  specOf,
  validateModelSpec,
} from "./model_spec.ts";

await tf.setBackend("cpu");

Deno.test("countSpecParameters matches the published CIFAR ResNet table", () => {
  const table: Array<[string, number, number]> = [
    ["resnet18", 10, 11_173_962],
    ["resnet34", 10, 21_282_122],
    ["resnet34", 100, 21_328_292],
    ["resnet50", 10, 23_520_842],
    ["resnet50", 100, 23_705_252],
    ["resnet101", 10, 42_512_970],
  ];
  for (const [arch, classes, total] of table) {
    assert.equal(countSpecParameters(resnetSpec(arch as "resnet50", classes)).total, total, arch);
  }
  const r50 = countSpecParameters(resnetSpec("resnet50", 10));
  assert.deepEqual(r50.stages, [215_808, 1_219_584, 7_098_368, 14_964_736]);
  assert.equal(r50.stem, 1_856);
});

Deno.test("validateModelSpec rejects bad specs naming the key", () => {
  const good = resnetSpec("resnet18", 10, 0.25);
  const cases: Array<[unknown, RegExp]> = [
    [null, /must be an object/],
    [{ ...good, extra: 1 }, /unknown key "extra"/],
    [{ ...good, format: "v0" }, /"format"/],
    [{ ...good, family: "dragon" }, /"family"/],
    [{ ...good, classes: "10" }, /"classes" must be a number/],
    [{ ...good, classes: 0 }, /"classes" must be a positive integer/],
    [{ ...good, width: -1 }, /"width"/],
    [{ ...good, arch: "resnet9" }, /resnet9/],
    [{ ...good, stages: good.stages.slice(1) }, /one entry per stage/],
    [{ ...good, stages: [{ kind: "conv" }, ...good.stages.slice(1)] }, /stages\[0\]\.kind/],
    [
      { ...good, stages: [{ kind: "residual", depth: 2 }, ...good.stages.slice(1)] },
      /stages\[0\]\.depth/,
    ],
    [{ ...good, family: "meta" }, /"meta" needs every stage meanflow/],
    [
      { ...good, stages: [...good.stages.slice(1), { kind: "meanflow", config: { hidden: 2 } }] },
      /stages\[3\]\.config/,
    ],
  ];
  for (const [raw, pattern] of cases) assert.throws(() => validateModelSpec(raw), pattern);
  const { format: _f, ...noFormat } = good;
  assert.throws(() => validateModelSpec(noFormat), /"format" is missing/);
  assert.equal(validateModelSpec(JSON.parse(JSON.stringify(good))).format, MODEL_SPEC_FORMAT);
  assert.ok(Object.isFrozen(good) && Object.isFrozen(good.stages));
});

Deno.test("replaceStages checks indices", () => {
  const base = resnetSpec("resnet18", 10, 0.25);
  assert.throws(() => replaceStages(base, { 4: { kind: "residual" } }, "hybrid"), /stage 4/);
  assert.equal(replaceStages(base, { 0: { kind: "residual" } }, "hybrid").family, "hybrid");
});

Deno.test("buildModel of a residual spec equals buildResNet with the same seed", () => {
  const spec = resnetSpec("resnet18", 10, 1 / 16);
  const a = buildModel(spec, { seed: 7 });
  const b = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 7 });
  try {
    assert.equal(specOf(a), spec);
    assert.throws(() => specOf(b), /not built by buildModel/);
    assert.equal(countParameters(a), countSpecParameters(spec).total);
    const va = a.namedVariables();
    const vb = b.namedVariables();
    assert.deepEqual(va.map(([n]) => n), vb.map(([n]) => n));
    for (let i = 0; i < va.length; i++) {
      assert.deepEqual(va[i][1].dataSync(), vb[i][1].dataSync(), va[i][0]);
    }
  } finally {
    disposeModule(a);
    disposeModule(b);
  }
});
