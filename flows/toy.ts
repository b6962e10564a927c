/**
 * The crossing-paths toy problem that shows what MeanFlow is for: x1 ~ N(0, I) in 2-D and x0
 * from a mixture of well-separated Gaussians, coupled independently, so straight paths cross.
 * One Euler step of flow matching from t = 1 predicts E[x0 | x1] (the mixture's mean); one
 * MeanFlow step follows the marginal transport and lands on the modes.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor2D, TfjsOptimizer } from "@mfi/core";
import { Rng } from "@mfi/core";
import { meanFlowLoss, type MeanFlowLossOptions } from "./meanflow_loss.ts";
import type { VelocityNetwork } from "./velocity_network.ts";

/** The toy's mixture: 4 modes at (+-3, +-3), component std 0.2. */
export const TOY_MODES: ReadonlyArray<readonly [number, number]> = [
  [3, 3],
  [3, -3],
  [-3, 3],
  [-3, -3],
];

/** Component standard deviation of the toy mixture. */
export const TOY_MODE_STD = 0.2;

/**
 * Draws `n` independent pairs: x0 from the mixture {@linkcode TOY_MODES}, x1 ~ N(0, I).
 *
 * @param n Number of pairs.
 * @param rng Generator (advanced).
 * @returns `{ x0, x1 }`, each [n, 2] (the caller disposes them).
 * @example
 * ```ts
 * import { toyPairs } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { x0, x1 } = toyPairs(8, new Rng(0));
 * assert.deepEqual(x0.shape, [8, 2]);
 * tf.dispose([x0, x1]);
 * ```
 */
export function toyPairs(n: number, rng: Rng): { x0: Tensor2D; x1: Tensor2D } {
  const x0 = new Float32Array(2 * n);
  const x1 = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const [a, b] = TOY_MODES[rng.int(TOY_MODES.length)];
    x0[2 * i] = a + TOY_MODE_STD * rng.normal();
    x0[2 * i + 1] = b + TOY_MODE_STD * rng.normal();
    x1[2 * i] = rng.normal();
    x1[2 * i + 1] = rng.normal();
  }
  return { x0: tf.tensor2d(x0, [n, 2]), x1: tf.tensor2d(x1, [n, 2]) };
}

/**
 * Fraction of points within `radius` of some mode of {@linkcode TOY_MODES}.
 *
 * @param points Points, [n, 2].
 * @param radius Distance to the nearest mode.
 * @returns The fraction in [0, 1] (read with `await t.data()`).
 * @example
 * ```ts
 * import { fractionNearModes } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const p = tf.tensor2d([[3, 3.1], [0, 0]]);
 * assert.deepEqual(await fractionNearModes(p, 1), 0.5);
 * p.dispose();
 * ```
 */
export async function fractionNearModes(points: Tensor, radius: number): Promise<number> {
  const d = await points.data();
  let near = 0;
  for (let i = 0; i < d.length; i += 2) {
    if (TOY_MODES.some(([a, b]) => Math.hypot(d[i] - a, d[i + 1] - b) < radius)) near++;
  }
  return near / (d.length / 2);
}

/** Options of {@linkcode fitToy}. */
export interface FitToyOptions extends Omit<MeanFlowLossOptions, "interval"> {
  /** Optimiser steps. */
  readonly steps: number;
  /** Pairs per step. */
  readonly batch: number;
  /** Adam learning rate (default 3e-3). */
  readonly learningRate?: number;
}

/**
 * Trains a 2-channel network on fresh toy pairs with the MeanFlow loss (`distinctFraction: 0`
 * gives flow matching) and Adam.
 *
 * @param net A {@linkcode VelocityNetwork} with `channels: 2`.
 * @param options Steps, batch, learning rate and loss options (`rng` drives data and times).
 * @returns The loss of every step (read with `await t.data()`).
 * @throws {RangeError} If the network does not have 2 channels.
 * @example
 * ```ts
 * import { fitToy, VelocityNetwork } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const net = new VelocityNetwork({ channels: 2, hidden: 8, seed: 0 });
 * const losses = await fitToy(net, { steps: 2, batch: 16, rng: new Rng(0) });
 * assert.deepEqual(losses.length, 2);
 * net.dispose();
 * ```
 */
export async function fitToy(net: VelocityNetwork, options: FitToyOptions): Promise<number[]> {
  if (net.options.channels !== 2) {
    throw new RangeError(`fitToy: the network must have 2 channels, got ${net.options.channels}`);
  }
  const { steps, batch, learningRate = 3e-3, ...loss } = options;
  const optimizer: TfjsOptimizer = tf.train.adam(learningRate);
  const vars = net.namedVariables().map(([, v]) => v);
  const losses: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      const { x0, x1 } = toyPairs(batch, options.rng);
      const { value, grads } = tf.variableGrads(() => meanFlowLoss(net, x0, x1, loss).loss, vars);
      try {
        optimizer.applyGradients(grads);
        losses.push((await value.data())[0]);
      } finally {
        tf.dispose([x0, x1, value, ...Object.values(grads)]);
      }
    }
  } finally {
    optimizer.dispose();
  }
  return losses;
}
