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

for (const training of [true, false]) {
  Deno.test(`BatchNorm with residual and ReLU (${training ? "training" : "inference"}): gradients match autodiff of relu(bn(x) + r)`, () => {
    const shape = [3, 4, 4, 5];
    const size = shape.reduce((a, b) => a * b);
    const rng = new Rng(8);
    const bn = new BatchNorm({ channels: 5 });
    bn.gamma.assign(tf.tensor1d(rng.normalArray(5, 0.5, 1)));
    bn.beta.assign(tf.tensor1d(rng.normalArray(5)));
    bn.runningMean.assign(tf.tensor1d(rng.normalArray(5)));
    bn.runningVar.assign(tf.tensor1d(rng.normalArray(5, 0.3, 2)));
    const x = tf.tensor(rng.normalArray(size, 1, 2), shape);
    const r = tf.tensor(rng.normalArray(size), shape);
    const w = tf.tensor(rng.normalArray(size), shape);
    const rm = bn.runningMean.dataSync().slice();
    const rv = bn.runningVar.dataSync().slice();
    const grads = (f: (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, rr: tf.Tensor) => tf.Tensor) =>
      tf.tidy(() =>
        tf.grads((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, rr: tf.Tensor) =>
          tf.sum(tf.mul(f(xx, g, b, rr), w))
        )([x, bn.gamma, bn.beta, r]).map((t) => t.dataSync())
      );
    const got = grads((xx, _g, _b, rr) => bn.apply(xx, { training, residual: rr, relu: true }));
    // The reference reads the running statistics as they were before the fused call.
    const want = grads((xx, g, b, rr) => {
      const norm = training ? reference(xx, g, b, 1e-5) : tf.add(
        tf.mul(tf.div(tf.sub(xx, tf.tensor1d(rm)), tf.sqrt(tf.add(tf.tensor1d(rv), 1e-5))), g),
        b,
      );
      return tf.relu(tf.add(norm, rr));
    });
    for (let i = 0; i < 4; i++) {
      assert.ok(maxRel(got[i], want[i]) < 1e-4, `input ${i}: ${maxRel(got[i], want[i])}`);
    }
    tf.dispose([x, r, w]);
    disposeModule(bn);
  });
}

Deno.test("BatchNorm rejects an input with other channels and a residual of another shape", () => {
  const bn = new BatchNorm({ channels: 3 });
  tf.tidy(() => {
    const x = tf.ones([2, 2, 2, 3]);
    assert.throws(
      () => bn.apply(tf.ones([2, 2, 2, 4]), { training: true }),
      /input has 4 channels \(shape \[2,2,2,4\]\), the layer was built for 3/,
    );
    for (const training of [true, false]) {
      assert.throws(
        () => bn.apply(x, { training, residual: tf.ones([2, 2, 3]) }),
        /residual has shape \[2,2,3\], expected the input's \[2,2,2,3\]/,
      );
    }
  });
  disposeModule(bn);
});
