import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { BatchNorm } from "./batch_norm.ts";
import { Rng } from "./random.ts";
import { disposeModule } from "./module.ts";
import { assertNoLeak } from "./testing.ts";

await tf.setBackend("cpu");

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / Math.max(s, 1e-30);
}

/** Autodiff of the textbook formula: the independent reference. */
function reference(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const axes = x.shape.map((_, i) => i).slice(0, -1);
  const mean = tf.mean(x, axes);
  const variance = tf.mean(tf.square(tf.sub(x, mean)), axes);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), gamma), beta);
}

for (const shape of [[4, 3, 5, 6], [16, 7], [1, 2, 2, 3]]) {
  Deno.test(`BatchNorm training gradients match autodiff of the formula: [${shape}]`, () => {
    const c = shape[shape.length - 1];
    const size = shape.reduce((a, b) => a * b);
    const rng = new Rng(3);
    const bn = new BatchNorm({ channels: c });
    bn.gamma.assign(tf.tensor1d(rng.normalArray(c, 1, 1)));
    bn.beta.assign(tf.tensor1d(rng.normalArray(c)));
    const x = tf.tensor(rng.normalArray(size, 2, 0.5), shape);
    const w = tf.tensor(rng.normalArray(size), shape); // random upstream gradient
    const loss = (f: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
      tf.grads((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(xx, g, b), w)))([
        x,
        bn.gamma,
        bn.beta,
      ]);
    const got = tf.tidy(() =>
      loss((xx, g, b) => {
        assert.equal(g, bn.gamma);
        assert.equal(b, bn.beta);
        return bn.apply(xx, { training: true });
      }).map((t) => t.dataSync())
    );
    const want = tf.tidy(() =>
      loss((xx, g, b) => reference(xx, g, b, 1e-5)).map((t) => t.dataSync())
    );
    for (let i = 0; i < 3; i++) {
      assert.ok(maxRel(got[i], want[i]) < 1e-4, `input ${i}: ${maxRel(got[i], want[i])}`);
    }
    tf.dispose([x, w]);
    disposeModule(bn);
  });
}

Deno.test("BatchNorm training step through variableGrads updates running stats once, no leak", async () => {
  const bn = new BatchNorm({ channels: 3 });
  const x = tf.tensor4d(new Rng(1).normalArray(2 * 2 * 2 * 3, 1, 4), [2, 2, 2, 3]);
  const step = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.square(bn.apply(x, { training: true }))) as tf.Scalar,
        [bn.gamma, bn.beta],
      );
      return grads[bn.gamma.name].dataSync()[0];
    });
  step();
  const mean0 = bn.runningMean.dataSync()[0];
  const xm = tf.tidy(() => tf.mean(x, [0, 1, 2]).dataSync()[0]);
  assert.ok(Math.abs(mean0 - 0.1 * xm) < 1e-5, `running mean ${mean0} vs ${0.1 * xm}`);
  await assertNoLeak(step, { label: "BatchNorm training step" });
  tf.dispose(x);
  disposeModule(bn);
});
