// MeanFlow on tfjs-backend-webgpu against the cpu backend: the exact forward-mode JVP, the loss
// (whose target is that JVP, off the tape) with its gradients, and a MeanFlow stage's forward in
// one and in k steps per module.
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "@mfi/core";
import { meanFlowLoss, MeanFlowStage, VelocityNetwork } from "@mfi/flows";
import { assertSameOnWebGpu, webgpuTest } from "./_webgpu.ts";

const SHAPE: [number, number, number, number] = [2, 4, 4, 6];
const SIZE = 2 * 4 * 4 * 6;
const x0v = new Rng(31).normalArray(SIZE);
const x1v = new Rng(32).normalArray(SIZE);
const tanv = new Rng(33).normalArray(SIZE);

/** A velocity network whose output layer is not zero (the default init predicts u = 0). */
function network(): VelocityNetwork {
  const net = new VelocityNetwork({ channels: 6, hidden: 16, seed: 3 });
  const rng = new Rng(34);
  for (const [, v] of net.namedVariables()) {
    v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.2), v.shape)));
  }
  return net;
}

webgpuTest("webgpu flows: the exact JVP of the velocity network matches cpu", async () => {
  await assertSameOnWebGpu(["u", "du"], () => {
    const net = network();
    try {
      const z = tf.reshape(tf.tensor4d(x1v, SHAPE), [-1, 6]);
      const tan = tf.reshape(tf.tensor4d(tanv, SHAPE), [-1, 6]);
      const rows = z.shape[0];
      const r = tf.tensor1d(new Rng(35).uniformArray(rows, 0, 0.5));
      const t = tf.tensor1d(new Rng(36).uniformArray(rows, 0.5, 1));
      const out = net.jvp(z, r, t, { z: tan, r: 0, t: 1 });
      return [out.u, out.du];
    } finally {
      net.dispose();
    }
  });
});

webgpuTest(
  "webgpu flows: the MeanFlow loss (exact JVP target) and its gradients match cpu",
  async () => {
    for (const sample of ["pixel", "image"] as const) {
      const probe = network();
      const names = ["loss", "err", ...probe.namedVariables().map(([n]) => `grad ${n}`)];
      probe.dispose();
      await assertSameOnWebGpu(names, () => {
        const net = network();
        try {
          const x0 = tf.tensor4d(x0v, SHAPE);
          const x1 = tf.tensor4d(x1v, SHAPE);
          let err!: tf.Scalar;
          const vars = net.namedVariables().map(([, v]) => v);
          const { value, grads } = tf.variableGrads(() => {
            const l = meanFlowLoss(net, x0, x1, { rng: new Rng(37), sample, p: 0.75 });
            err = tf.keep(l.err);
            return l.loss;
          }, vars);
          return [value, err, ...vars.map((v) => grads[v.name])];
        } finally {
          net.dispose();
        }
      });
    }
  },
);

for (const steps of [1, 3]) {
  webgpuTest(
    `webgpu flows: a MeanFlow stage's forward in ${steps} step(s) per module matches cpu`,
    async () => {
      await assertSameOnWebGpu(["stage output"], () => {
        const stage = new MeanFlowStage({
          inChannels: 4,
          outChannels: 6,
          stride: 2,
          hidden: 8,
          modules: 2,
          seed: 4,
        });
        try {
          const rng = new Rng(38);
          for (const [, v] of stage.namedVariables()) {
            if (v.trainable) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.1), v.shape)));
          }
          const x = tf.tensor4d(new Rng(39).normalArray(2 * 8 * 8 * 4), [2, 8, 8, 4]);
          return stage.apply(x, { training: false, steps });
        } finally {
          stage.dispose();
        }
      });
    },
  );
}
