/**
 * Geometry of the convolution gradients: the stride-phase decomposition of the input gradient and
 * the dilated-convolution form of the filter gradient, in one spatial dimension.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** Attributes of a convolution-gradient kernel (those of the forward convolution). */
export interface ConvGradAttrs {
  /** Strides of the forward convolution. */
  readonly strides: number | [number, number];
  /** Padding of the forward convolution. */
  readonly pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  /** Only NHWC is supported. */
  readonly dataFormat?: "NHWC" | "NCHW";
  /** Rounding of the output size. */
  readonly dimRoundingMode?: "floor" | "round" | "ceil";
}

/** Sizes of a convolution, from the point of view of its gradients. */
export interface ConvGradGeometry {
  /** Batch, input height, input width, input channels. */
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  /** Filter height, width and output channels. */
  readonly kh: number;
  readonly kw: number;
  readonly cout: number;
  /** Output (dy) height and width. */
  readonly ho: number;
  readonly wo: number;
  /** Strides and padding before (top, left). */
  readonly sh: number;
  readonly sw: number;
  readonly pt: number;
  readonly pl: number;
}

/**
 * The preamble both convolution-gradient kernels share: checks the layout and dtypes, then
 * resolves strides and padding with tfjs's own `computeConv2DInfo` (so same, valid and explicit
 * padding match the other backends).
 *
 * @param kernel Kernel name for messages (`Conv2DBackpropFilter`, `Conv2DBackpropInput`).
 * @param xShape Input shape `[n, h, w, cin]`.
 * @param filterShape Filter shape `[kh, kw, cin, cout]`.
 * @param dy The output gradient `[n, ho, wo, cout]`.
 * @param inputs Every float input of the kernel (dtype-checked).
 * @param attrs Strides, padding, layout, rounding.
 * @returns The sizes.
 * @throws {Error} On NCHW data or a non-float32 input.
 */
export function convGradGeometry(
  kernel: string,
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  dy: tf.TensorInfo,
  inputs: readonly tf.TensorInfo[],
  attrs: ConvGradAttrs,
): ConvGradGeometry {
  if (attrs.dataFormat === "NCHW") {
    throw new Error(`${kernel} on wasm supports NHWC only; got dataFormat NCHW`);
  }
  const wrong = inputs.find((t) => t.dtype !== "float32");
  if (wrong !== undefined) {
    throw new Error(`${kernel} on wasm needs float32 inputs, got ${wrong.dtype}`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const [n, h, w, cin] = xShape;
  const [kh, kw, , cout] = filterShape;
  return {
    n,
    h,
    w,
    cin,
    kh,
    kw,
    cout,
    ho: dy.shape[1],
    wo: dy.shape[2],
    sh: info.strideHeight,
    sw: info.strideWidth,
    pt: info.padInfo.top,
    pl: info.padInfo.left,
  };
}

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
