/**
 * Byte-level WebAssembly encoding for the small measurement modules built here without a
 * toolchain (the SIMD roof and the tile loop): LEB128 numbers, sections, vectors, the opcodes they
 * use. Internal.
 *
 * @module
 */

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  while (true) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Little-endian float32 bytes. */
export function f32Bytes(values: readonly number[]): number[] {
  return [...new Uint8Array(new Float32Array(values).buffer)];
}

/** A section: id, byte length, body. */
function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** A vector: count, then the items. */
export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** The module header (magic and version 1). */
const HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

// Opcodes (WebAssembly core 2.0 and the relaxed-SIMD proposal).
export const I32 = 0x7f, V128 = 0x7b;
const F32 = 0x7d;
export const BLOCK = 0x02, LOOP = 0x03, EMPTY = 0x40, END = 0x0b, BR = 0x0c, BR_IF = 0x0d;
export const LOCAL_GET = 0x20, LOCAL_SET = 0x21, LOCAL_TEE = 0x22;
export const I32_CONST = 0x41, I32_EQZ = 0x45, I32_ADD = 0x6a, I32_SUB = 0x6b;
const F32_CONST = 0x43, F32_ADD = 0x92;
export const SIMD = 0xfd;
export const V128_LOAD = 0, V128_LOAD32_SPLAT = 9;
const V128_CONST = 12, F32X4_EXTRACT_LANE = 31;
export const F32X4_ADD = 228, F32X4_MUL = 230, F32X4_RELAXED_MADD = 261;

/** `v128.const` of four float32 lanes. */
export function v128Const(values: readonly number[]): number[] {
  return [SIMD, ...uleb(V128_CONST), ...f32Bytes(values)];
}

/**
 * Starting value of lane `lane` of accumulator `k` in the measurement loops: all distinct,
 * multiples of 1/8 from -3 up (so that a lost accumulator shows in the checksum).
 */
export function startValue(k: number, lane: number): number {
  return Math.fround(-3 + 0.375 * (k * 4 + lane));
}

/** `f32.const 0`, then each lane of each `v128` local in `accs` extracted and added: their sum. */
export function laneSum(accs: readonly number[]): number[] {
  const out = [F32_CONST, ...f32Bytes([0])];
  for (const a of accs) {
    for (let lane = 0; lane < 4; lane++) {
      out.push(LOCAL_GET, a, SIMD, ...uleb(F32X4_EXTRACT_LANE), lane, F32_ADD);
    }
  }
  return out;
}

/**
 * A module of one function, exported as `roof(i32) -> f32`, with the given locals (a vector of
 * `count, type` entries) and body (ending in `end`); with `data`, also a memory of one page (no
 * growth) exported as `memory`, holding `data` from address 0.
 */
export function measurementModule(
  locals: number[],
  body: number[],
  data?: readonly number[],
): Uint8Array<ArrayBuffer> {
  const name = (s: string) => [...s].map((c) => c.charCodeAt(0));
  const code = [...locals, ...body];
  const exports = [[...uleb(4), ...name("roof"), 0x00, 0]];
  if (data) exports.push([...uleb(6), ...name("memory"), 0x02, 0]);
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([[0x60, ...vec([[I32]]), ...vec([[F32]])]])),
    ...section(3, vec([[0]])),
    ...(data ? section(5, vec([[0x01, 1, 1]])) : []),
    ...section(7, vec(exports)),
    ...section(10, vec([[...uleb(code.length), ...code]])),
    ...(data ? section(11, vec([[0x00, I32_CONST, 0, END, ...uleb(data.length), ...data]])) : []),
  ]);
}
