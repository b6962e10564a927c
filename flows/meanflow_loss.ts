/**
 * The MeanFlow objective (Geng et al., 2025) for a batch of endpoint pairs: `x0` at t = 0 (the
 * target), `x1` at t = 1 (the known input). The network learns the average velocity
 * `u(z_t, r, t) = 1/(t - r) * integral_r^t v` through the MeanFlow identity
 * `u = v - (t - r) du/dt`.
 *
 * A loss sample is a pixel row by default (`sample: "pixel"`: each C-vector of a feature map, as
 * the stage flattens its map to (B*H*W) x C rows): it gets its own (r, t), its own squared error
 * summed over channels and its own adaptive weight. `sample: "image"` instead draws one (r, t)
 * per image and sums the error over H, W and C.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Scalar, Tensor } from "@mfi/core";
import type { Rng } from "@mfi/core";
import { SAMPLER_OPTION_KEYS, sampleTimes, type TimeSamplerOptions } from "./time_sampler.ts";
import { detached, stopGradient } from "./stop_gradient.ts";
import type { AverageVelocityField } from "./velocity_network.ts";

/** Options of {@linkcode meanFlowLoss}. */
export interface MeanFlowLossOptions extends TimeSamplerOptions {
  /** Generator of the (r, t) draws (advanced). */
  readonly rng: Rng;
  /** Adaptive-weight power p (default 1; MeanFlow's CIFAR code used 0.75; 0 = plain L2). */
  readonly p?: number;
  /** Adaptive-weight constant c (default 1e-3). */
  readonly c?: number;
  /** What one loss sample is: a pixel row (default) or a whole image (first axis). */
  readonly sample?: "pixel" | "image";
}

/** The MeanFlow loss and a diagnostic. */
export type MeanFlowLossResult = {
  /** Adaptively weighted loss, mean over samples (differentiate this). */
  readonly loss: Scalar;
  /** Unweighted mean per-sample squared error `||u - u_tgt||^2` (diagnostic). */
  readonly err: Scalar;
};

const KEYS = new Set<string>(["rng", "p", "c", "sample", ...SAMPLER_OPTION_KEYS]);

function repeatEach(values: Float32Array, times: number): Float32Array {
  if (times === 1) return values;
  const out = new Float32Array(values.length * times);
  for (let i = 0; i < values.length; i++) out.fill(values[i], i * times, (i + 1) * times);
  return out;
}

/**
 * MeanFlow loss of an average-velocity field on endpoint pairs. The target is computed with an
 * exact forward-mode JVP, off the gradient tape (stop-gradient); only the prediction
 * `u_theta(z_t, r, t)` carries gradients, to the field's variables and, through `z_t`, to
 * `x0`/`x1` if they depend on variables. Call inside `tf.variableGrads` or `tf.tidy`.
 *
 * @param field The network (or any field with `velocity` and `jvp`).
 * @param x0 Targets at t = 0, [N, C] rows or [B, H, W, C].
 * @param x1 Known inputs at t = 1, same shape as `x0`.
 * @param options The generator, sampler and weighting options.
 * @returns The weighted loss and the unweighted error.
 * @throws {RangeError} On mismatched shapes or an invalid option.
 * @example
 * ```ts
 * import { meanFlowLoss, VelocityNetwork } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const net = new VelocityNetwork({ channels: 2, hidden: 8, seed: 0 });
 * const x0 = tf.randomNormal([16, 2], 0, 1, "float32", 1);
 * const x1 = tf.randomNormal([16, 2], 0, 1, "float32", 2);
 * const { loss, err } = tf.tidy(() => meanFlowLoss(net, x0, x1, { rng: new Rng(0) }));
 * // An untrained net predicts u = 0 and the target is v, so err = mean ||x1 - x0||^2.
 * const v2 = tf.tidy(() => tf.mean(tf.sum(tf.square(tf.sub(x1, x0)), 1)));
 * assert.ok(Math.abs(err.dataSync()[0] - v2.dataSync()[0]) < 1e-4);
 * tf.dispose([x0, x1, loss, err, v2]);
 * net.dispose();
 * ```
 */
export function meanFlowLoss(
  field: AverageVelocityField,
  x0: Tensor,
  x1: Tensor,
  options: MeanFlowLossOptions,
): MeanFlowLossResult {
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `meanFlowLoss: unknown option "${key}"; expected one of ${[...KEYS].join(", ")}`,
      );
    }
  }
  if (!tf.util.arraysEqual(x0.shape, x1.shape) || x0.rank < 2) {
    throw new RangeError(
      `meanFlowLoss: x0 and x1 must have the same shape of rank >= 2, got [${x0.shape}] and [${x1.shape}]`,
    );
  }
  const { rng, p = 1, c = 1e-3, sample = "pixel", ...sampler } = options;
  if (sample !== "pixel" && sample !== "image") {
    throw new RangeError(`meanFlowLoss: sample must be "pixel" or "image", got ${sample}`);
  }
  if (!(p >= 0) || !(c > 0)) {
    throw new RangeError(`meanFlowLoss: need p >= 0 and c > 0, got p = ${p}, c = ${c}`);
  }
  const channels = x0.shape[x0.rank - 1];
  const rows = x0.size / channels;
  const samples = sample === "image" ? x0.shape[0] : rows;
  const rowsPerSample = rows / samples;

  // 1. Sample (r, t), one pair per sample, shared by the sample's rows.
  const drawn = sampleTimes(samples, rng, sampler);
  const rRows = repeatEach(drawn.r, rowsPerSample);
  const tRows = repeatEach(drawn.t, rowsPerSample);

  return tf.tidy(() => {
    const r = tf.tensor1d(rRows); // [N]
    const t = tf.tensor1d(tRows); // [N]
    const tCol = tf.reshape(t, [rows, 1]);
    const a0 = tf.reshape(x0, [rows, channels]); // [N, C]
    const a1 = tf.reshape(x1, [rows, channels]); // [N, C]

    // 2. Path point z_t = (1 - t) x0 + t x1 and instantaneous velocity v = x1 - x0.
    const zt = tf.add(tf.mul(tf.sub(1, tCol), a0), tf.mul(tCol, a1)); // [N, C]
    const v = tf.sub(a1, a0); // [N, C]

    // 3. Prediction u_theta(z_t, r, t), on the gradient tape.
    const u = field.velocity(zt, r, t); // [N, C]

    // 4. Target u_tgt = stopgrad(v - (t - r) du/dt), du/dt = JVP along (dz, dr, dt) = (v, 0, 1).
    const uTgt = detached(() => {
      const { du } = field.jvp(zt, r, t, { z: v, r: 0, t: 1 }); // [N, C]
      return tf.sub(v, tf.mul(tf.reshape(tf.sub(t, r), [rows, 1]), du));
    }, [zt, v]);

    // 5. Per-sample squared error and adaptive weight err / stopgrad((err + c)^p).
    const err = tf.sum(tf.reshape(tf.square(tf.sub(u, uTgt)), [samples, -1]), 1); // [S]
    const weight = stopGradient(tf.pow(tf.add(err, c), p)); // [S]
    return { loss: tf.mean(tf.div(err, weight)) as Scalar, err: tf.mean(err) as Scalar };
  });
}
