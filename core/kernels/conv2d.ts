/**
 * `Conv2D` for the wasm backend on our own WASM SIMD kernel (`src/conv2d.c`): the input read in
 * place (the output split into rectangles whose taps are all inside it, each with the filter taps
 * it needs packed in blocks of 8 output channels), register tiles of 6 output pixels x 8 output
 * channels with `f32x4` multiply-adds (fused with relaxed SIMD). Dilated convolutions go to
 * XNNPACK.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ConvGradGeometry } from "./_conv_geometry.ts";
import { conv2dPlan, runOwnConvPlan } from "./_conv_own_plan.ts";
import { Scratch, type WasmBackend, wasmOps } from "./_wasm.ts";

/** Attributes of `Conv2D`. */
interface Conv2DAttrs {
  readonly strides: number | [number, number];
  readonly pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  readonly dataFormat?: "NHWC" | "NCHW";
  readonly dilations?: number | [number, number];
  readonly dimRoundingMode?: "floor" | "round" | "ceil";
}

interface Args {
  inputs: { x: tf.TensorInfo; filter: tf.TensorInfo };
  backend: unknown;
  attrs: Conv2DAttrs;
}

/**
 * The geometry of a `Conv2D` call, checked (NHWC, float32) and resolved by tfjs's own
 * `computeConv2DInfo` (so same, valid and explicit padding match the other backends).
 *
 * @param args The kernel's inputs and attributes.
 * @returns The sizes and the dilations.
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dGeometry(
  args: Args,
): ConvGradGeometry & { pb: number; pr: number; dh: number; dw: number } {
  const { x, filter } = args.inputs;
  const { attrs } = args;
  if (attrs.dataFormat === "NCHW") {
    throw new Error("Conv2D on wasm supports NHWC only; got dataFormat NCHW");
  }
  const wrong = [x, filter].find((t) => t.dtype !== "float32");
  if (wrong !== undefined) {
    throw new Error(`Conv2D on wasm needs float32 inputs, got ${wrong.dtype}`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  return {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    cin: info.inChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    cout: info.outChannels,
    ho: info.outHeight,
    wo: info.outWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    pt: info.padInfo.top,
    pl: info.padInfo.left,
    pb: info.padInfo.bottom,
    pr: info.padInfo.right,
    dh: info.dilationHeight,
    dw: info.dilationWidth,
  };
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels} with
 * `conv2d: "own"`).
 *
 * @param args x `[n, h, w, cin]`, filter `[kh, kw, cin, cout]`; strides, padding (same, valid or
 *   explicit), dilations.
 * @returns y `[n, ho, wo, cout]`.
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dOwnWasm(args: Args): tf.TensorInfo {
  const { x, filter } = args.inputs;
  const backend = args.backend as WasmBackend;
  const g = conv2dGeometry(args);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([g.n, g.ho, g.wo, g.cout]);
    if (outT.size === 0) return out;
    if (g.dh !== 1 || g.dw !== 1) {
      wasmOps(backend).conv2d({
        xId: scratch.of(x).id,
        batch: g.n,
        height: g.h,
        width: g.w,
        filterId: scratch.of(filter).id,
        filterHeight: g.kh,
        filterWidth: g.kw,
        padTop: g.pt,
        padRight: g.pr,
        padBottom: g.pb,
        padLeft: g.pl,
        dilationHeight: g.dh,
        dilationWidth: g.dw,
        strideHeight: g.sh,
        strideWidth: g.sw,
        inChannels: g.cin,
        outChannels: g.cout,
        outId: outT.id,
      });
      return out;
    }
    runOwnConvPlan(backend, conv2dPlan(g), x, filter, outT);
    return out;
  } finally {
    scratch.release();
  }
}
