/**
 * The MeanFlow velocity network `u_theta(z, r, t)`: a position-wise residual MLP over channels,
 * FiLM-conditioned on sinusoidal embeddings of `t` and `t - r`, with an exact forward-mode
 * Jacobian-vector product (dual numbers through every layer) for the MeanFlow target.
 *
 * Rows are independent: `z` is `[N, C]` (a feature map `[B, H, W, C]` is reshaped to
 * `[B*H*W, C]`, so the weights are shared over pixels like 1x1 convolutions).
 *
 * Architecture (`blocks = b`, hidden width `h`, embedding width `d`):
 * ```
 * e   = SiLU([emb(t), emb(t - r)] W_time + b_time)            [K, d]   (K = N or 1)
 * x   = z W_in + b_in                                          [N, h]
 * for each block k:
 *   (s, c) = e W_film_k + b_film_k                             [K, 2h]
 *   x   = x + SiLU(x * (1 + s) + c) W_fc_k + b_fc_k            [N, h]
 * u   = SiLU(x) W_out + b_out                                  [N, C]   (W_out, b_out zero-initialised)
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor1D, Tensor2D } from "@mfi/core";
import { deriveSeed, Linear, type NamedVariables, prefixed } from "@mfi/core";
import { sinusoidalEmbedding } from "./time_embedding.ts";

/** Options of {@linkcode VelocityNetwork}. */
export interface VelocityNetworkOptions {
  /** Channels C of `z` and `u`. */
  readonly channels: number;
  /** Hidden width h of the residual MLP. */
  readonly hidden: number;
  /** Residual blocks (default 1). */
  readonly blocks?: number;
  /** Width d of each sinusoidal embedding and of the time MLP (even, default 64). */
  readonly timeEmbedDim?: number;
  /** Largest angular frequency of the embeddings (default 100). */
  readonly timeMaxFrequency?: number;
  /** Seed of the initialisation. */
  readonly seed: number;
}

/** A time argument: one value for every row (a number), or a [N] or [1] tensor. */
export type TimeInput = number | Tensor;

/** Tangent of the inputs (z, r, t) for {@linkcode VelocityNetwork.jvp}. */
export interface VelocityTangent {
  /** Tangent of z, same shape as z. */
  readonly z: Tensor;
  /** Tangent of r (number or [N]/[1] tensor). */
  readonly r: TimeInput;
  /** Tangent of t (number or [N]/[1] tensor). */
  readonly t: TimeInput;
}

/** Any average-velocity field the MeanFlow loss can train: the network, or a closed form. */
export interface AverageVelocityField {
  /**
   * The average velocity u(z, r, t) over [r, t].
   *
   * @param z Points, [N, C].
   * @param r Start times of the intervals.
   * @param t End times (the time of `z`).
   * @returns u(z, r, t), [N, C].
   */
  velocity(z: Tensor, r: TimeInput, t: TimeInput): Tensor;
  /**
   * u and its exact directional derivative (forward mode).
   *
   * @param z Points, [N, C].
   * @param r Start times.
   * @param t End times.
   * @param tangent Direction (dz, dr, dt).
   * @returns u and its directional derivative `du = J_z u dz + d_r u dr + d_t u dt`.
   */
  jvp(
    z: Tensor,
    r: TimeInput,
    t: TimeInput,
    tangent: VelocityTangent,
  ): { u: Tensor; du: Tensor };
}

interface Dual {
  readonly p: Tensor;
  readonly d: Tensor | undefined;
}

function linear(x: Dual, layer: Linear): Dual {
  const p = layer.apply(x.p);
  const d = x.d === undefined ? undefined : tf.matMul(x.d as Tensor2D, layer.weight as Tensor2D);
  return { p, d };
}

function silu(x: Dual): Dual {
  const s = tf.sigmoid(x.p);
  const p = tf.mul(x.p, s);
  if (x.d === undefined) return { p, d: undefined };
  // SiLU'(x) = s (1 + x (1 - s)).
  const slope = tf.mul(s, tf.add(1, tf.mul(x.p, tf.sub(1, s))));
  return { p, d: tf.mul(x.d, slope) };
}

function positiveInt(key: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(
      `Cannot build VelocityNetwork: ${key} must be a positive integer, got ${value}`,
    );
  }
  return value as number;
}

function timeTensor(what: string, value: TimeInput, rows: number): Tensor1D {
  if (typeof value === "number") return tf.tensor1d([value]);
  const flat = tf.reshape(value, [-1]) as Tensor1D;
  if (flat.size !== rows && flat.size !== 1) {
    throw new RangeError(
      `VelocityNetwork: ${what} must have 1 or ${rows} (one per row) values, got shape [${value.shape}]`,
    );
  }
  return flat;
}

/**
 * The average-velocity network of one MeanFlow module. Variables (stable names): `time.weight`,
 * `time.bias`, `in.weight`, `in.bias`, `blocks.<k>.film.{weight,bias}`,
 * `blocks.<k>.fc.{weight,bias}`, `out.weight`, `out.bias`. An untrained network outputs
 * u = 0 (zero-initialised `out`), so a MeanFlow step starts as the identity.
 *
 * @example
 * ```ts
 * import { VelocityNetwork } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const net = new VelocityNetwork({ channels: 4, hidden: 8, seed: 1 });
 * const u = tf.tidy(() => net.velocity(tf.ones([3, 4]), 0, 1));
 * assert.deepEqual(u.shape, [3, 4]);
 * assert.deepEqual(tf.max(tf.abs(u)).dataSync()[0], 0); // zero-initialised output layer
 * u.dispose();
 * net.dispose();
 * ```
 */
export class VelocityNetwork implements AverageVelocityField {
  /** The resolved options (defaults filled in). */
  readonly options: Readonly<Required<VelocityNetworkOptions>>;
  readonly #time: Linear;
  readonly #in: Linear;
  readonly #blocks: ReadonlyArray<{ film: Linear; fc: Linear }>;
  readonly #out: Linear;

  /**
   * Builds the network with its time MLP and FiLM layers (output layer zero: u = 0 at start).
   *
   * @param options Widths and seed.
   * @throws {RangeError} On a non-positive width or an odd `timeEmbedDim`.
   */
  constructor(options: VelocityNetworkOptions) {
    const channels = positiveInt("channels", options.channels);
    const hidden = positiveInt("hidden", options.hidden);
    const blocks = positiveInt("blocks", options.blocks ?? 1);
    const d = positiveInt("timeEmbedDim", options.timeEmbedDim ?? 64);
    if (d % 2 !== 0) {
      throw new RangeError(`Cannot build VelocityNetwork: timeEmbedDim must be even, got ${d}`);
    }
    const maxF = options.timeMaxFrequency ?? 100;
    if (!(maxF >= 1) || !Number.isFinite(maxF)) {
      throw new RangeError(
        `Cannot build VelocityNetwork: timeMaxFrequency must be a finite number >= 1, got ${maxF}`,
      );
    }
    if (!Number.isFinite(options.seed)) {
      throw new RangeError(
        `Cannot build VelocityNetwork: seed must be finite, got ${options.seed}`,
      );
    }
    this.options = Object.freeze({
      channels,
      hidden,
      blocks,
      timeEmbedDim: d,
      timeMaxFrequency: maxF,
      seed: options.seed,
    });
    const seed = (label: string, k = 0) => deriveSeed(options.seed, label, k);
    this.#time = new Linear({ inFeatures: 2 * d, outFeatures: d, seed: seed("time") });
    this.#in = new Linear({ inFeatures: channels, outFeatures: hidden, seed: seed("in") });
    this.#blocks = Array.from({ length: blocks }, (_, k) => ({
      film: new Linear({ inFeatures: d, outFeatures: 2 * hidden, seed: seed("film", k) }),
      fc: new Linear({ inFeatures: hidden, outFeatures: hidden, seed: seed("fc", k) }),
    }));
    this.#out = new Linear({
      inFeatures: hidden,
      outFeatures: channels,
      seed: seed("out"),
      init: "zeros",
    });
  }

  /**
   * Exact number of parameters of a network with these options.
   *
   * @param options Widths (seed ignored).
   * @returns The parameter count.
   * @example
   * ```ts
   * import { VelocityNetwork } from "@mfi/flows";
   * import assert from "node:assert/strict";
   * // time 2*4*4+4, in 3*5+5, block 4*10+10 + 5*5+5, out 5*3+3
   * assert.deepEqual(
   *   VelocityNetwork.countParameters({ channels: 3, hidden: 5, timeEmbedDim: 4, seed: 0 }),
   *   36 + 20 + 50 + 30 + 18,
   * );
   * ```
   */
  static countParameters(
    options: Omit<VelocityNetworkOptions, "seed"> & { seed?: number },
  ): number {
    const c = options.channels;
    const h = options.hidden;
    const b = options.blocks ?? 1;
    const d = options.timeEmbedDim ?? 64;
    return (2 * d * d + d) + (c * h + h) + b * (d * 2 * h + 2 * h + h * h + h) + (h * c + c);
  }

  /**
   * The average velocity u(z, r, t). Call inside `tf.tidy` or a gradient function.
   *
   * @param z Points, [..., C] (e.g. [N, C] rows or an NHWC map).
   * @param r Interval starts: a number, or one value per row ([N]) or [1].
   * @param t Interval ends (the time of `z`), same forms as `r`.
   * @returns u, same shape as `z`.
   * @throws {RangeError} If the last axis of `z` is not C or a time has the wrong size.
   */
  velocity(z: Tensor, r: TimeInput, t: TimeInput): Tensor {
    return this.#forward(z, r, t, undefined).u;
  }

  /**
   * Forward-mode JVP with dual numbers: u(z, r, t) and its exact directional derivative along
   * the tangent `(dz, dr, dt)`. MeanFlow uses the tangent `(v, 0, 1)`, giving the total
   * derivative `du/dt = v . grad_z u + d_t u`.
   *
   * @param z Points, [..., C].
   * @param r Interval starts.
   * @param t Interval ends.
   * @param tangent Direction `(dz, dr, dt)`; `dz` has the shape of `z`.
   * @returns `u` and `du`, both shaped like `z`.
   * @throws {RangeError} On mismatched shapes.
   * @example
   * ```ts
   * import { VelocityNetwork } from "@mfi/flows";
   * import * as tf from "@tensorflow/tfjs-core";
   * import assert from "node:assert/strict";
   * await tf.setBackend("cpu");
   * const net = new VelocityNetwork({ channels: 2, hidden: 4, seed: 3 });
   * const { u, du } = tf.tidy(() =>
   *   net.jvp(tf.ones([5, 2]), 0.2, 0.7, { z: tf.ones([5, 2]), r: 0, t: 1 })
   * );
   * assert.deepEqual(du.shape, [5, 2]);
   * tf.dispose([u, du]);
   * net.dispose();
   * ```
   */
  jvp(
    z: Tensor,
    r: TimeInput,
    t: TimeInput,
    tangent: VelocityTangent,
  ): { u: Tensor; du: Tensor } {
    if (!tf.util.arraysEqual(tangent.z.shape, z.shape)) {
      throw new RangeError(
        `VelocityNetwork.jvp: tangent.z must have z's shape [${z.shape}], got [${tangent.z.shape}]`,
      );
    }
    const { u, du } = this.#forward(z, r, t, tangent);
    return { u, du: du! };
  }

  #forward(
    z: Tensor,
    r: TimeInput,
    t: TimeInput,
    tangent: VelocityTangent | undefined,
  ): { u: Tensor; du: Tensor | undefined } {
    const { channels: c, timeEmbedDim: d, timeMaxFrequency: maxFrequency } = this.options;
    if (z.shape[z.rank - 1] !== c) {
      throw new RangeError(
        `VelocityNetwork: z must have ${c} channels on its last axis, got shape [${z.shape}]`,
      );
    }
    return tf.tidy(() => {
      const rows = z.size / c;
      const tT = timeTensor("t", t, rows); // [K]
      const rT = timeTensor("r", r, rows); // [K']
      const dt = tangent === undefined ? undefined : timeTensor("tangent.t", tangent.t, rows);
      const dr = tangent === undefined ? undefined : timeTensor("tangent.r", tangent.r, rows);
      // Time conditioning: [emb(t), emb(t - r)] -> SiLU(Linear) = e, [K, d].
      const et = sinusoidalEmbedding(tT, { dim: d, maxFrequency, ds: dt });
      const es = sinusoidalEmbedding(tf.sub(tT, rT), {
        dim: d,
        maxFrequency,
        ds: dt === undefined ? undefined : tf.sub(dt, dr!),
      });
      const emb: Dual = {
        p: tf.concat([et.value, es.value], 1),
        d: tangent === undefined ? undefined : tf.concat([et.tangent!, es.tangent!], 1),
      };
      const e = silu(linear(emb, this.#time)); // [K, d]
      // Residual MLP over channels, FiLM-modulated by e.
      let x = linear({
        p: tf.reshape(z, [rows, c]),
        d: tangent === undefined ? undefined : tf.reshape(tangent.z, [rows, c]),
      }, this.#in); // [N, h]
      const h = this.options.hidden;
      for (const block of this.#blocks) {
        const film = linear(e, block.film); // [K, 2h]
        const scale = tf.add(1, tf.slice(film.p, [0, 0], [-1, h]));
        const shift = tf.slice(film.p, [0, h], [-1, h]);
        const pre: Dual = {
          p: tf.add(tf.mul(x.p, scale), shift),
          d: x.d === undefined ? undefined : tf.addN([
            tf.mul(x.d, scale),
            tf.mul(x.p, tf.slice(film.d!, [0, 0], [-1, h])),
            tf.broadcastTo(tf.slice(film.d!, [0, h], [-1, h]), x.p.shape),
          ]),
        };
        const branch = linear(silu(pre), block.fc);
        x = {
          p: tf.add(x.p, branch.p),
          d: x.d === undefined ? undefined : tf.add(x.d, branch.d!),
        };
      }
      const out = linear(silu(x), this.#out); // [N, C]
      return {
        u: tf.reshape(out.p, z.shape),
        du: out.d === undefined ? undefined : tf.reshape(out.d, z.shape),
      };
    });
  }

  /**
   * The network's variables with stable names.
   *
   * @returns The named variables, in a fixed order.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("time", this.#time.namedVariables()),
      ...prefixed("in", this.#in.namedVariables()),
      ...this.#blocks.flatMap((b, k) => [
        ...prefixed(`blocks.${k}.film`, b.film.namedVariables()),
        ...prefixed(`blocks.${k}.fc`, b.fc.namedVariables()),
      ]),
      ...prefixed("out", this.#out.namedVariables()),
    ];
  }

  /** Disposes every variable. */
  dispose(): void {
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}
