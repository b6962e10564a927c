import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { Rng } from "@mfi/core";
import { embeddingFrequencies } from "./time_embedding.ts";
import { VelocityNetwork, type VelocityNetworkOptions } from "./velocity_network.ts";

await tf.setBackend("cpu");

/** A network whose every weight (the zero-initialised output layer too) is random. */
function randomNetwork(options: VelocityNetworkOptions, scale = 0.5): VelocityNetwork {
  const net = new VelocityNetwork(options);
  const rng = new Rng(options.seed + 1000);
  for (const [, v] of net.namedVariables()) {
    const fanIn = v.shape.length === 2 ? v.shape[0] : 1;
    v.assign(tf.tensor(rng.normalArray(v.size, scale / Math.sqrt(fanIn) * 1.5), v.shape));
  }
  return net;
}

/** Float64 reference of the network's forward pass, for one row. */
function referenceRow(
  net: VelocityNetwork,
  z: Float64Array,
  r: number,
  t: number,
): Float64Array {
  const w = new Map(net.namedVariables().map(([n, v]) => [n, v.dataSync()]));
  const { channels: c, hidden: h, blocks, timeEmbedDim: d, timeMaxFrequency } = net.options;
  const silu = (x: number) => x / (1 + Math.exp(-x));
  const lin = (x: ArrayLike<number>, name: string, nIn: number, nOut: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`)!;
    const y = new Float64Array(nOut);
    for (let o = 0; o < nOut; o++) {
      let s = b[o];
      for (let i = 0; i < nIn; i++) s += x[i] * W[i * nOut + o];
      y[o] = s;
    }
    return y;
  };
  const freqs = embeddingFrequencies(d, timeMaxFrequency);
  const emb = (
    s: number,
  ) => [...freqs.map((f) => Math.sin(f * s)), ...freqs.map((f) => Math.cos(f * s))];
  const e = lin([...emb(t), ...emb(t - r)], "time", 2 * d, d).map(silu);
  let x = lin(z, "in", c, h);
  for (let k = 0; k < blocks; k++) {
    const film = lin(e, `blocks.${k}.film`, d, 2 * h);
    const pre = x.map((xi, i) => xi * (1 + film[i]) + film[h + i]);
    const branch = lin(pre.map(silu), `blocks.${k}.fc`, h, h);
    x = x.map((xi, i) => xi + branch[i]);
  }
  return lin(x.map(silu), "out", h, c);
}

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

const SHAPES: Array<{ name: string; options: VelocityNetworkOptions; rows: number }> = [
  {
    name: "C=3 h=5 1 block",
    options: { channels: 3, hidden: 5, timeEmbedDim: 4, seed: 1 },
    rows: 4,
  },
  {
    name: "C=6 h=16 2 blocks",
    options: { channels: 6, hidden: 16, blocks: 2, timeEmbedDim: 8, seed: 2 },
    rows: 5,
  },
  {
    name: "C=2 h=32 3 blocks",
    options: { channels: 2, hidden: 32, blocks: 3, timeEmbedDim: 16, seed: 3 },
    rows: 3,
  },
];

for (const { name, options, rows } of SHAPES) {
  for (const distinct of [false, true]) {
    Deno.test(`jvp matches float64 central differences (${name}, ${distinct ? "r < t" : "r = t"})`, () => {
      const net = randomNetwork(options);
      const rng = new Rng(options.seed);
      const c = options.channels;
      const z = rng.normalArray(rows * c);
      const v = rng.normalArray(rows * c);
      const t = Float32Array.from({ length: rows }, () => 0.2 + 0.7 * rng.next());
      const r = t.map((ti) => (distinct ? ti * rng.next() : ti));
      const { u, du } = tf.tidy(() =>
        net.jvp(tf.tensor2d(z, [rows, c]), tf.tensor1d(r), tf.tensor1d(t), {
          z: tf.tensor2d(v, [rows, c]),
          r: 0,
          t: 1,
        })
      );
      const uData = u.dataSync();
      const duData = du.dataSync();
      const eps = 1e-6;
      const fd = new Float64Array(rows * c);
      const ref = new Float64Array(rows * c);
      for (let i = 0; i < rows; i++) {
        const zi = Float64Array.from(z.subarray(i * c, (i + 1) * c));
        const vi = v.subarray(i * c, (i + 1) * c);
        const plus = referenceRow(net, zi.map((x, j) => x + eps * vi[j]), r[i], t[i] + eps);
        const minus = referenceRow(net, zi.map((x, j) => x - eps * vi[j]), r[i], t[i] - eps);
        const at = referenceRow(net, zi, r[i], t[i]);
        for (let j = 0; j < c; j++) {
          fd[i * c + j] = (plus[j] - minus[j]) / (2 * eps);
          ref[i * c + j] = at[j];
        }
      }
      assert.ok(relError(uData, ref) < 1e-5, `primal rel error ${relError(uData, ref)}`);
      const e = relError(duData, fd);
      assert.ok(e < 1e-3, `jvp rel error ${e}`);
      tf.dispose([u, du]);
      net.dispose();
    });
  }
}

Deno.test("jvp matches float32 central differences with eps 1e-3 (low-frequency embedding)", () => {
  const net = randomNetwork({
    channels: 4,
    hidden: 12,
    blocks: 2,
    timeEmbedDim: 8,
    timeMaxFrequency: 4,
    seed: 7,
  });
  const rng = new Rng(11);
  const rows = 6;
  const z = tf.tensor2d(rng.normalArray(rows * 4), [rows, 4]);
  const v = tf.tensor2d(rng.normalArray(rows * 4), [rows, 4]);
  const t = tf.tensor1d([0.3, 0.5, 0.9, 0.6, 0.8, 0.4]);
  const r = tf.tensor1d([0.3, 0.1, 0.2, 0.6, 0.05, 0.0]); // r = t in rows 0 and 3
  const eps = 1e-3;
  const [du, fd] = tf.tidy(() => {
    const { du } = net.jvp(z, r, t, { z: v, r: 0, t: 1 });
    const plus = net.velocity(tf.add(z, tf.mul(eps, v)), r, tf.add(t, eps));
    const minus = net.velocity(tf.sub(z, tf.mul(eps, v)), r, tf.sub(t, eps));
    return [du, tf.div(tf.sub(plus, minus), 2 * eps)];
  });
  const e = relError(du.dataSync(), fd.dataSync());
  assert.ok(e < 1e-3, `rel error ${e}`);
  tf.dispose([z, v, t, r, du, fd]);
  net.dispose();
});

Deno.test("jvp in (r, t) directions: tangent (0, 1, 0) and (0, 0, 1) match differences", () => {
  const net = randomNetwork({
    channels: 3,
    hidden: 8,
    timeEmbedDim: 6,
    timeMaxFrequency: 4,
    seed: 9,
  });
  const z = tf.tensor2d(new Rng(3).normalArray(9), [3, 3]);
  const r = tf.tensor1d([0.1, 0.2, 0.5]);
  const t = tf.tensor1d([0.6, 0.7, 0.5]);
  const eps = 1e-3;
  for (const [dr, dt] of [[1, 0], [0, 1]]) {
    const [du, fd] = tf.tidy(() => {
      const { du } = net.jvp(z, r, t, { z: tf.zerosLike(z), r: dr, t: dt });
      const plus = net.velocity(z, tf.add(r, eps * dr), tf.add(t, eps * dt));
      const minus = net.velocity(z, tf.sub(r, eps * dr), tf.sub(t, eps * dt));
      return [du, tf.div(tf.sub(plus, minus), 2 * eps)];
    });
    const e = relError(du.dataSync(), fd.dataSync());
    assert.ok(e < 1e-3, `(dr, dt) = (${dr}, ${dt}): rel error ${e}`);
    tf.dispose([du, fd]);
  }
  tf.dispose([z, r, t]);
  net.dispose();
});

Deno.test("jvp matches the double-backward JVP trick (reverse mode twice)", () => {
  const net = randomNetwork({ channels: 5, hidden: 10, blocks: 2, timeEmbedDim: 8, seed: 5 });
  const rng = new Rng(21);
  const rows = 4;
  const z = tf.tensor2d(rng.normalArray(rows * 5), [rows, 5]);
  const v = tf.tensor2d(rng.normalArray(rows * 5), [rows, 5]);
  const r = tf.tensor1d([0.1, 0.4, 0.3, 0.2]);
  const t = tf.tensor1d([0.5, 0.4, 0.9, 0.7]);
  const [du, reference] = tf.tidy(() => {
    const { du } = net.jvp(z, r, t, { z: v, r: 0, t: 1 });
    // g(w) = J^T w (one reverse pass, w.r.t. z and t); J v = grad_w <g(w), (v, 1)>.
    const w0 = tf.zerosLike(z);
    const jvpByVjp = tf.grad((w: tf.Tensor) => {
      const [gz, gt] = tf.grads((zz: tf.Tensor, tt: tf.Tensor) =>
        tf.sum(tf.mul(net.velocity(zz, r, tt), w))
      )([z, t]);
      return tf.add(tf.sum(tf.mul(gz, v)), tf.sum(gt));
    })(w0);
    return [du, jvpByVjp];
  });
  const e = relError(du.dataSync(), reference.dataSync());
  assert.ok(e < 1e-4, `rel error ${e}`);
  tf.dispose([z, v, r, t, du, reference]);
  net.dispose();
});

Deno.test("a time given once broadcasts like one value per row; NHWC input keeps its shape", () => {
  const net = randomNetwork({ channels: 3, hidden: 6, seed: 4 });
  const [a, b, c] = tf.tidy(() => {
    const z = tf.randomNormal([2, 2, 2, 3], 0, 1, "float32", 1);
    const a = net.velocity(z, 0.25, 0.75);
    const b = net.velocity(z, tf.fill([8], 0.25), tf.fill([8], 0.75));
    const c = net.velocity(tf.reshape(z, [8, 3]), tf.tensor1d([0.25]), tf.tensor1d([0.75]));
    return [a, b, c];
  });
  assert.deepEqual(a.shape, [2, 2, 2, 3]);
  assert.ok(relError(a.dataSync(), b.dataSync()) < 1e-6);
  assert.ok(relError(a.dataSync(), c.dataSync()) < 1e-6);
  tf.dispose([a, b, c]);
  net.dispose();
});

Deno.test("untrained network is u = 0 with du = 0; names and parameter count are stable", () => {
  const net = new VelocityNetwork({ channels: 4, hidden: 6, blocks: 2, timeEmbedDim: 4, seed: 0 });
  const { u, du } = tf.tidy(() =>
    net.jvp(tf.ones([3, 4]), 0.1, 0.9, { z: tf.ones([3, 4]), r: 0, t: 1 })
  );
  assert.deepEqual(tf.max(tf.abs(u)).dataSync()[0], 0);
  assert.deepEqual(tf.max(tf.abs(du)).dataSync()[0], 0);
  assert.deepEqual(net.namedVariables().map(([n]) => n), [
    "time.weight",
    "time.bias",
    "in.weight",
    "in.bias",
    "blocks.0.film.weight",
    "blocks.0.film.bias",
    "blocks.0.fc.weight",
    "blocks.0.fc.bias",
    "blocks.1.film.weight",
    "blocks.1.film.bias",
    "blocks.1.fc.weight",
    "blocks.1.fc.bias",
    "out.weight",
    "out.bias",
  ]);
  const counted = net.namedVariables().reduce((s, [, v]) => s + v.size, 0);
  assert.deepEqual(
    VelocityNetwork.countParameters({ channels: 4, hidden: 6, blocks: 2, timeEmbedDim: 4 }),
    counted,
  );
  tf.dispose([u, du]);
  net.dispose();
});

Deno.test("invalid options and inputs are rejected with the key named", () => {
  const bad: Array<[Partial<VelocityNetworkOptions>, RegExp]> = [
    [{ channels: 0 }, /channels/],
    [{ hidden: 2.5 }, /hidden/],
    [{ blocks: 0 }, /blocks/],
    [{ timeEmbedDim: 5 }, /timeEmbedDim/],
    [{ timeMaxFrequency: 0.5 }, /timeMaxFrequency/],
    [{ seed: NaN }, /seed/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () =>
        new VelocityNetwork(
          { channels: 2, hidden: 4, seed: 0, ...patch } as VelocityNetworkOptions,
        ),
      re,
    );
  }
  const net = new VelocityNetwork({ channels: 2, hidden: 4, seed: 0 });
  assert.throws(() => tf.tidy(() => net.velocity(tf.ones([3, 5]), 0, 1)), /2 channels/);
  assert.throws(() => tf.tidy(() => net.velocity(tf.ones([3, 2]), tf.ones([2]), 1)), /r must have/);
  assert.throws(
    () => tf.tidy(() => net.jvp(tf.ones([3, 2]), 0, 1, { z: tf.ones([2, 2]), r: 0, t: 1 })),
    /tangent.z/,
  );
  net.dispose();
});
