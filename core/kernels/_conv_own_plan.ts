/**
 * The calls of our own convolution kernels (`src/conv2d.c`) that compute `Conv2D` and
 * `Conv2DBackpropInput`, as data: a plan says how much scratch it needs (a zero-padded copy of
 * the input, a packed filter) and, given the heap addresses, which exports to call in order. The
 * wasm kernel functions run a plan through `callOwnKernel`; the tests run the same plan on a
 * binary of their choice, share by share.
 *
 * The input gradient uses the stride-phase split of {@linkcode phases}: each phase `(r_y, r_x)` is
 * a stride-1 correlation of dy (padded once for all phases) with a reversed, channel-transposed
 * sub-filter, written straight into its interleaved positions of dx. When some phase has no tap
 * (a stride larger than the filter, such as a 1x1 stride-2 projection), dx is first zeroed in one
 * sequential pass (the pad kernel with no input rows) and only the phases with taps are computed:
 * one pass over memory instead of one scattered pass per empty phase.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { type ConvGradGeometry, phases } from "./_conv_geometry.ts";
import { callOwnKernel, type OwnKernelArgs } from "./_own_kernels.ts";
import { type HeapTensor, Scratch, type WasmBackend } from "./_wasm.ts";

/** The exports a convolution plan calls. */
export type ConvKernelName = "conv2d_pad_f32" | "conv2d_pack_filter_f32" | "conv2d_f32";

/** One call: an export and its arguments without `(part, parts)`. */
export type ConvCall = { [K in ConvKernelName]: readonly [K, OwnKernelArgs<K>] }[ConvKernelName];

/** Heap byte addresses of a plan's operands. */
export interface ConvBuffers {
  /** The convolution's input: x (forward) or dy (input gradient). */
  readonly input: number;
  /** The filter, HWIO `[kh, kw, cin, cout]`. */
  readonly filter: number;
  /** The output: y (forward) or dx (input gradient). */
  readonly output: number;
  /** `paddedFloats` floats (unused when 0). */
  readonly padded: number;
  /** `packedFloats` floats. */
  readonly packed: number;
}

/** Scratch sizes and calls of one kernel invocation. */
export interface OwnConvPlan {
  /** Floats of the zero-padded input copy (0: the kernel reads the input in place). */
  readonly paddedFloats: number;
  /** Floats of the packed filter (the largest of the phases'). */
  readonly packedFloats: number;
  /** The calls, in order. */
  calls(buffers: ConvBuffers): ConvCall[];
}

/** Packed size of a filter of `taps` taps, `cin` inputs and `cout` outputs (blocks of 8). */
function packedSize(taps: number, cin: number, cout: number): number {
  return Math.ceil(cout / 8) * 8 * taps * cin;
}

/**
 * `y = Conv2D(x, filter)` (NHWC, HWIO, dilation 1) for the geometry `g` (ho, wo: the output size).
 *
 * @param g The convolution's sizes, strides and padding.
 * @returns The plan.
 */
export function conv2dPlan(g: ConvGradGeometry): OwnConvPlan {
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = g;
  // Rows and columns the taps reach in the padded input.
  const hb = (ho - 1) * sh + kh;
  const wb = (wo - 1) * sw + kw;
  const direct = pt === 0 && pl === 0 && hb <= h && wb <= w;
  return {
    paddedFloats: direct ? 0 : n * hb * wb * cin,
    packedFloats: packedSize(kh * kw, cin, cout),
    calls(b) {
      const calls: ConvCall[] = [];
      if (!direct) {
        calls.push(["conv2d_pad_f32", [b.input, b.padded, n, h, w, cin, hb, wb, pt, pl]]);
      }
      calls.push([
        "conv2d_pack_filter_f32",
        [b.filter, b.packed, kh, kw, cin, cout, 0, kw * cin * cout, cin * cout, cout, 1],
      ]);
      const [src, bh, bw] = direct ? [b.input, h, w] : [b.padded, hb, wb];
      calls.push([
        "conv2d_f32",
        [
          src,
          b.packed,
          b.output,
          n,
          bh,
          bw,
          cin,
          kh,
          kw,
          cout,
          ho,
          wo,
          sh,
          sw,
          0,
          0,
          ho,
          wo,
          0,
          0,
          1,
          1,
        ],
      ]);
      return calls;
    },
  };
}

/**
 * `dx = Conv2DBackpropInput(dy, filter)` for the forward geometry `g`: one packed sub-filter and
 * one correlation per stride phase.
 *
 * @param g The forward convolution's sizes, strides and padding.
 * @returns The plan.
 */
export function conv2dBackpropInputPlan(g: ConvGradGeometry): OwnConvPlan {
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = g;
  const py = phases(kh, sh, pt, h, ho).filter((p) => p.count > 0);
  const px = phases(kw, sw, pl, w, wo).filter((p) => p.count > 0);
  // One padded dy for all phases: the largest padding before, every row any phase reads.
  const before = (ps: typeof py) =>
    Math.max(0, ...ps.filter((p) => p.taps > 0).map((p) => p.padBefore));
  const top = before(py);
  const left = before(px);
  const start = (p: (typeof py)[number], pad: number) =>
    p.taps > 0 ? p.skip - p.padBefore + pad : 0;
  const extent = (ps: typeof py, pad: number) =>
    Math.max(0, ...ps.filter((p) => p.taps > 0).map((p) => start(p, pad) + p.count + p.taps - 1));
  const hb = extent(py, top);
  const wb = extent(px, left);
  const direct = top === 0 && left === 0 && hb <= ho && wb <= wo;
  const packed = Math.max(
    0,
    ...py.flatMap((a) => px.map((b) => packedSize(a.taps * b.taps, cout, cin))),
  );
  // Some phase has no tap: its dx pixels are zero.
  const zeroFill = py.some((p) => p.taps === 0) || px.some((p) => p.taps === 0);
  return {
    paddedFloats: direct ? 0 : n * hb * wb * cout,
    packedFloats: packed,
    calls(b) {
      const calls: ConvCall[] = [];
      if (!direct) {
        calls.push(["conv2d_pad_f32", [b.input, b.padded, n, ho, wo, cout, hb, wb, top, left]]);
      }
      const [src, bh, bw] = direct ? [b.input, ho, wo] : [b.padded, hb, wb];
      if (zeroFill) {
        // dx zeroed row by row (no input rows: every row of the "padded" output is zero).
        calls.push(["conv2d_pad_f32", [b.output, b.output, n, 0, 0, cin, h, w, 0, 0]]);
      }
      const tap = cin * cout;
      for (const y of py) {
        for (const x of px) {
          if (y.taps === 0 || x.taps === 0) continue; // zeroed above
          // Sub-filter tap (jy, jx) = filter tap (first_y + sh (taps_y - 1 - jy), ...), with
          // the forward output channel as input and the forward input channel as output.
          const base = ((y.first + sh * (y.taps - 1)) * kw + x.first + sw * (x.taps - 1)) * tap;
          calls.push([
            "conv2d_pack_filter_f32",
            [
              b.filter,
              b.packed,
              y.taps,
              x.taps,
              cout,
              cin,
              base,
              -sh * kw * tap,
              -sw * tap,
              1,
              cout,
            ],
          ]);
          calls.push([
            "conv2d_f32",
            [
              src,
              b.packed,
              b.output,
              n,
              bh,
              bw,
              cout,
              y.taps,
              x.taps,
              cin,
              y.count,
              x.count,
              1,
              1,
              start(y, top),
              start(x, left),
              h,
              w,
              y.r,
              x.r,
              sh,
              sw,
            ],
          ]);
        }
      }
      return calls;
    },
  };
}

/**
 * Runs a plan on the wasm backend's heap: allocates its scratch, calls the kernels through
 * `callOwnKernel` (the one call site) and releases the scratch.
 *
 * @param backend The wasm backend.
 * @param plan The plan.
 * @param input The input tensor (x or dy).
 * @param filter The filter tensor.
 * @param output The output, allocated by the caller.
 */
export function runOwnConvPlan(
  backend: WasmBackend,
  plan: OwnConvPlan,
  input: tf.TensorInfo,
  filter: tf.TensorInfo,
  output: HeapTensor,
): void {
  const scratch = new Scratch(backend);
  try {
    const padded = plan.paddedFloats > 0 ? scratch.temp([plan.paddedFloats]).offset : 0;
    const packed = plan.packedFloats > 0 ? scratch.temp([plan.packedFloats]).offset : 0;
    const buffers = {
      input: scratch.of(input).offset,
      filter: scratch.of(filter).offset,
      output: output.offset,
      padded,
      packed,
    };
    for (const [name, args] of plan.calls(buffers)) {
      callOwnKernel(backend.wasm, name, args as OwnKernelArgs<typeof name>);
    }
  } finally {
    scratch.release();
  }
}
