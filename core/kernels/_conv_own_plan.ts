/**
 * The calls of our own convolution kernels (`src/conv2d.c`) that compute `Conv2D` and
 * `Conv2DBackpropInput`, as data: a plan says how much scratch it needs (a packed filter and a
 * table of rectangles) and, given the heap addresses, which exports to call in order. The wasm
 * kernel functions run a plan through `callOwnKernel`; the tests run the same plan on a binary of
 * their choice, share by share.
 *
 * Neither plan copies its input: the output is split into rectangles whose taps all lie inside
 * the input ({@linkcode tapSegments} along each axis; for "same" padding the interior, four edges
 * and four corners), each a correlation reading the input in place with the window of the packed
 * filter that holds its taps in bounds. Out-of-bounds taps cost nothing (the padded form
 * multiplied them by zeros), and there is no pass over memory to pad. The filter is packed once,
 * and one call (`conv2d_rects_f32`) computes every rectangle: one synchronisation of the worker
 * pool per convolution, whose work (all rectangles' tiles) is split over the threads' shares.
 *
 * The input gradient uses the stride-phase split of {@linkcode phases}: each phase `(r_y, r_x)` is
 * a stride-1 correlation of dy with a reversed, channel-transposed sub-filter (packed one after
 * the other), written straight into its interleaved positions of dx. Pixels of dx that get no tap
 * (a stride larger than the filter, such as a 1x1 stride-2 projection) are rectangles without
 * taps, which the same call writes as zeros.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { type ConvGradGeometry, type Phase, phases } from "./_conv_geometry.ts";
import { callOwnKernel, type OwnKernelArgs, ownKernels } from "./_own_kernels.ts";
import { type HeapTensor, Scratch, type WasmBackend } from "./_wasm.ts";

/** The exports a convolution plan calls. */
export type ConvKernelName = "conv2d_pack_filter_f32" | "conv2d_rects_f32";

/**
 * One call: an export and its arguments without `(part, parts)`, and `"single"` for a call too
 * small to be worth a synchronisation of the worker pool (a small filter's packing, a small
 * convolution): it runs as the single share `(0, 1)` on the calling thread. Either way the bits
 * are the same (see `src/simd.h`).
 */
export type ConvCall = {
  [K in ConvKernelName]: readonly [K, OwnKernelArgs<K>] | readonly [K, OwnKernelArgs<K>, "single"];
}[ConvKernelName];

/**
 * Multiply-adds (or floats written) below which a call runs on the calling thread alone: about
 * 40 microseconds of work on one core, more than a pool synchronisation costs.
 */
export const SINGLE_SHARE_WORK: number = 1 << 20;

/** `"single"` for a call of `work` multiply-adds (or floats written) below the threshold. */
function placement(work: number): ["single"] | [] {
  return work < SINGLE_SHARE_WORK ? ["single"] : [];
}

/**
 * Ints per rectangle in a plan's table (`conv2d_rects_f32`): the float offset of its filter
 * window in the packed filter, the floats per packed block of 8 output channels and per packed
 * filter row, the taps (kh, kw; kh = 0: no tap, the pixels are zeros), the output pixels per
 * image (oh, ow), the input pixel of its first tap (oy0, ox0) and its first output pixel (ry, rx).
 */
export const CONV_RECT_INTS = 11;

/** Heap byte addresses of a plan's operands. */
export interface ConvBuffers {
  /** The convolution's input: x (forward) or dy (input gradient). */
  readonly input: number;
  /** The filter, HWIO `[kh, kw, cin, cout]`. */
  readonly filter: number;
  /** The output: y (forward) or dx (input gradient). */
  readonly output: number;
  /** `packedFloats` floats. */
  readonly packed: number;
  /** The plan's {@linkcode OwnConvPlan.rects} (int32). */
  readonly rects: number;
}

/** Scratch sizes, rectangle table and calls of one kernel invocation. */
export interface OwnConvPlan {
  /** Floats of the packed filter (of every stride phase, one after the other). */
  readonly packedFloats: number;
  /** The rectangles, {@linkcode CONV_RECT_INTS} ints each, to be written at `buffers.rects`. */
  readonly rects: Int32Array;
  /** The calls, in order. */
  calls(buffers: ConvBuffers): ConvCall[];
}

/** Packed size of a filter of `taps` taps, `cin` inputs and `cout` outputs (blocks of 8). */
function packedSize(taps: number, cin: number, cout: number): number {
  return Math.ceil(cout / 8) * 8 * taps * cin;
}

/** One rectangle's row of the table. */
interface Rect {
  /** Float offset of the filter window in the packed filter. */
  readonly window: number;
  /** Floats per packed block. */
  readonly bstride: number;
  /** Floats per packed filter row. */
  readonly frow: number;
  /** Taps in bounds (kh = 0: none). */
  readonly kh: number;
  readonly kw: number;
  /** Output pixels per image. */
  readonly oh: number;
  readonly ow: number;
  /** Input pixel of the first tap. */
  readonly oy0: number;
  readonly ox0: number;
  /** First output pixel. */
  readonly ry: number;
  readonly rx: number;
}

/**
 * The call of `conv2d_rects_f32` for a plan's `count` rectangles: an input of `[n, hb, wb, cin]`
 * read with strides (sy, sx), an output of `[n, yh, yw, cout]` written with strides (ty, tx), and
 * `macs` multiply-adds in all (its placement).
 */
function rectsCall(
  b: ConvBuffers,
  count: number,
  shape: { n: number; hb: number; wb: number; cin: number; cout: number },
  strides: { sy: number; sx: number; yh: number; yw: number; ty: number; tx: number },
  macs: number,
): ConvCall {
  const { n, hb, wb, cin, cout } = shape;
  const { sy, sx, yh, yw, ty, tx } = strides;
  return [
    "conv2d_rects_f32",
    [b.input, b.packed, b.output, b.rects, count, n, hb, wb, cin, cout, sy, sx, yh, yw, ty, tx],
    ...placement(macs),
  ];
}

function rectTable(rects: readonly Rect[]): Int32Array {
  return Int32Array.from(
    rects.flatMap((r) => [
      r.window,
      r.bstride,
      r.frow,
      r.kh,
      r.kw,
      r.oh,
      r.ow,
      r.oy0,
      r.ox0,
      r.ry,
      r.rx,
    ]),
  );
}

/**
 * A run of outputs along one axis whose taps are in bounds of the input for the same filter
 * positions `[t0, t1)`: outputs `start .. start + count - 1`.
 */
export interface TapSegment {
  /** First output of the run. */
  readonly start: number;
  /** Number of outputs. */
  readonly count: number;
  /** First filter position in bounds for every output of the run. */
  readonly t0: number;
  /** One past the last (`t1 === t0 === 0`: no tap in bounds, the outputs are zero). */
  readonly t1: number;
}

/**
 * Splits `outSize` outputs of a correlation `y[o] = sum_t x[o s + t - p] w[t]` (`t < k`, input of
 * `inSize`) into runs with the same in-bounds taps: for "same" padding the first and last outputs
 * and the interior between them.
 *
 * @param k Filter size.
 * @param s Stride.
 * @param p Padding before.
 * @param inSize Input size.
 * @param outSize Output size.
 * @returns The runs, in order, covering every output once.
 */
export function tapSegments(
  k: number,
  s: number,
  p: number,
  inSize: number,
  outSize: number,
): TapSegment[] {
  const runs: TapSegment[] = [];
  for (let o = 0; o < outSize; o++) {
    let t0 = Math.max(0, p - o * s);
    let t1 = Math.min(k, inSize + p - o * s);
    if (t1 <= t0) t0 = t1 = 0; // no tap in bounds: one kind of empty run
    const last = runs[runs.length - 1];
    if (last !== undefined && last.t0 === t0 && last.t1 === t1) {
      runs[runs.length - 1] = { ...last, count: last.count + 1 };
    } else {
      runs.push({ start: o, count: 1, t0, t1 });
    }
  }
  return runs;
}

/**
 * `y = Conv2D(x, filter)` (NHWC, HWIO, dilation 1) for the geometry `g` (ho, wo: the output size).
 * No padded copy of x: the output is split into rectangles whose taps are all in bounds of x
 * ({@linkcode tapSegments} along each axis: for "same" padding the interior, four edges and four
 * corners), each a correlation of x, read in place, with the window of the packed filter that
 * holds its taps in bounds. Out-of-bounds taps contribute nothing, as in the padded form. Two
 * calls: the packing of the filter, then all rectangles.
 *
 * @param g The convolution's sizes, strides and padding.
 * @returns The plan.
 */
export function conv2dPlan(g: ConvGradGeometry): OwnConvPlan {
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = g;
  const ys = tapSegments(kh, sh, pt, h, ho);
  const xs = tapSegments(kw, sw, pl, w, wo);
  const rects: Rect[] = [];
  let macs = 0;
  for (const y of ys) {
    for (const x of xs) {
      const ty = y.t1 - y.t0, tx = x.t1 - x.t0;
      const taps = ty > 0 && tx > 0; // else the rectangle is zero
      macs += n * y.count * x.count * Math.max(1, ty * tx * cin) * cout;
      rects.push({
        window: (y.t0 * kw + x.t0) * cin * 8,
        bstride: kh * kw * cin * 8,
        frow: kw * cin * 8,
        kh: taps ? ty : 0,
        kw: tx,
        oh: y.count,
        ow: x.count,
        oy0: y.start * sh + y.t0 - pt,
        ox0: x.start * sw + x.t0 - pl,
        ry: y.start,
        rx: x.start,
      });
    }
  }
  const table = rectTable(rects);
  const packed = packedSize(kh * kw, cin, cout);
  return {
    packedFloats: packed,
    rects: table,
    calls: (b) => [
      [
        "conv2d_pack_filter_f32",
        [b.filter, b.packed, kh, kw, cin, cout, 0, kw * cin * cout, cin * cout, cout, 1],
        ...placement(packed),
      ],
      rectsCall(b, rects.length, { n, hb: h, wb: w, cin, cout }, {
        sy: sh,
        sx: sw,
        yh: ho,
        yw: wo,
        ty: 1,
        tx: 1,
      }, macs),
    ],
  };
}

/**
 * `dx = Conv2DBackpropInput(dy, filter)` for the forward geometry `g`: per stride phase, the
 * phase's correlation of dy with its reversed sub-filter, split like the forward pass into
 * rectangles whose taps are all in bounds of dy (read in place, no padded copy), each with the
 * window of its phase's packed sub-filter that holds those taps, and writing its interleaved
 * pixels of dx. The phases' sub-filters are packed one after the other (together the size of the
 * filter), then one call computes every rectangle of every phase; pixels no tap reaches (such as
 * the odd rows and columns of a 1x1 stride-2 projection) are rectangles without taps, written as
 * zeros.
 *
 * @param g The forward convolution's sizes, strides and padding.
 * @returns The plan.
 */
export function conv2dBackpropInputPlan(g: ConvGradGeometry): OwnConvPlan {
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = g;
  const py = phases(kh, sh, pt, h, ho).filter((p) => p.count > 0);
  const px = phases(kw, sw, pl, w, wo).filter((p) => p.count > 0);
  // The phase's correlation along one axis: dx[r + s a] = sum_j dy[a + skip - padBefore + j] w_j
  // (j < taps), split into runs of a with the same taps in bounds of dy.
  const runs = (p: Phase, size: number) =>
    p.taps > 0 ? tapSegments(p.taps, 1, p.padBefore - p.skip, size, p.count) : [
      { start: 0, count: p.count, t0: 0, t1: 0 },
    ];
  const tap = cin * cout;
  // Each phase with taps: its sub-filter packed at `at` (tap (jy, jx) = filter tap
  // (first_y + sh (taps_y - 1 - jy), ...), with the forward output channel as input and the
  // forward input channel as output), then its rectangles.
  const packs: { ty: number; tx: number; base: number; at: number; size: number }[] = [];
  const rects: Rect[] = [];
  let at = 0;
  let macs = 0;
  // Pixels no tap reaches: a rectangle without taps (written as zeros).
  const zeros = (ry: number, rx: number, oh: number, ow: number): Rect => ({
    window: 0,
    bstride: 0,
    frow: 0,
    kh: 0,
    kw: 0,
    oh,
    ow,
    oy0: 0,
    ox0: 0,
    ry,
    rx,
  });
  for (const y of py) {
    for (const x of px) {
      if (y.taps === 0 || x.taps === 0) {
        rects.push(zeros(y.r, x.r, y.count, x.count));
        macs += n * y.count * x.count * cin;
        continue;
      }
      const size = packedSize(y.taps * x.taps, cout, cin);
      const base = ((y.first + sh * (y.taps - 1)) * kw + x.first + sw * (x.taps - 1)) * tap;
      packs.push({ ty: y.taps, tx: x.taps, base, at, size });
      for (const ry of runs(y, ho)) {
        for (const rx of runs(x, wo)) {
          const ty = ry.t1 - ry.t0, tx = rx.t1 - rx.t0;
          if (ty === 0 || tx === 0) {
            rects.push(zeros(y.r + sh * ry.start, x.r + sw * rx.start, ry.count, rx.count));
            macs += n * ry.count * rx.count * cin;
            continue;
          }
          macs += n * ry.count * rx.count * ty * tx * cout * cin;
          rects.push({
            window: at + (ry.t0 * x.taps + rx.t0) * cout * 8,
            bstride: y.taps * x.taps * cout * 8,
            frow: x.taps * cout * 8,
            kh: ty,
            kw: tx,
            oh: ry.count,
            ow: rx.count,
            oy0: ry.start + y.skip - y.padBefore + ry.t0,
            ox0: rx.start + x.skip - x.padBefore + rx.t0,
            ry: y.r + sh * ry.start,
            rx: x.r + sw * rx.start,
          });
        }
      }
      at += size;
    }
  }
  const table = rectTable(rects);
  return {
    packedFloats: at,
    rects: table,
    calls(b) {
      const out: ConvCall[] = [];
      for (const p of packs) {
        out.push([
          "conv2d_pack_filter_f32",
          [
            b.filter,
            b.packed + 4 * p.at,
            p.ty,
            p.tx,
            cout,
            cin,
            p.base,
            -sh * kw * tap,
            -sw * tap,
            1,
            cout,
          ],
          ...placement(p.size),
        ]);
      }
      if (rects.length > 0) {
        // dy [n, ho, wo, cout] read at stride 1, each phase's pixels of dx [n, h, w, cin] written
        // at the stride.
        out.push(rectsCall(b, rects.length, { n, hb: ho, wb: wo, cin: cout, cout: cin }, {
          sy: 1,
          sx: 1,
          yh: h,
          yw: w,
          ty: sh,
          tx: sw,
        }, macs));
      }
      return out;
    },
  };
}

/**
 * Runs a plan on the wasm backend's heap: allocates its scratch (the packed filter and the
 * rectangle table), calls the kernels through `callOwnKernel` (the one call site) and releases
 * the scratch.
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
    const packed = plan.packedFloats > 0 ? scratch.temp([plan.packedFloats]).offset : 0;
    const rects = plan.rects.length > 0 ? scratch.temp([plan.rects.length]).offset : 0;
    // After the allocations (the heap may have grown): the table, as int32.
    scratch.i32.set(plan.rects, rects / 4);
    const buffers = {
      input: scratch.of(input).offset,
      filter: scratch.of(filter).offset,
      output: output.offset,
      packed,
      rects,
    };
    for (const [name, args, single] of plan.calls(buffers)) {
      if (single === undefined) {
        callOwnKernel(backend.wasm, name, args as OwnKernelArgs<typeof name>);
        continue;
      }
      const fn = ownKernels(backend.wasm)[name] as (...a: number[]) => void;
      try {
        fn(...(args as readonly number[]), 0, 1);
      } catch (e) {
        throw new Error(`Own WASM kernel ${name} failed: ${String(e)}`, { cause: e });
      }
    }
  } finally {
    scratch.release();
  }
}
