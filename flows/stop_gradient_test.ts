import * as tf from "@tensorflow/tfjs-core";
import "@mfi/core"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { assertNoLeak } from "@mfi/core/testing";
import { detached, stopGradient } from "./stop_gradient.ts";

await tf.setBackend("cpu");

Deno.test("detached: variables read inside get no gradient; the value is exact; no leak", async () => {
  const w = tf.variable(tf.tensor1d([1, 2, 3]));
  const x = tf.tensor1d([0.5, -1, 2]);
  const f = () =>
    tf.sum(tf.mul(w, detached(() => tf.mul(tf.square(w), tf.exp(x)), [x]))) as tf.Scalar;
  await assertNoLeak(() => {
    const { value, grads } = tf.variableGrads(f, [w]);
    tf.dispose([value, ...Object.values(grads)]);
  }, { label: "a gradient through detached" });
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(f, [w]);
  // d/dw sum(w * c) with c = w^2 e^x held constant is c, not 3 w^2 e^x.
  const expected = tf.tidy(() => tf.mul(tf.square(w), tf.exp(x)));
  const g = grads[w.name].dataSync();
  expected.dataSync().forEach((e, i) => assert.ok(Math.abs(g[i] - e) < 1e-5));
  const sum = tf.tidy(() => tf.sum(tf.mul(w, expected)));
  assert.ok(Math.abs(value.dataSync()[0] - sum.dataSync()[0]) < 1e-4);
  tf.dispose([value, sum, ...Object.values(grads), expected]);
  assert.deepEqual(tf.memory().numTensors, before);
  assert.throws(() => detached(() => tf.scalar(1), []), /at least one input/);
  tf.dispose([w, x]);
});

Deno.test("stopGradient: identity forward, zero gradient backward", () => {
  const x = tf.tensor1d([1, -2]);
  const [y, g] = tf.tidy(() => {
    const y = stopGradient(x);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.add(tf.square(stopGradient(x)), x)))(x);
    return [y, g];
  });
  assert.deepEqual([...y.dataSync()], [1, -2]);
  assert.deepEqual([...g.dataSync()], [1, 1]);
  tf.dispose([x, y, g]);
});
