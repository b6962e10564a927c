/**
 * Sinusoidal embeddings of a time variable and their exact derivative, the first layer of a
 * MeanFlow velocity network. The network is conditioned on `t` and on the interval length
 * `t - r`, each embedded as `[sin(f_k s), cos(f_k s)]` with angular frequencies `f_k` spaced
 * geometrically from 1 to `maxFrequency`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor2D } from "@mfi/core";

/**
 * The angular frequencies of a sinusoidal embedding: `dim / 2` values spaced geometrically from 1
 * to `maxFrequency` (a single frequency 1 when `dim = 2`).
 *
 * @param dim Embedding width, an even integer >= 2.
 * @param maxFrequency Largest angular frequency, >= 1.
 * @returns The `dim / 2` frequencies, increasing.
 * @throws {RangeError} If `dim` is not an even integer >= 2 or `maxFrequency < 1`.
 * @example
 * ```ts
 * import { embeddingFrequencies } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * const f = embeddingFrequencies(6, 100);
 * assert.deepEqual(f.length, 3);
 * assert.ok(Math.abs(f[1] - 10) < 1e-9);
 * ```
 */
export function embeddingFrequencies(dim: number, maxFrequency: number): Float64Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) {
    throw new RangeError(`Cannot embed time: dim must be an even integer >= 2, got ${dim}`);
  }
  if (!(maxFrequency >= 1) || !Number.isFinite(maxFrequency)) {
    throw new RangeError(
      `Cannot embed time: maxFrequency must be a finite number >= 1, got ${maxFrequency}`,
    );
  }
  const half = dim / 2;
  const out = new Float64Array(half);
  for (let k = 0; k < half; k++) {
    out[k] = half === 1 ? 1 : Math.pow(maxFrequency, k / (half - 1));
  }
  return out;
}

/** A sinusoidal embedding and, when a tangent was given, its directional derivative. */
export type EmbeddingWithTangent = {
  /** `[sin(f s), cos(f s)]`, shape [K, dim]. */
  readonly value: Tensor2D;
  /** `ds * [f cos(f s), -f sin(f s)]`, shape [K, dim]; undefined without a tangent. */
  readonly tangent: Tensor2D | undefined;
};

/**
 * Embeds times `s` ([K]) as `[sin(f_k s), cos(f_k s)]` ([K, dim]) and, given a tangent `ds`,
 * returns the exact forward-mode derivative `ds * [f_k cos(f_k s), -f_k sin(f_k s)]`.
 *
 * @param s Times, shape [K].
 * @param options `dim`, `maxFrequency` and the optional tangent `ds` (a number or a [K] tensor).
 * @returns The embedding and its tangent.
 * @throws {RangeError} If `s` is not 1-D or the embedding options are invalid.
 * @example
 * ```ts
 * import { sinusoidalEmbedding } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { value, tangent } = tf.tidy(() =>
 *   sinusoidalEmbedding(tf.tensor1d([0, 0.5]), { dim: 4, maxFrequency: 10, ds: 1 })
 * );
 * assert.deepEqual(value.shape, [2, 4]);
 * // d/ds sin(s) at s = 0 is 1.
 * assert.ok(Math.abs(tangent!.arraySync()[0][0] - 1) < 1e-6);
 * tf.dispose([value, tangent!]);
 * ```
 */
export function sinusoidalEmbedding(
  s: Tensor,
  options: { dim: number; maxFrequency: number; ds?: number | Tensor },
): EmbeddingWithTangent {
  if (s.rank !== 1) {
    throw new RangeError(`Cannot embed time: s must be 1-D [K], got shape [${s.shape}]`);
  }
  const freqs = embeddingFrequencies(options.dim, options.maxFrequency);
  return tf.tidy(() => {
    const f = tf.tensor2d(Float32Array.from(freqs), [1, freqs.length]);
    const angle = tf.mul(tf.reshape(s, [-1, 1]), f); // [K, dim/2]
    const sin = tf.sin(angle);
    const cos = tf.cos(angle);
    const value = tf.concat([sin, cos], 1) as Tensor2D;
    if (options.ds === undefined) return { value, tangent: undefined };
    const ds = typeof options.ds === "number"
      ? tf.scalar(options.ds)
      : tf.reshape(options.ds, [-1, 1]);
    const tangent = tf.mul(tf.concat([tf.mul(cos, f), tf.neg(tf.mul(sin, f))], 1), ds);
    return { value, tangent: tangent as Tensor2D };
  });
}
