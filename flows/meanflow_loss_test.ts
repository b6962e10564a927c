import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { assertNoLeak } from "@mfi/core/testing";
import { Rng } from "@mfi/core";
import { meanFlowLoss } from "./meanflow_loss.ts";
import { sampleTimes } from "./time_sampler.ts";
import {
  type AverageVelocityField,
  type TimeInput,
  VelocityNetwork,
  type VelocityTangent,
} from "./velocity_network.ts";

await tf.setBackend("cpu");

const col = (x: TimeInput, rows: number): tf.Tensor =>
  typeof x === "number" ? tf.fill([rows, 1], x) : tf.reshape(x, [-1, 1]);

/**
 * Deterministic affine coupling x0 = a x1 + b: straight, non-crossing paths with constant speed,
 * so the average velocity is u(z, r, t) = (1 - a)(z - (1 - t) b) / (a + (1 - a) t) - b.
 */
class AffineCouplingField implements AverageVelocityField {
  constructor(readonly a: tf.Variable, readonly b: tf.Variable) {}
  velocity(z: tf.Tensor, _r: TimeInput, t: TimeInput): tf.Tensor {
    return tf.tidy(() => {
      const tc = col(t, z.shape[0]);
      const oneMinusA = tf.sub(1, this.a);
      const d = tf.add(this.a, tf.mul(oneMinusA, tc));
      return tf.sub(tf.div(tf.mul(oneMinusA, tf.sub(z, tf.mul(tf.sub(1, tc), this.b))), d), this.b);
    });
  }
  jvp(z: tf.Tensor, r: TimeInput, t: TimeInput, tan: VelocityTangent) {
    return tf.tidy(() => {
      const tc = col(t, z.shape[0]);
      const dt = col(tan.t, z.shape[0]);
      const oneMinusA = tf.sub(1, this.a);
      const d = tf.add(this.a, tf.mul(oneMinusA, tc));
      const num = tf.sub(z, tf.mul(tf.sub(1, tc), this.b));
      const dNum = tf.add(tan.z, tf.mul(dt, this.b));
      const du = tf.mul(
        oneMinusA,
        tf.sub(tf.div(dNum, d), tf.div(tf.mul(num, tf.mul(oneMinusA, dt)), tf.square(d))),
      );
      return { u: this.velocity(z, r, t), du };
    });
  }
}

/**
 * Independent coupling of x1 ~ N(0, I) and x0 ~ N(mu, sigma^2 I): the marginal flow is affine,
 * z_s = m(s) + s(s)/s(t) (z_t - m(t)) with m(t) = (1 - t) mu, s(t)^2 = (1 - t)^2 sigma^2 + t^2,
 * so u(z, r, t) = (z - m(t)) (1 - s(r)/s(t)) / (t - r) - mu (limit s'(t)/s(t) at r = t):
 * curved marginal paths, an average velocity that depends on r.
 */
class GaussianField implements AverageVelocityField {
  constructor(readonly mu: tf.Variable, readonly sigma: tf.Variable) {}
  #s(t: tf.Tensor): tf.Tensor {
    return tf.sqrt(tf.add(tf.square(tf.mul(tf.sub(1, t), this.sigma)), tf.square(t)));
  }
  #g(r: tf.Tensor, t: tf.Tensor): tf.Tensor {
    const st = this.#s(t);
    const ds = tf.div(tf.sub(t, tf.mul(tf.sub(1, t), tf.square(this.sigma))), st); // s'(t)
    const gap = tf.sub(t, r);
    const safe = tf.maximum(gap, 1e-6);
    const g = tf.div(tf.sub(1, tf.div(this.#s(r), st)), safe);
    return tf.where(tf.greater(gap, 1e-4), g, tf.div(ds, st));
  }
  velocity(z: tf.Tensor, r: TimeInput, t: TimeInput): tf.Tensor {
    return tf.tidy(() => {
      const n = z.shape[0];
      const tc = col(t, n);
      const m = tf.mul(tf.sub(1, tc), this.mu);
      return tf.sub(tf.mul(tf.sub(z, m), this.#g(col(r, n), tc)), this.mu);
    });
  }
  jvp(z: tf.Tensor, r: TimeInput, t: TimeInput, tan: VelocityTangent) {
    return tf.tidy(() => {
      // Tangent (dz, 0, 1): d/dt [(z - m(t)) g(r, t)] = (dz + mu) g + (z - m(t)) dg/dt.
      const n = z.shape[0];
      const rc = col(r, n);
      const tc = col(t, n);
      const st = this.#s(tc);
      const sr = this.#s(rc);
      const ds = tf.div(tf.sub(tc, tf.mul(tf.sub(1, tc), tf.square(this.sigma))), st);
      const gap = tf.maximum(tf.sub(tc, rc), 1e-6);
      const dg = tf.sub(
        tf.div(tf.div(tf.mul(sr, ds), tf.square(st)), gap),
        tf.div(tf.sub(1, tf.div(sr, st)), tf.square(gap)),
      );
      const m = tf.mul(tf.sub(1, tc), this.mu);
      const du = tf.add(
        tf.mul(tf.add(tan.z, this.mu), this.#g(rc, tc)),
        tf.mul(tf.sub(z, m), tf.where(tf.greater(tf.sub(tc, rc), 1e-4), dg, tf.zerosLike(dg))),
      );
      return { u: this.velocity(z, r, t), du };
    });
  }
}

Deno.test("affine coupling: at the exact solution loss and gradient vanish; elsewhere they do not", () => {
  const rows = 256;
  const x1 = tf.randomNormal([rows, 2], 0, 1, "float32", 3);
  const aTrue = 0.4;
  const bTrue = tf.tensor1d([1.5, -0.5]);
  const x0 = tf.add(tf.mul(aTrue, x1), bTrue);
  const lossAndGrad = (a: number, b: number[]) => {
    const field = new AffineCouplingField(tf.variable(tf.scalar(a)), tf.variable(tf.tensor1d(b)));
    const { value, grads } = tf.variableGrads(
      () => meanFlowLoss(field, x0, x1, { rng: new Rng(1), distinctFraction: 0.5 }).loss,
      [field.a, field.b],
    );
    const out = {
      loss: value.dataSync()[0],
      grad: Math.hypot(...Object.values(grads).flatMap((g) => [...g.dataSync()])),
    };
    tf.dispose([value, ...Object.values(grads), field.a, field.b]);
    return out;
  };
  const exact = lossAndGrad(aTrue, [1.5, -0.5]);
  assert.ok(exact.loss < 1e-6, `loss at the solution ${exact.loss}`);
  assert.ok(exact.grad < 1e-3, `gradient at the solution ${exact.grad}`);
  const off = lossAndGrad(aTrue + 0.1, [1.3, -0.5]);
  assert.ok(off.loss > 0.5, `loss away from the solution ${off.loss}`);
  assert.ok(off.grad > 1, `gradient away from the solution ${off.grad}`);
  tf.dispose([x0, x1, bTrue]);
});

Deno.test("Gaussian marginal flow: the exact r-dependent average velocity is a stationary point", () => {
  // Independent coupling: per-sample errors stay (v is the conditional velocity), but the
  // expected L2 gradient (p = 0) is zero at the exact field, and clearly not zero elsewhere.
  const rows = 20000;
  const mu = [2, -1];
  const sigma = 0.5;
  const x1 = tf.randomNormal([rows, 2], 0, 1, "float32", 5);
  const x0 = tf.add(tf.mul(sigma, tf.randomNormal([rows, 2], 0, 1, "float32", 6)), tf.tensor1d(mu));
  const gradNorm = (m: number[], s: number) => {
    const field = new GaussianField(tf.variable(tf.tensor1d(m)), tf.variable(tf.scalar(s)));
    const { value, grads } = tf.variableGrads(
      () => meanFlowLoss(field, x0, x1, { rng: new Rng(2), p: 0, distinctFraction: 1 }).loss,
      [field.mu, field.sigma],
    );
    const g = Math.hypot(...Object.values(grads).flatMap((x) => [...x.dataSync()]));
    tf.dispose([value, ...Object.values(grads), field.mu, field.sigma]);
    return g;
  };
  const atSolution = gradNorm(mu, sigma);
  const offMu = gradNorm([2.3, -1], sigma);
  const offSigma = gradNorm(mu, 0.7);
  assert.ok(atSolution < 0.1 * offMu, `grad ${atSolution} vs ${offMu} off in mu`);
  assert.ok(atSolution < 0.1 * offSigma, `grad ${atSolution} vs ${offSigma} off in sigma`);
  tf.dispose([x0, x1]);
});

function randomNet(seed: number): VelocityNetwork {
  const net = new VelocityNetwork({ channels: 3, hidden: 8, blocks: 2, timeEmbedDim: 8, seed });
  const rng = new Rng(seed + 7);
  for (const [, v] of net.namedVariables()) {
    v.assign(tf.tensor(rng.normalArray(v.size, 0.3), v.shape));
  }
  return net;
}

Deno.test("no gradient flows through the target or the adaptive weight", () => {
  const net = randomNet(1);
  const rows = 12;
  const x0 = tf.randomNormal([rows, 3], 0, 1, "float32", 1);
  const base = tf.randomNormal([rows, 3], 0, 1, "float32", 2);
  const w = tf.variable(tf.scalar(1.3)); // x1 = w * base depends on a variable, like z_align
  const vars = [...net.namedVariables().map(([, v]) => v), w];
  for (const p of [0, 1, 0.75]) {
    const loss = tf.variableGrads(
      () => meanFlowLoss(net, x0, tf.mul(w, base), { rng: new Rng(9), p }).loss,
      vars,
    );
    // Reference: the same (r, t), target and weight precomputed as plain constants.
    const { r, t } = sampleTimes(rows, new Rng(9));
    const [uTgt, weight] = tf.tidy(() => {
      const x1 = tf.mul(w, base);
      const tc = tf.tensor2d(t, [rows, 1]);
      const zt = tf.add(tf.mul(tf.sub(1, tc), x0), tf.mul(tc, x1));
      const v = tf.sub(x1, x0);
      const { u, du } = net.jvp(zt, tf.tensor1d(r), tf.tensor1d(t), { z: v, r: 0, t: 1 });
      const uTgt = tf.sub(v, tf.mul(tf.sub(tc, tf.tensor2d(r, [rows, 1])), du));
      const err = tf.sum(tf.square(tf.sub(u, uTgt)), 1);
      return [uTgt, tf.pow(tf.add(err, 1e-3), p)];
    });
    const reference = tf.variableGrads(() => {
      const x1 = tf.mul(w, base);
      const tc = tf.tensor2d(t, [rows, 1]);
      const zt = tf.add(tf.mul(tf.sub(1, tc), x0), tf.mul(tc, x1));
      const u = net.velocity(zt, tf.tensor1d(r), tf.tensor1d(t));
      return tf.mean(tf.div(tf.sum(tf.square(tf.sub(u, uTgt)), 1), weight)) as tf.Scalar;
    }, vars);
    assert.ok(Math.abs(loss.value.dataSync()[0] - reference.value.dataSync()[0]) < 1e-5);
    for (const v of vars) {
      const a = loss.grads[v.name].dataSync();
      const b = reference.grads[v.name].dataSync();
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(b[i])), `p=${p} ${v.name}[${i}]`);
      }
    }
    assert.ok(
      Math.abs(loss.grads[w.name].dataSync()[0]) > 1e-4,
      "x1 still gets a gradient via z_t",
    );
    tf.dispose([loss.value, ...Object.values(loss.grads), reference.value]);
    tf.dispose([...Object.values(reference.grads), uTgt, weight]);
  }
  tf.dispose([x0, base, w]);
  net.dispose();
});

Deno.test("pixel vs image samples: per-sample error sums over C, or over H, W and C", () => {
  const x0 = tf.randomNormal([2, 3, 3, 4], 0, 1, "float32", 1);
  const x1 = tf.randomNormal([2, 3, 3, 4], 0, 1, "float32", 2);
  const net = new VelocityNetwork({ channels: 4, hidden: 6, seed: 0 }); // u = 0: target = v
  const [pix, img, sq] = tf.tidy(() => [
    meanFlowLoss(net, x0, x1, { rng: new Rng(0), sample: "pixel" }).err,
    meanFlowLoss(net, x0, x1, { rng: new Rng(0), sample: "image" }).err,
    tf.sum(tf.square(tf.sub(x1, x0))),
  ]);
  assert.ok(Math.abs(pix.dataSync()[0] - sq.dataSync()[0] / 18) < 1e-4);
  assert.ok(Math.abs(img.dataSync()[0] - sq.dataSync()[0] / 2) < 1e-3);
  tf.dispose([x0, x1, pix, img, sq]);
  net.dispose();
});

Deno.test("no tensor leak across training steps; invalid options are rejected", async () => {
  const net = randomNet(3);
  const x0 = tf.randomNormal([16, 3], 0, 1, "float32", 1);
  const x1 = tf.randomNormal([16, 3], 0, 1, "float32", 2);
  const opt: tf.Optimizer = tf.train.adam(1e-3);
  const rng = new Rng(0);
  const vars = net.namedVariables().map(([, v]) => v);
  const step = () => {
    const { value, grads } = tf.variableGrads(
      () => meanFlowLoss(net, x0, x1, { rng }).loss,
      vars,
    );
    opt.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
  };
  await assertNoLeak(step, { steps: 3, label: "a MeanFlow training step" });
  const before = tf.memory().numTensors;
  assert.throws(() => meanFlowLoss(net, x0, x1, { rng, q: 1 } as never), /"q"/);
  assert.throws(() => meanFlowLoss(net, x0, x1, { rng, sample: "batch" } as never), /sample/);
  assert.throws(() => meanFlowLoss(net, x0, x1, { rng, c: 0 }), /c > 0/);
  assert.throws(() => meanFlowLoss(net, x0, tf.ones([16, 2]), { rng }), /same shape/);
  assert.deepEqual(tf.memory().numTensors, before + 1); // the ones() above
  tf.dispose([x0, x1]);
  opt.dispose();
  net.dispose();
});
