import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { disposeModule } from "../module.ts";
import { lossOf, TinyResNet } from "./_tiny_resnet.ts";
import { relativeError, values } from "./_test_util.ts";
import { registerWasmTrainingKernels } from "./register.ts";

const BATCH = 4;
const xv = values(BATCH * 12 * 12 * 3, 11);
const labels = [1, 7, 3, 1];

async function gradients(backend: "cpu" | "wasm"): Promise<Map<string, Float32Array>> {
  await tf.setBackend(backend);
  if (backend === "wasm") registerWasmTrainingKernels();
  const model = new TinyResNet([4, 8, 8], 10, 5);
  try {
    const named = model.namedVariables();
    const trainable = named.filter(([, v]) => v.trainable);
    const { grads, value } = tf.tidy(() => {
      const x = tf.tensor4d(xv, [BATCH, 12, 12, 3]);
      const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10);
      return tf.variableGrads(() => lossOf(model, x, y), trainable.map(([, v]) => v));
    });
    const out = new Map<string, Float32Array>();
    out.set("loss", value.dataSync() as Float32Array);
    for (const [name, v] of trainable) out.set(name, grads[v.name].dataSync() as Float32Array);
    // Running statistics were updated in training mode: compare them too.
    for (const [name, v] of named) if (!v.trainable) out.set(name, v.dataSync() as Float32Array);
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  } finally {
    disposeModule(model);
    await tf.setBackend("cpu");
  }
}

Deno.test("a small ResNet's training gradients on wasm match the cpu backend", async () => {
  const cpu = await gradients("cpu");
  const wasm = await gradients("wasm");
  assert.equal(wasm.size, cpu.size);
  let worst = 0;
  let worstName = "";
  for (const [name, c] of cpu) {
    const e = relativeError(wasm.get(name)!, c);
    if (e > worst) [worst, worstName] = [e, name];
  }
  assert.ok(cpu.has("blocks.1.shortcut.0.weight"), "the network has a projection shortcut");
  assert.ok(worst <= 1e-5, `worst relative error ${worst} at ${worstName}`);
});

Deno.test("wasm training steps do not leak tensors", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  const model = new TinyResNet([4, 8], 10, 6);
  const vars = model.namedVariables().filter(([, v]) => v.trainable).map(([, v]) => v);
  const step = () =>
    tf.tidy(() => {
      const x = tf.tensor4d(xv, [BATCH, 12, 12, 3]);
      const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10);
      const { grads, value } = tf.variableGrads(() => lossOf(model, x, y), vars);
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.01)));
      return value.dataSync()[0];
    });
  try {
    step();
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 3; i++) assert.ok(Number.isFinite(step()));
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.memory().numBytes, bytes);
  } finally {
    disposeModule(model);
    await tf.setBackend("cpu");
  }
});
