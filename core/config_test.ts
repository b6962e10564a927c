import assert from "node:assert/strict";
import { camelKey, type ConfigOf, flagName, loadYamlConfig, resolveConfig } from "./config.ts";

const SCHEMA = {
  model: { type: "string", choices: ["resnet18", "resnet50"], default: "resnet18" },
  epochs: { type: "number", integer: true, min: 1, default: 200, doc: "training epochs" },
  lr: { type: "number", min: 0, default: 0.1 },
  batchSize: { type: "number", integer: true, min: 1, max: 4096, default: 128 },
  nesterov: { type: "boolean", default: true },
  subset: { type: "number", integer: true, min: 1 },
  stages: { type: "number[]", integer: true, min: 1, max: 4, default: [1, 2, 3] },
  out: { type: "string", required: true },
} as const;

Deno.test("resolveConfig applies defaults, then layers in order, and freezes", () => {
  const c: ConfigOf<typeof SCHEMA> = resolveConfig(SCHEMA, [
    { source: "a.yaml", values: { "batch-size": 64, lr: 0.05, out: "runs/a" } },
    { source: "the command line", values: { batch_size: 32, stages: [4] } },
  ]);
  assert.deepEqual(c, {
    model: "resnet18",
    epochs: 200,
    lr: 0.05,
    batchSize: 32,
    nesterov: true,
    stages: [4],
    out: "runs/a",
  });
  assert.equal(c.subset, undefined);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.stages));
  assert.throws(() => {
    (c as { lr: number }).lr = 1;
  }, TypeError);
});

Deno.test("resolveConfig rejects unknown keys, wrong types, out-of-range values and missing keys", () => {
  const run = (values: Record<string, unknown>) =>
    resolveConfig(SCHEMA, [{ source: "run.yaml", values: { out: "o", ...values } }]);
  assert.throws(
    () => run({ learningRate: 0.1 }),
    /run\.yaml: unknown key "learningRate"\. Valid keys: model, epochs, lr, batchSize/,
  );
  assert.throws(() => run({ epochs: "10" }), /"epochs" must be an integer in \[1, inf\], got "10"/);
  assert.throws(() => run({ epochs: 2.5 }), /"epochs" must be an integer/);
  assert.throws(() => run({ epochs: 0 }), /"epochs" must be an integer in \[1, inf\], got 0/);
  assert.throws(() => run({ lr: NaN }), /"lr" must be a number/);
  assert.throws(() => run({ model: "vgg" }), /"model" must be one of resnet18, resnet50/);
  assert.throws(() => run({ nesterov: "yes" }), /"nesterov" must be true or false/);
  assert.throws(() => run({ stages: [1, 5] }), /"stages" must be a list of integers in \[1, 4\]/);
  assert.throws(() => run({ stages: 1 }), /"stages" must be a list/);
  assert.throws(() => run({ batchSize: 8, "batch-size": 16 }), /same key; give it once/);
  assert.throws(() => run({ toString: 1 }), /unknown key "toString"/);
  assert.throws(() => resolveConfig(SCHEMA, []), /"out" is required .* --out/);
  assert.throws(
    () => resolveConfig({ x: { type: "number", min: 1, default: 0 } }, []),
    /default of "x"/,
  );
});

Deno.test("loadYamlConfig reads mappings and rejects other documents", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.yaml`, "lr: 5e-4\nbatch-size: 64\nstages: [1, 2]\nout: r\n");
  const values = await loadYamlConfig(`${dir}/a.yaml`);
  assert.deepEqual(values, { lr: 5e-4, "batch-size": 64, stages: [1, 2], out: "r" });
  assert.equal(resolveConfig(SCHEMA, [{ source: "a.yaml", values }]).lr, 5e-4);
  await Deno.writeTextFile(`${dir}/b.yaml`, "- 1\n- 2\n");
  await assert.rejects(loadYamlConfig(`${dir}/b.yaml`), /must hold a mapping/);
  await Deno.writeTextFile(`${dir}/c.yaml`, "a: [1,\n");
  await assert.rejects(loadYamlConfig(`${dir}/c.yaml`), /Cannot parse config file/);
  await assert.rejects(loadYamlConfig(`${dir}/missing.yaml`), /Cannot read config file/);
  await Deno.writeTextFile(`${dir}/empty.yaml`, "");
  assert.deepEqual(await loadYamlConfig(`${dir}/empty.yaml`), {});
  await Deno.remove(dir, { recursive: true });
});

Deno.test("key spellings", () => {
  assert.equal(camelKey("limit-test"), "limitTest");
  assert.equal(flagName("limitTest"), "limit-test");
});
