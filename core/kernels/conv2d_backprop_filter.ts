/**
 * `Conv2DBackpropFilter` for the wasm backend (tfjs-backend-wasm has none), built from XNNPACK's
 * forward convolution. With x transposed to `[cin, h, w, n]` (batch = input channel, channels =
 * images) and dy to `[ho, wo, n, cout]` (a filter whose taps are the output pixels),
 * `dW[i, j, ci, co] = sum x[b, o_y s + i - p, o_x s + j - p, ci] dy[b, o_y, o_x, co]` is a
 * stride-1 convolution with dilation = stride, of output `[cin, kh, kw, cout]`, then transposed.
 *
 * {@linkcode conv2dBackpropFilterOwnWasm} computes the same with our own WASM SIMD kernel
 * (`src/conv2d_backprop_filter.c`), in place on the backend's heap, on all of the backend's
 * threads (through the own-kernel pool), 1x1 filters included: it reads x at the stride directly
 * where XNNPACK's matrix product needs x subsampled and one operand transposed first. Where dW is
 * small next to x and dy, the images are split into groups ({@linkcode filterGradImageGroups})
 * whose partial dW are added in a fixed order.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type ConvGradAttrs, convGradGeometry } from "./_conv_geometry.ts";
import { callOwnKernel } from "./_own_kernels.ts";
import { type HeapTensor, Scratch, type WasmBackend, wasmOps } from "./_wasm.ts";

interface Args {
  inputs: { x: tf.TensorInfo; dy: tf.TensorInfo };
  backend: unknown;
  attrs: ConvGradAttrs & { filterShape: [number, number, number, number] };
}

/** The shapes, strides and padding of a backward-filter call (validated; shared by both kernels). */
function filterGradGeometry(args: Args): ReturnType<typeof convGradGeometry> {
  const { x, dy } = args.inputs;
  return convGradGeometry(
    "Conv2DBackpropFilter",
    x.shape as [number, number, number, number],
    args.attrs.filterShape,
    dy,
    [x, dy],
    args.attrs,
  );
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels}).
 *
 * @param args x `[n, h, w, cin]`, dy `[n, ho, wo, cout]`; `filterShape`, strides and padding
 *   (same, valid or explicit) of the forward convolution.
 * @returns dW, `filterShape` (HWIO).
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dBackpropFilterWasm(args: Args): tf.TensorInfo {
  const { x, dy } = args.inputs;
  const backend = args.backend as WasmBackend;
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = filterGradGeometry(args);
  const ops = wasmOps(backend);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([kh, kw, cin, cout]);
    if (outT.size === 0) return out;
    if (n * ho * wo === 0) {
      scratch.f32.fill(0, outT.offset / 4, outT.offset / 4 + outT.size);
      return out;
    }
    if (kh === 1 && kw === 1 && pt === 0 && pl === 0) {
      pointwise(scratch, x, dy, outT, [n, h, w, cin], [ho, wo, cout], [sh, sw]);
      return out;
    }
    // The dilated "filter" spans s (o - 1) + 1 pixels; pad below/right so that at least kh x kw
    // outputs exist (extra ones, from padding the forward pass never read, are dropped).
    const pb = Math.max(0, kh + sh * (ho - 1) - h - pt);
    const pr = Math.max(0, kw + sw * (wo - 1) - w - pl);
    const lh = h + pt + pb - sh * (ho - 1);
    const lw = w + pl + pr - sw * (wo - 1);
    const xt = scratch.temp([cin, h, w, n]);
    ops.transpose(scratch.of(x), [n, h, w, cin], [3, 1, 2, 0], xt);
    const dyt = scratch.temp([ho, wo, n, cout]);
    ops.transpose(scratch.of(dy), [n, ho, wo, cout], [1, 2, 0, 3], dyt);
    const direct = lh === kh && lw === kw && cin === 1;
    const res = direct ? outT : scratch.temp([cin, lh, lw, cout]);
    ops.conv2d({
      xId: xt.id,
      batch: cin,
      height: h,
      width: w,
      filterId: dyt.id,
      filterHeight: ho,
      filterWidth: wo,
      padTop: pt,
      padRight: pr,
      padBottom: pb,
      padLeft: pl,
      dilationHeight: sh,
      dilationWidth: sw,
      strideHeight: 1,
      strideWidth: 1,
      inChannels: n,
      outChannels: cout,
      outId: res.id,
    });
    if (!direct) {
      // [cin, lh, lw, cout] -> [kh, kw, cin, cout], dropping rows/columns beyond kh/kw.
      const heap = scratch.f32;
      const rBase = res.offset / 4;
      let d = outT.offset / 4;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          for (let ci = 0; ci < cin; ci++) {
            const s = rBase + ((ci * lh + i) * lw + j) * cout;
            heap.copyWithin(d, s, s + cout);
            d += cout;
          }
        }
      }
    }
    return out;
  } finally {
    scratch.release();
  }
}

/**
 * The same kernel function on our own WASM SIMD kernel, threaded like the backend (every filter
 * size, 1x1 included).
 *
 * @param args As for {@linkcode conv2dBackpropFilterWasm}.
 * @returns dW, `filterShape` (HWIO).
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dBackpropFilterOwnWasm(args: Args): tf.TensorInfo {
  const { x, dy } = args.inputs;
  const backend = args.backend as WasmBackend;
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = filterGradGeometry(args);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([kh, kw, cin, cout]);
    if (outT.size === 0) return out;
    const xT = scratch.of(x);
    const dyT = scratch.of(dy);
    const groups = filterGradImageGroups(n, h * w * cin, ho * wo * cout, outT.size);
    const geometry = [n, h, w, cin, ho, wo, cout, kh, kw, sh, sw, pt, pl] as const;
    if (groups === 1) {
      callOwnKernel(backend.wasm, "conv2d_backprop_filter_f32", [
        xT.offset,
        dyT.offset,
        outT.offset,
        ...geometry,
      ]);
      return out;
    }
    const partials = scratch.temp([groups - 1, outT.size]);
    callOwnKernel(backend.wasm, "conv2d_backprop_filter_groups_f32", [
      xT.offset,
      dyT.offset,
      outT.offset,
      partials.offset,
      ...geometry,
      groups,
    ]);
    callOwnKernel(backend.wasm, "conv2d_backprop_filter_sum_f32", [
      outT.offset,
      partials.offset,
      outT.size,
      groups,
    ]);
    return out;
  } finally {
    scratch.release();
  }
}

/** Most image groups of the own backward-filter kernel (2 and 4 threads split them evenly). */
export const FILTER_GRAD_MAX_GROUPS = 4;

/**
 * Image groups of the own backward-filter kernel: the images are split into this many consecutive
 * groups, each summed into its own copy of dW (the first into dW itself) that a second pass adds
 * in group order, so that a share streams the images of its group rather than all of them. A
 * function of the shapes only (never of the thread count: the result's bits must not depend on
 * it): the largest power of two up to {@linkcode FILTER_GRAD_MAX_GROUPS} and `n` whose partials
 * (`groups - 1` copies of dW) take at most 1/16 of the memory of x and dy, so the peak heap grows
 * by little.
 *
 * @param n Images.
 * @param xImage Floats of one image of x.
 * @param dyImage Floats of one image of dy.
 * @param dwSize Floats of dW.
 * @returns The number of groups (1: no partials).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterGradImageGroups } from "./conv2d_backprop_filter.ts";
 * // ResNet-18 x0.25's 3x3 16->16 layer at batch 64: four groups of 16 images.
 * assert.equal(filterGradImageGroups(64, 32 * 32 * 16, 32 * 32 * 16, 3 * 3 * 16 * 16), 4);
 * // Its 3x3 128->128 layer on 4x4 pixels: dW is too large for copies.
 * assert.equal(filterGradImageGroups(64, 4 * 4 * 128, 4 * 4 * 128, 3 * 3 * 128 * 128), 1);
 * ```
 */
export function filterGradImageGroups(
  n: number,
  xImage: number,
  dyImage: number,
  dwSize: number,
): number {
  const data = n * (xImage + dyImage);
  let groups = 1;
  while (
    groups * 2 <= Math.min(n, FILTER_GRAD_MAX_GROUPS) && (groups * 2 - 1) * dwSize * 16 <= data
  ) groups *= 2;
  return groups;
}

/**
 * 1x1 filters: dW = xs^T dy with xs = x subsampled by the stride, as one XNNPACK product. Both
 * operands must be read along m: the left one is transposed here (a fast JS loop), the right one
 * is transposed while XNNPACK packs it, which is several times slower per element; so the operand
 * with more channels goes left: `[cin, m] @ [m, cout]` if cin > cout, else
 * `([cout, m] @ [m, cin])^T`.
 */
function pointwise(
  scratch: Scratch,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  outT: HeapTensor,
  [n, h, w, cin]: number[],
  [ho, wo, cout]: number[],
  [sh, sw]: number[],
): void {
  const ops = wasmOps(scratch.backend);
  const m = n * ho * wo;
  let xs = scratch.of(x);
  if (ho !== h || wo !== w) {
    const sub = scratch.temp([n, ho, wo, cin]);
    const heap = scratch.f32;
    const src = xs.offset / 4;
    let d = sub.offset / 4;
    for (let b = 0; b < n; b++) {
      for (let a = 0; a < ho; a++) {
        let s = src + ((b * h + a * sh) * w) * cin;
        for (let c = 0; c < wo; c++) {
          heap.copyWithin(d, s, s + cin);
          d += cin;
          s += sw * cin;
        }
      }
    }
    xs = sub;
  }
  const dyT = scratch.of(dy);
  // XNNPACK packs (and caches) the right operand under its id: give it a view released with the
  // scratch, so that no packed copy outlives this call.
  if (cin > cout) {
    const a = scratch.temp([cin, m]);
    ops.transpose(xs, [m, cin], [1, 0], a);
    ops.matmul(a.id, cin, m, scratch.view(dyT.offset, dyT.size).id, cout, outT.id);
  } else {
    const a = scratch.temp([cout, m]);
    ops.transpose(dyT, [m, cout], [1, 0], a);
    const res = scratch.temp([cout, cin]);
    ops.matmul(a.id, cout, m, scratch.view(xs.offset, xs.size).id, cin, res.id);
    ops.transpose(res, [cout, cin], [1, 0], outT);
  }
}
