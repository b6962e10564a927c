/**
 * The tile loop: the inner loop of the own convolution kernels' register tile, alone, as a second
 * yardstick beside the SIMD roof (`measureSimdRoof` runs either). Per pixel it loads two `f32x4`
 * vectors (8 output channels) and broadcasts six floats (6 input channels) from memory and does 12
 * multiply-adds into 12 accumulators, over {@linkcode SIMD_TILE_PIXELS} pixels that stay in the L1
 * cache, with the addresses computed as clang emits them for the kernels (an `i32.add` per
 * load). The roof runs multiply-adds only; the tile loop adds what a kernel cannot avoid: 8 loads
 * per 12 multiply-adds, each with the runtime's bounds check. Deno does not install V8's
 * WebAssembly trap handler, so V8 compiles every load with an explicit check (a compare and a
 * branch), and on some CPUs (Intel cores, whose multiply-add ports also run those integer
 * instructions) that caps the kernels well below the roof (45-67 % on an Intel Xeon host, where this
 * loop ran at 50-77 %); on others (AMD's, with integer pipes of their own) the same kernels reached
 * 85-98 % of it. The tile loop's rate over the roof's, measured in the same run, says which kind of
 * host a benchmark ran on.
 *
 * The module owns one page of memory (a data segment holds the operands). Every pixel pair adds and
 * then subtracts the same exact products (the operands are small powers of two times small
 * integers), so after whole passes every accumulator is back at its starting value: the checksum
 * of any pass count is the sum of the starting values ({@linkcode simdTileChecksum}).
 *
 * @module
 */
import {
  BLOCK,
  BR,
  BR_IF,
  EMPTY,
  END,
  f32Bytes,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_RELAXED_MADD,
  I32,
  I32_ADD,
  I32_CONST,
  I32_EQZ,
  I32_SUB,
  laneSum,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  LOOP,
  measurementModule,
  SIMD,
  sleb,
  startValue,
  uleb,
  V128,
  V128_LOAD,
  V128_LOAD32_SPLAT,
  v128Const,
  vec,
} from "./_wasm_encode.ts";

/** Input channels (broadcasts) of the tile. */
export const SIMD_TILE_ROWS = 6;
/** `f32x4` vectors of output channels of the tile. */
export const SIMD_TILE_VECTORS = 2;
/** Pixels per pass (an even number: see the module docs). */
export const SIMD_TILE_PIXELS = 64;
/** Floating-point operations per pass: pixels x 12 multiply-adds x 4 lanes x 2. */
export const SIMD_TILE_FLOPS_PER_ITERATION: number = SIMD_TILE_PIXELS * SIMD_TILE_ROWS *
  SIMD_TILE_VECTORS * 4 * 2;

/** Floats per pixel in memory, for both operands (8 output channels; 6 of 8 input floats used). */
const STRIDE = 8;
/** Byte address of the broadcast operand (after the vector operand). */
const X_BASE = SIMD_TILE_PIXELS * STRIDE * 4;
const ACCUMULATORS = SIMD_TILE_ROWS * SIMD_TILE_VECTORS;

/**
 * The operands: vector lanes (8 + lane % 4) / 512, positive on even pixels and negative on odd
 * ones; broadcasts (8 + c) / 64 for input channel c. Every product is a small integer times
 * 2^-15, exact, and so is every partial sum with the starting values (multiples of 1/8 below 16).
 */
function operands(): number[] {
  const values: number[] = [];
  for (let p = 0; p < SIMD_TILE_PIXELS; p++) {
    for (let l = 0; l < STRIDE; l++) values.push(((p % 2 === 0 ? 1 : -1) * (8 + (l % 4))) / 512);
  }
  for (let p = 0; p < SIMD_TILE_PIXELS; p++) {
    for (let c = 0; c < STRIDE; c++) values.push((8 + c) / 64);
  }
  return values;
}

/**
 * The tile loop module's bytes: `roof(iterations: i32) -> f32` (the roof's signature) makes
 * `iterations` passes over {@linkcode SIMD_TILE_PIXELS} pixels
 * ({@linkcode SIMD_TILE_FLOPS_PER_ITERATION} flops each) and returns the sum of every lane of
 * every accumulator; `memory` holds the operands (the vectors of pixel p at byte 32p, the
 * broadcasts at 32 (64 + p)).
 *
 * @param options `relaxed`: use `f32x4.relaxed_madd` (true) or `f32x4.mul` + `f32x4.add`.
 * @returns The module's binary.
 * @example
 * ```ts
 * import { simdTileModule } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.ok(WebAssembly.validate(simdTileModule({ relaxed: false })));
 * ```
 */
export function simdTileModule(options: { readonly relaxed: boolean }): Uint8Array<ArrayBuffer> {
  // Locals: 0 the parameter (passes left), 1 pixels left, 2 vector address, 3 broadcast address
  // (i32); then the accumulators, two vectors and a broadcast (v128).
  const n = 0, left = 1, dq = 2, xq = 3;
  const acc = (k: number) => 4 + k;
  const d = (v: number) => 4 + ACCUMULATORS + v;
  const b = 4 + ACCUMULATORS + SIMD_TILE_VECTORS;
  const memarg = [0, 0]; // alignment log2, offset 0 (as clang emits: the address is an i32.add)
  const madd = [SIMD, ...uleb(F32X4_RELAXED_MADD)];
  const body: number[] = [];
  for (let k = 0; k < ACCUMULATORS; k++) {
    body.push(...v128Const([0, 1, 2, 3].map((l) => startValue(k, l))), LOCAL_SET, acc(k));
  }
  body.push(BLOCK, EMPTY, LOOP, EMPTY); // one pass per outer iteration
  body.push(LOCAL_GET, n, I32_EQZ, BR_IF, 1);
  body.push(I32_CONST, ...sleb(0), LOCAL_SET, dq, I32_CONST, ...sleb(X_BASE), LOCAL_SET, xq);
  body.push(I32_CONST, ...sleb(SIMD_TILE_PIXELS), LOCAL_SET, left);
  body.push(LOOP, EMPTY); // one pixel per inner iteration
  for (let v = 0; v < SIMD_TILE_VECTORS; v++) {
    body.push(LOCAL_GET, dq);
    if (v > 0) body.push(I32_CONST, ...sleb(16 * v), I32_ADD);
    body.push(SIMD, ...uleb(V128_LOAD), ...memarg, LOCAL_SET, d(v));
  }
  for (let r = 0; r < SIMD_TILE_ROWS; r++) {
    body.push(LOCAL_GET, xq);
    if (r > 0) body.push(I32_CONST, ...sleb(4 * r), I32_ADD);
    body.push(SIMD, ...uleb(V128_LOAD32_SPLAT), ...memarg, LOCAL_SET, b);
    for (let v = 0; v < SIMD_TILE_VECTORS; v++) {
      const k = r * SIMD_TILE_VECTORS + v;
      if (options.relaxed) {
        body.push(LOCAL_GET, b, LOCAL_GET, d(v), LOCAL_GET, acc(k), ...madd, LOCAL_SET, acc(k));
      } else {
        body.push(LOCAL_GET, b, LOCAL_GET, d(v), SIMD, ...uleb(F32X4_MUL));
        body.push(LOCAL_GET, acc(k), SIMD, ...uleb(F32X4_ADD), LOCAL_SET, acc(k));
      }
    }
  }
  body.push(LOCAL_GET, dq, I32_CONST, ...sleb(STRIDE * 4), I32_ADD, LOCAL_SET, dq);
  body.push(LOCAL_GET, xq, I32_CONST, ...sleb(STRIDE * 4), I32_ADD, LOCAL_SET, xq);
  body.push(LOCAL_GET, left, I32_CONST, ...sleb(1), I32_SUB, LOCAL_TEE, left, BR_IF, 0, END);
  body.push(LOCAL_GET, n, I32_CONST, ...sleb(1), I32_SUB, LOCAL_SET, n, BR, 0, END, END);
  body.push(...laneSum(Array.from({ length: ACCUMULATORS }, (_, k) => acc(k))), END);
  const locals = vec([[...uleb(3), I32], [...uleb(ACCUMULATORS + SIMD_TILE_VECTORS + 1), V128]]);
  return measurementModule(locals, body, f32Bytes(operands()));
}

/**
 * What the tile loop's `roof(iterations)` returns for any pass count: every pixel pair adds and
 * subtracts the same exact products, so each accumulator ends at its starting value, and the
 * result is their float32 sum.
 *
 * @returns The float32 sum of all starting lanes.
 * @example
 * ```ts
 * import { simdTileChecksum } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(simdTileChecksum(), 279);
 * ```
 */
export function simdTileChecksum(): number {
  let sum = Math.fround(0);
  for (let k = 0; k < ACCUMULATORS; k++) {
    for (let lane = 0; lane < 4; lane++) sum = Math.fround(sum + startValue(k, lane));
  }
  return sum;
}
