// The plans of our own convolution kernels run directly on each kernel binary (plain and relaxed
// SIMD, plain and shared memory), share by share: every output element written, results
// bit-identical for 1, 2, 3 and 8 shares, and matching the cpu backend.
import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend (tfjs-core has none)
import assert from "node:assert/strict";
import { CONV_TABLE, convOutShape, type Pad, padArg, relativeError, values } from "./_test_util.ts";
import {
  conv2dBackpropInputPlan,
  conv2dPlan,
  CONV_RECT_INTS,
  type ConvCall,
  type OwnConvPlan,
  SINGLE_SHARE_WORK,
  tapSegments,
} from "./_conv_own_plan.ts";
import type { ConvGradGeometry } from "./_conv_geometry.ts";
import { ownKernelBytes, ownKernelsRelaxed } from "./_own_kernels.ts";

const VARIANTS = [
  { name: "plain SIMD", shared: false, relaxed: false },
  { name: "plain SIMD, shared memory", shared: true, relaxed: false },
  { name: "relaxed SIMD", shared: false, relaxed: true },
  { name: "relaxed SIMD, shared memory", shared: true, relaxed: true },
] as const;

type Kernel = (...args: number[]) => void;

/** A binary on a memory of its own, with a bump allocator. */
function instantiate(shared: boolean, relaxed: boolean) {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared });
  const exports = new WebAssembly.Instance(
    new WebAssembly.Module(ownKernelBytes(shared, relaxed)),
    { env: { memory } },
  ).exports as unknown as Record<string, Kernel>;
  return { memory, exports };
}

/** Runs `plan` share by share (`parts` shares per call) and returns the output. */
function runPlan(
  variant: { shared: boolean; relaxed: boolean },
  plan: OwnConvPlan,
  input: Float32Array,
  filter: Float32Array,
  outputSize: number,
  parts: number,
): Float32Array {
  const { memory, exports } = instantiate(variant.shared, variant.relaxed);
  let top = 1024;
  const alloc = (floats: number) => {
    const at = top;
    top += Math.ceil((floats * 4 + 16) / 64) * 64;
    return at;
  };
  const at = {
    input: alloc(input.length),
    filter: alloc(filter.length),
    output: alloc(outputSize),
    packed: alloc(plan.packedFloats),
    rects: alloc(plan.rects.length),
  };
  const pages = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
  if (pages > 0) memory.grow(pages);
  const heap = new Float32Array(memory.buffer);
  heap.set(input, at.input / 4);
  heap.set(filter, at.filter / 4);
  // NaN everywhere else: an output element no share writes, or a read of an unwritten scratch
  // element, shows up as NaN.
  heap.fill(NaN, at.output / 4, top / 4);
  new Int32Array(memory.buffer).set(plan.rects, at.rects / 4);
  for (const [name, args] of plan.calls(at)) {
    for (let part = 0; part < parts; part++) exports[name](...args, part, parts);
  }
  return new Float32Array(memory.buffer).slice(at.output / 4, at.output / 4 + outputSize);
}

function geometry(xShape: number[], k: number, cout: number, s: number, p: Pad): ConvGradGeometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    [k, k, xShape[3], cout],
    s,
    1,
    padArg(p),
  );
  const [n, h, w, cin] = xShape;
  return {
    n,
    h,
    w,
    cin,
    kh: k,
    kw: k,
    cout,
    ho: info.outHeight,
    wo: info.outWidth,
    sh: s,
    sw: s,
    pt: info.padInfo.top,
    pl: info.padInfo.left,
  };
}

const shapes: [number[], number, number, number, Pad][] = [
  ...CONV_TABLE,
  // Several tiles and channel blocks per share, a tail in both.
  [[3, 7, 7, 12], 3, 27, 1, "same"],
  [[2, 9, 9, 9], 3, 17, 2, "same"],
];

for (const variant of VARIANTS) {
  Deno.test({
    name: `own conv kernels (${variant.name}): forward and input gradient match cpu, ` +
      "bit-identical for 1, 2, 3 and 8 shares (some empty)",
    ignore: variant.relaxed && !ownKernelsRelaxed(),
    fn: async () => {
      await tf.setBackend("cpu");
      for (const [xShape, k, cout, s, p] of shapes) {
        const name = `[${xShape}] k${k} cout${cout} s${s} pad ${p}`;
        const g = geometry(xShape, k, cout, s, p);
        const yShape = convOutShape(xShape, k, cout, s, p);
        const xv = values(xShape.reduce((a, b) => a * b), 1);
        const wv = values(k * k * g.cin * cout, 2);
        const dyv = values(yShape.reduce((a, b) => a * b), 3);
        const [yRef, dxRef] = tf.tidy(() => {
          const w = tf.tensor4d(wv, [k, k, g.cin, cout]);
          const x = tf.tensor4d(xv, xShape as [number, number, number, number]);
          const dy = tf.tensor4d(dyv, yShape as [number, number, number, number]);
          return [
            tf.conv2d(x, w, s, padArg(p)).dataSync(),
            tf.conv2dTranspose(dy, w, xShape as [number, number, number, number], s, padArg(p))
              .dataSync(),
          ];
        });
        const cases = [
          ["y", conv2dPlan(g), xv, yRef],
          ["dx", conv2dBackpropInputPlan(g), dyv, dxRef],
        ] as const;
        for (const [what, plan, input, ref] of cases) {
          const one = runPlan(variant, plan, input, wv, ref.length, 1);
          const err = relativeError(one, ref);
          assert.ok(err <= 1e-5, `${name}: ${what} relative error ${err}`);
          for (const parts of [2, 3, 8]) {
            const split = runPlan(variant, plan, input, wv, ref.length, parts);
            assert.deepEqual(split, one, `${name}: ${what} with ${parts} shares`);
          }
        }
      }
    },
  });
}

/** The rectangles of a plan's table: `[kh, kw, oh, ow]` each. */
function rectShapes(plan: OwnConvPlan): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < plan.rects.length; r += CONV_RECT_INTS) {
    out.push(Array.from(plan.rects.subarray(r + 3, r + 7)));
  }
  return out;
}

const BUFFERS = { input: 64, filter: 128, output: 256, packed: 512, rects: 1024 };

Deno.test("the input-gradient plan writes phases no tap reaches (1x1, stride 2) as zeros", () => {
  const g = geometry([1, 6, 6, 2], 1, 3, 2, "valid");
  const plan = conv2dBackpropInputPlan(g);
  const calls = plan.calls({ ...BUFFERS, output: 64 });
  // Phases (0, 1), (1, 0), (1, 1) have no tap along one axis: rectangles without taps (3 x 3
  // pixels each, written as zeros by the same call); only phase (0, 0) is packed and computed:
  // one rectangle of 3 x 3 pixels, one tap.
  assert.deepEqual(calls.map(([name]) => name), ["conv2d_pack_filter_f32", "conv2d_rects_f32"]);
  assert.deepEqual(rectShapes(plan), [[1, 1, 3, 3], [0, 0, 3, 3], [0, 0, 3, 3], [0, 0, 3, 3]]);
  // Their first output pixels: the phases' offsets.
  const at = (r: number) =>
    Array.from(plan.rects.subarray(r * CONV_RECT_INTS + 9, r * CONV_RECT_INTS + 11));
  assert.deepEqual([0, 1, 2, 3].map(at), [[0, 0], [0, 1], [1, 0], [1, 1]]);
  const dx = runPlan(VARIANTS[0], plan, values(27, 4), values(6, 5), 72, 1);
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 6; x++) {
      const zero = y % 2 === 1 || x % 2 === 1;
      for (let c = 0; c < 2; c++) {
        const v = dx[(y * 6 + x) * 2 + c];
        assert.ok(zero ? v === 0 : v !== 0 && !Number.isNaN(v), `dx[${y}, ${x}, ${c}] = ${v}`);
      }
    }
  }
});

Deno.test("tapSegments splits outputs into runs with the same taps in bounds", () => {
  // 3 taps, "same" on 32: the first output misses tap 0, the last misses tap 2.
  assert.deepEqual(tapSegments(3, 1, 1, 32, 32), [
    { start: 0, count: 1, t0: 1, t1: 3 },
    { start: 1, count: 30, t0: 0, t1: 3 },
    { start: 31, count: 1, t0: 0, t1: 2 },
  ]);
  // Stride 2, "same" on 32 (no padding before, one after).
  assert.deepEqual(tapSegments(3, 2, 0, 32, 16), [
    { start: 0, count: 15, t0: 0, t1: 3 },
    { start: 15, count: 1, t0: 0, t1: 2 },
  ]);
  // 1 tap with padding 2: the outputs in the padding have no tap (one kind of empty run).
  assert.deepEqual(tapSegments(1, 1, 2, 2, 6), [
    { start: 0, count: 2, t0: 0, t1: 0 },
    { start: 2, count: 2, t0: 0, t1: 1 },
    { start: 4, count: 2, t0: 0, t1: 0 },
  ]);
  // Valid: one run.
  assert.deepEqual(tapSegments(7, 3, 0, 17, 4), [{ start: 0, count: 4, t0: 0, t1: 7 }]);
});

Deno.test("the plans read the input in place: one packing, then one call for every rectangle", () => {
  const g = geometry([2, 8, 8, 8], 3, 8, 1, "same");
  for (const plan of [conv2dPlan(g), conv2dBackpropInputPlan(g)]) {
    const calls = plan.calls(BUFFERS);
    assert.deepEqual(calls.map(([name]) => name), ["conv2d_pack_filter_f32", "conv2d_rects_f32"]);
    const [, conv] = calls[1];
    assert.equal(conv[0], BUFFERS.input, "reads the input itself");
    assert.equal(conv[3], BUFFERS.rects);
    assert.equal(conv[4], 9, "nine rectangles");
    assert.equal(plan.packedFloats, 9 * 8 * 8, "the filter packed once (one stride phase)");
    // Taps (kh, kw) and output pixels (oh, ow) per rectangle: 64 pixels in all, 3 x 3 taps
    // inside, 2 x 2 at the corners.
    assert.deepEqual(rectShapes(plan), [
      [2, 2, 1, 1],
      [2, 3, 1, 6],
      [2, 2, 1, 1],
      [3, 2, 6, 1],
      [3, 3, 6, 6],
      [3, 2, 6, 1],
      [2, 2, 1, 1],
      [2, 3, 1, 6],
      [2, 2, 1, 1],
    ]);
    // The windows: the top-left corner uses taps (1..2, 1..2) of the packed 3 x 3 filter (rows of
    // 3 taps x 8 channels x 8 lanes), the interior all of it.
    assert.deepEqual(Array.from(plan.rects.subarray(0, 3)), [(3 + 1) * 64, 9 * 64, 3 * 64]);
    assert.deepEqual(Array.from(plan.rects.subarray(4 * CONV_RECT_INTS, 4 * CONV_RECT_INTS + 3)), [
      0,
      9 * 64,
      3 * 64,
    ]);
  }
  // Stride 2: four phases (2 x 2, 2 x 1, 1 x 2, 1 x 1 taps), packed one after the other.
  const s2 = conv2dBackpropInputPlan(geometry([2, 8, 8, 4], 3, 8, 2, "same"));
  const calls = s2.calls(BUFFERS);
  assert.deepEqual(calls.map(([name]) => name), [
    ...Array(4).fill("conv2d_pack_filter_f32"),
    "conv2d_rects_f32",
  ]);
  assert.equal(s2.packedFloats, 9 * 8 * 8);
  assert.deepEqual(calls.slice(0, 4).map(([, a]) => (a[1] - BUFFERS.packed) / 4), [
    0,
    256,
    384,
    512,
  ]);
});

Deno.test("small calls run alone on the calling thread, large ones on the pool", () => {
  const g = geometry([64, 32, 32, 16], 3, 16, 1, "same");
  const where = (calls: ConvCall[]) =>
    calls.map(([name, , single]) => `${name} ${single ?? "pool"}`);
  // The packing (9 x 16 x 16 floats) alone, the convolution (64 x 32 x 32 x 9 x 16 x 16
  // multiply-adds, less the taps out of bounds) on the pool.
  assert.deepEqual(where(conv2dPlan(g).calls(BUFFERS)), [
    "conv2d_pack_filter_f32 single",
    "conv2d_rects_f32 pool",
  ]);
  assert.ok(9 * 16 * 16 < SINGLE_SHARE_WORK && SINGLE_SHARE_WORK < 64 * 30 * 30 * 9 * 16 * 16);
  // A small convolution alone.
  assert.deepEqual(where(conv2dPlan(geometry([1, 8, 8, 16], 3, 16, 1, "same")).calls(BUFFERS)), [
    "conv2d_pack_filter_f32 single",
    "conv2d_rects_f32 single",
  ]);
  // The input gradient of a 1x1 stride-2 projection: its zero rectangles in the same call.
  const dx = conv2dBackpropInputPlan(geometry([64, 32, 32, 16], 1, 32, 2, "same")).calls(BUFFERS);
  assert.deepEqual(where(dx), ["conv2d_pack_filter_f32 single", "conv2d_rects_f32 pool"]);
});
