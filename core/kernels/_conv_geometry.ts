/**
 * Geometry of the convolution gradients: the stride-phase decomposition of the input gradient and
 * the dilated-convolution form of the filter gradient, in one spatial dimension.
 *
 * @module
 */

/** One stride phase `r` of the input gradient along one axis. */
export interface Phase {
  /** Phase: input positions `r, r + s, r + 2s, ...`. */
  readonly r: number;
  /** Number of input positions in the phase. */
  readonly count: number;
  /** Filter taps that reach the phase: `first, first + s, ...` (`taps` of them; 0 = none). */
  readonly first: number;
  /** Number of taps. */
  readonly taps: number;
  /** Zero padding of dy before the stride-1 correlation. */
  readonly padBefore: number;
  /** Zero padding of dy after it. */
  readonly padAfter: number;
  /** Rows of the correlation's output to skip before the phase's first position. */
  readonly skip: number;
  /** Output length of the correlation (>= skip + count). */
  readonly length: number;
}

/**
 * Splits the input gradient of a strided correlation `y[o] = sum_i x[o s + i - p] w[i]` into `s`
 * stride-1 correlations of dy with reversed sub-filters `w[first + s (taps - 1 - j)]`:
 * `dx[r + s a] = sum_j dyPad[a + skip + j] w[first + s (taps - 1 - j)]`.
 *
 * @param k Filter size.
 * @param s Stride.
 * @param p Padding before (top or left).
 * @param inSize Input size (of x and dx).
 * @param outSize Output size (of dy).
 */
export function phases(k: number, s: number, p: number, inSize: number, outSize: number): Phase[] {
  const result: Phase[] = [];
  for (let r = 0; r < s; r++) {
    const count = r < inSize ? Math.ceil((inSize - r) / s) : 0;
    const first = (r + p) % s;
    const q = Math.floor((r + p) / s);
    const taps = first < k ? Math.ceil((k - first) / s) : 0;
    // dx[r + s a] needs dy[a + q - m] for m = 0..taps-1: dy shifted by q - (taps - 1).
    const shift = taps - 1 - q;
    const padBefore = Math.max(0, shift);
    const skip = Math.max(0, -shift);
    const natural = outSize + padBefore - taps + 1;
    const padAfter = Math.max(0, skip + count - natural);
    result.push({
      r,
      count,
      first,
      taps,
      padBefore,
      padAfter,
      skip,
      length: natural + padAfter,
    });
  }
  return result;
}
