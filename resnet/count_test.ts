import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { countParameters, disposeModule } from "@mfi/core";
import { countResNetParameters } from "./count.ts";
import { buildResNet } from "./resnet.ts";
import type { ResNetArchName } from "./arch.ts";

await tf.setBackend("cpu");

// docs/method.md section 2 (stem 1,856 in every model).
const TABLE: Array<[ResNetArchName, number, number, number[], number]> = [
  ["resnet18", 10, 11_173_962, [147_968, 525_568, 2_099_712, 8_393_728], 5_130],
  ["resnet34", 10, 21_282_122, [221_952, 1_116_416, 6_822_400, 13_114_368], 5_130],
  ["resnet34", 100, 21_328_292, [221_952, 1_116_416, 6_822_400, 13_114_368], 51_300],
  ["resnet50", 10, 23_520_842, [215_808, 1_219_584, 7_098_368, 14_964_736], 20_490],
  ["resnet50", 100, 23_705_252, [215_808, 1_219_584, 7_098_368, 14_964_736], 204_900],
  ["resnet101", 10, 42_512_970, [215_808, 1_219_584, 26_090_496, 14_964_736], 20_490],
  // Not in docs/method.md: its 10-class totals with the 100-class head (512 * 100 + 100 or 2048 * 100 + 100).
  ["resnet18", 100, 11_220_132, [147_968, 525_568, 2_099_712, 8_393_728], 51_300],
  ["resnet101", 100, 42_697_380, [215_808, 1_219_584, 26_090_496, 14_964_736], 204_900],
];

for (const [arch, classes, total, stages, head] of TABLE) {
  Deno.test(`countResNetParameters matches docs/method.md: ${arch}, ${classes} classes`, () => {
    assert.deepEqual(countResNetParameters(arch, { classes }), {
      total,
      stem: 1_856,
      stages,
      head,
    });
  });
}

Deno.test("countResNetParameters: every depth at 100 classes differs from 10 only in the head", () => {
  for (const arch of ["resnet18", "resnet34", "resnet50", "resnet101"] as const) {
    const a = countResNetParameters(arch, { classes: 10 });
    const b = countResNetParameters(arch, { classes: 100 });
    const features = a.head / 10 - 1;
    assert.equal(b.head, features * 100 + 100);
    assert.deepEqual(b.stages, a.stages);
    assert.equal(b.total - a.total, b.head - a.head);
  }
});

Deno.test("countResNetParameters equals countParameters of the built model", () => {
  const cases: Array<[ResNetArchName, number, number]> = [
    ["resnet18", 1 / 16, 10],
    ["resnet34", 0.1, 100],
    ["resnet50", 1 / 16, 100],
    ["resnet101", 0.05, 10],
    ["resnet50", 0.3, 10],
  ];
  for (const [arch, width, classes] of cases) {
    const model = buildResNet({ arch, classes, width, seed: 0 });
    const counted = countResNetParameters(arch, { classes, width });
    assert.equal(countParameters(model), counted.total, `${arch} width ${width}`);
    assert.equal(countParameters(model.stem), counted.stem);
    assert.deepEqual(model.stages.map((s) => countParameters(s.module)), counted.stages);
    assert.equal(countParameters(model.head), counted.head);
    disposeModule(model);
  }
  assert.throws(() => countResNetParameters("resnet18", { classes: 0 }), /classes/);
  assert.throws(() => countResNetParameters("resnet18", { classes: 10, width: 0 }), /width/);
});
