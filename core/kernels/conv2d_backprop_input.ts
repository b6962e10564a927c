/**
 * `Conv2DBackpropInput` for the wasm backend, built from XNNPACK's forward convolution: the input
 * gradient of a stride-s convolution is split by stride phase into s*s stride-1 convolutions of dy
 * with reversed, channel-transposed sub-filters, whose outputs are interleaved into dx. No work is
 * spent on the zeros that dilating dy would insert.
 *
 * {@linkcode conv2dBackpropInputOwnWasm} computes the same phases with our own WASM SIMD kernel
 * (`src/conv2d.c`), each phase writing its interleaved pixels of dx directly.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type ConvGradAttrs, convGradGeometry, phases } from "./_conv_geometry.ts";
import { conv2dBackpropInputPlan, runOwnConvPlan } from "./_conv_own_plan.ts";
import { Scratch, type WasmBackend, wasmOps } from "./_wasm.ts";

interface Args {
  inputs: { dy: tf.TensorInfo; filter: tf.TensorInfo };
  backend: unknown;
  attrs: ConvGradAttrs & { inputShape: [number, number, number, number] };
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels}).
 *
 * @param args dy `[n, ho, wo, cout]` and the filter `[kh, kw, cin, cout]`; `inputShape`, strides,
 *   padding (same, valid or explicit) of the forward convolution.
 * @returns dx, `inputShape`.
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dBackpropInputWasm(args: Args): tf.TensorInfo {
  const { dy, filter } = args.inputs;
  const backend = args.backend as WasmBackend;
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = inputGradGeometry(args);
  const ops = wasmOps(backend);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([n, h, w, cin]);
    if (outT.size === 0) return out;
    const dyT = scratch.of(dy);
    const fT = scratch.of(filter);
    const py = phases(kh, sh, pt, h, ho);
    const px = phases(kw, sw, pl, w, wo);
    const direct = sh === 1 && sw === 1 && py[0].skip === 0 && px[0].skip === 0 &&
      py[0].length === h && px[0].length === w;
    const empty = (p: { taps: number; count: number }) => p.taps === 0 && p.count > 0;
    if (py.some(empty) || px.some(empty)) {
      scratch.f32.fill(0, outT.offset / 4, outT.offset / 4 + outT.size);
    }
    for (const phY of py) {
      for (const phX of px) {
        if (phY.taps === 0 || phX.taps === 0 || phY.count === 0 || phX.count === 0) continue;
        // Sub-filter, reversed and with in/out channels swapped: [taps_y, taps_x, cout, cin].
        const sub = scratch.temp([phY.taps, phX.taps, cout, cin]);
        let heap = scratch.f32;
        const src = fT.offset / 4;
        let dst = sub.offset / 4;
        for (let jy = 0; jy < phY.taps; jy++) {
          const ky = phY.first + sh * (phY.taps - 1 - jy);
          for (let jx = 0; jx < phX.taps; jx++) {
            const kx = phX.first + sw * (phX.taps - 1 - jx);
            const tap = src + (ky * kw + kx) * cin * cout;
            for (let co = 0; co < cout; co++) {
              for (let ci = 0; ci < cin; ci++) heap[dst + ci] = heap[tap + ci * cout + co];
              dst += cin;
            }
          }
        }
        const target = direct ? outT : scratch.temp([n, phY.length, phX.length, cin]);
        ops.conv2d({
          xId: dyT.id,
          batch: n,
          height: ho,
          width: wo,
          filterId: sub.id,
          filterHeight: phY.taps,
          filterWidth: phX.taps,
          padTop: phY.padBefore,
          padRight: phX.padAfter,
          padBottom: phY.padAfter,
          padLeft: phX.padBefore,
          dilationHeight: 1,
          dilationWidth: 1,
          strideHeight: 1,
          strideWidth: 1,
          inChannels: cout,
          outChannels: cin,
          outId: target.id,
        });
        if (direct) continue;
        // Interleave: dx[b, r_y + s_y a, r_x + s_x c, :] = phase[b, skip_y + a, skip_x + c, :].
        heap = scratch.f32;
        const pBase = target.offset / 4;
        const oBase = outT.offset / 4;
        for (let b = 0; b < n; b++) {
          for (let a = 0; a < phY.count; a++) {
            let s = pBase + ((b * phY.length + phY.skip + a) * phX.length + phX.skip) * cin;
            let d = oBase + ((b * h + phY.r + sh * a) * w + phX.r) * cin;
            const step = sw * cin;
            for (let c = 0; c < phX.count; c++) {
              for (let ci = 0; ci < cin; ci++) heap[d + ci] = heap[s + ci];
              s += cin;
              d += step;
            }
          }
        }
      }
    }
    return out;
  } finally {
    scratch.release();
  }
}

/** The shapes, strides and padding of a backward-input call (validated; shared by both kernels). */
function inputGradGeometry(args: Args): ReturnType<typeof convGradGeometry> {
  const { dy, filter } = args.inputs;
  return convGradGeometry(
    "Conv2DBackpropInput",
    args.attrs.inputShape,
    filter.shape as [number, number, number, number],
    dy,
    [dy, filter],
    args.attrs,
  );
}

/**
 * The same kernel function on our own WASM SIMD kernel (registered by
 * {@linkcode registerWasmTrainingKernels} with `conv2dBackpropInput: "own"`).
 *
 * @param args As for {@linkcode conv2dBackpropInputWasm}.
 * @returns dx, `inputShape`.
 * @throws {Error} On NCHW data or non-float32 inputs.
 */
export function conv2dBackpropInputOwnWasm(args: Args): tf.TensorInfo {
  const { dy, filter } = args.inputs;
  const backend = args.backend as WasmBackend;
  const g = inputGradGeometry(args);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([g.n, g.h, g.w, g.cin]);
    if (outT.size === 0) return out;
    if (g.n * g.ho * g.wo === 0 || g.cout === 0) {
      scratch.f32.fill(0, outT.offset / 4, outT.offset / 4 + outT.size);
      return out;
    }
    runOwnConvPlan(backend, conv2dBackpropInputPlan(g), dy, filter, outT);
    return out;
  } finally {
    scratch.release();
  }
}
