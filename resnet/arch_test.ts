import assert from "node:assert/strict";
import { resnet101, RESNET_ARCHS, resolveArch, scaleChannels } from "./arch.ts";

Deno.test("scaleChannels rounds to the nearest integer, at least 1", () => {
  assert.deepEqual([64, 128, 256, 512].map((c) => scaleChannels(c, 0.25)), [16, 32, 64, 128]);
  assert.deepEqual([64, 128, 256, 512].map((c) => scaleChannels(c, 1 / 16)), [4, 8, 16, 32]);
  assert.equal(scaleChannels(64, 1), 64);
  assert.equal(scaleChannels(10, 0.25), 3); // 2.5 rounds up
  assert.equal(scaleChannels(3, 0.1), 1);
  for (const bad of [0, -1, NaN, Infinity, "1" as unknown as number]) {
    assert.throws(() => scaleChannels(64, bad), /width must be a positive number/);
  }
});

Deno.test("predefined architectures are frozen data", () => {
  assert.deepEqual(Object.keys(RESNET_ARCHS), ["resnet18", "resnet34", "resnet50", "resnet101"]);
  assert.deepEqual(resnet101.depths, [3, 4, 23, 3]);
  for (const arch of Object.values(RESNET_ARCHS)) {
    assert.ok(
      Object.isFrozen(arch) && Object.isFrozen(arch.depths) && Object.isFrozen(arch.widths),
    );
    assert.deepEqual(resolveArch({ ...arch }), arch);
  }
});
