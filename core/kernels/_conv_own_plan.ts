/**
 * The calls of our own convolution kernels (`src/conv2d.c`) that compute `Conv2D` and
 * `Conv2DBackpropInput`, as data: a plan says how much scratch it needs (a packed filter; the
 * kernels could also read a zero-padded copy of the input, which neither plan needs) and, given the
 * heap addresses, which exports to call in order. The wasm kernel functions run a plan through
 * `callOwnKernel`; the tests run the same plan on a binary of their choice, share by share.
 *
 * Neither plan copies its input: the output is split into rectangles whose taps all lie inside
 * the input ({@linkcode tapSegments} along each axis; for "same" padding the interior, four edges
 * and four corners), each computed by one call of the correlation kernel reading the input in
 * place with a sub-filter of the taps in bounds, packed for it. Out-of-bounds taps cost nothing
 * (the padded form multiplied them by zeros), and there is no pass over memory to pad.
 *
 * The input gradient uses the stride-phase split of {@linkcode phases}: each phase `(r_y, r_x)` is
 * a stride-1 correlation of dy with a reversed, channel-transposed sub-filter, written straight
 * into its interleaved positions of dx. When some pixels of dx get no tap (a stride larger than
 * the filter, such as a 1x1 stride-2 projection), dx is first zeroed in one sequential pass (the
 * pad kernel with no input rows) and only the rectangles with taps are computed.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { type ConvGradGeometry, type Phase, phases } from "./_conv_geometry.ts";
import { callOwnKernel, type OwnKernelArgs, ownKernels } from "./_own_kernels.ts";
import { type HeapTensor, Scratch, type WasmBackend } from "./_wasm.ts";

/** The exports a convolution plan calls. */
export type ConvKernelName = "conv2d_pad_f32" | "conv2d_pack_filter_f32" | "conv2d_f32";

/**
 * One call: an export and its arguments without `(part, parts)`, and `"single"` for a call too
 * small to be worth a synchronisation of the worker pool (a corner of the output and its filter
 * packing): it runs as the single share `(0, 1)` on the calling thread. Either way the bits are
 * the same (see `src/simd.h`). The plans put the calls for the pool first, back to back, so that
 * the workers stay awake between them (a worker sleeps after a short spin without work), and the
 * single ones last.
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
 * The calls of the rectangles (a packing and a correlation each, with the same placement): those
 * of the pool first, then the single ones, each rectangle's calls in order.
 */
function poolFirst(rects: ConvCall[][]): ConvCall[] {
  const single = (calls: ConvCall[]) => calls[calls.length - 1].length === 3;
  return [...rects.filter((r) => !single(r)), ...rects.filter(single)].flat();
}

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
  /**
   * Floats of a zero-padded input copy (0: the kernels read the input in place, as both plans
   * here do).
   */
  readonly paddedFloats: number;
  /** Floats of the packed filter (the largest of the rectangles' sub-filters). */
  readonly packedFloats: number;
  /** The calls, in order. */
  calls(buffers: ConvBuffers): ConvCall[];
}

/** Packed size of a filter of `taps` taps, `cin` inputs and `cout` outputs (blocks of 8). */
function packedSize(taps: number, cin: number, cout: number): number {
  return Math.ceil(cout / 8) * 8 * taps * cin;
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
 * corners), and each rectangle is one correlation of x with its own packed sub-filter (the taps
 * in bounds), reading x in place. Out-of-bounds taps contribute nothing, as in the padded form.
 *
 * @param g The convolution's sizes, strides and padding.
 * @returns The plan.
 */
export function conv2dPlan(g: ConvGradGeometry): OwnConvPlan {
  const { n, h, w, cin, kh, kw, cout, ho, wo, sh, sw, pt, pl } = g;
  const ys = tapSegments(kh, sh, pt, h, ho);
  const xs = tapSegments(kw, sw, pl, w, wo);
  const taps = (r: TapSegment) => r.t1 - r.t0;
  const packed = Math.max(
    0,
    ...ys.flatMap((a) => xs.map((b) => packedSize(taps(a) * taps(b), cin, cout))),
  );
  return {
    paddedFloats: 0,
    packedFloats: packed,
    calls(b) {
      const rects: ConvCall[][] = [];
      for (const y of ys) {
        for (const x of xs) {
          const ty = taps(y), tx = taps(x);
          const where = placement(n * y.count * x.count * Math.max(1, ty * tx * cin) * cout);
          const calls: ConvCall[] = [];
          if (ty > 0 && tx > 0) {
            calls.push([
              "conv2d_pack_filter_f32",
              [
                b.filter,
                b.packed,
                ty,
                tx,
                cin,
                cout,
                (y.t0 * kw + x.t0) * cin * cout,
                kw * cin * cout,
                cin * cout,
                cout,
                1,
              ],
              ...where,
            ]);
          }
          calls.push([
            "conv2d_f32",
            [
              b.input,
              b.packed,
              b.output,
              n,
              h,
              w,
              cin,
              ty > 0 && tx > 0 ? ty : 0, // no tap in bounds: the rectangle is zero
              tx,
              cout,
              y.count,
              x.count,
              sh,
              sw,
              y.start * sh + y.t0 - pt,
              x.start * sw + x.t0 - pl,
              ho,
              wo,
              y.start,
              x.start,
              1,
              1,
            ],
            ...where,
          ]);
          rects.push(calls);
        }
      }
      return poolFirst(rects);
    },
  };
}

/**
 * `dx = Conv2DBackpropInput(dy, filter)` for the forward geometry `g`: per stride phase, the
 * phase's correlation of dy with its reversed sub-filter, split like the forward pass into
 * rectangles whose taps are all in bounds of dy (read in place, no padded copy), each with its
 * own packed sub-filter and writing its interleaved pixels of dx. When some pixels of dx get no
 * tap (a phase no tap reaches, such as the odd rows and columns of a 1x1 stride-2 projection), dx
 * is first zeroed in one sequential pass and only the rectangles with taps are computed.
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
  const taps = (r: TapSegment) => r.t1 - r.t0;
  const rects = py.flatMap((y) =>
    px.flatMap((x) => runs(y, ho).flatMap((ry) => runs(x, wo).map((rx) => ({ y, x, ry, rx }))))
  );
  const packed = Math.max(0, ...rects.map((q) => packedSize(taps(q.ry) * taps(q.rx), cout, cin)));
  // Some pixels of dx get no tap: zero dx first, then compute only the rectangles with taps.
  const zeroFill = rects.some((q) => taps(q.ry) === 0 || taps(q.rx) === 0);
  return {
    paddedFloats: 0,
    packedFloats: packed,
    calls(b) {
      const calls: ConvCall[] = [];
      if (zeroFill) {
        // The pad kernel with no input rows: every row of its output (dx) is zero.
        calls.push([
          "conv2d_pad_f32",
          [b.output, b.output, n, 0, 0, cin, h, w, 0, 0],
          ...placement(n * h * w * cin),
        ]);
      }
      const tap = cin * cout;
      const pairs: ConvCall[][] = [];
      for (const { y, x, ry, rx } of rects) {
        const ty = taps(ry), tx = taps(rx);
        if (ty === 0 || tx === 0) continue; // zeroed above
        const where = placement(n * ry.count * rx.count * ty * tx * cout * cin);
        // Sub-filter tap (jy, jx) = filter tap (first_y + sh (taps_y - 1 - jy), ...), with the
        // forward output channel as input and the forward input channel as output; the
        // rectangle uses jy in [ry.t0, ry.t1), jx in [rx.t0, rx.t1).
        const ky = y.first + sh * (y.taps - 1 - ry.t0);
        const kx = x.first + sw * (x.taps - 1 - rx.t0);
        pairs.push([[
          "conv2d_pack_filter_f32",
          [
            b.filter,
            b.packed,
            ty,
            tx,
            cout,
            cin,
            (ky * kw + kx) * tap,
            -sh * kw * tap,
            -sw * tap,
            1,
            cout,
          ],
          ...where,
        ], [
          "conv2d_f32",
          [
            b.input,
            b.packed,
            b.output,
            n,
            ho,
            wo,
            cout,
            ty,
            tx,
            cin,
            ry.count,
            rx.count,
            1,
            1,
            ry.start + y.skip - y.padBefore + ry.t0,
            rx.start + x.skip - x.padBefore + rx.t0,
            h,
            w,
            y.r + sh * ry.start,
            x.r + sw * rx.start,
            sh,
            sw,
          ],
          ...where,
        ]]);
      }
      return [...calls, ...poolFirst(pairs)];
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
