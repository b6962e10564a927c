/**
 * The safetensors format (an 8-byte little-endian header length, a JSON header, then raw
 * little-endian tensor data), read and written without evaluating anything from the file.
 * Used for checkpoints, PyTorch interop and model bundles.
 *
 * @module
 */

/** Element types this reader and writer support. */
export type SafetensorsDtype =
  | "F32"
  | "F64"
  | "F16"
  | "BF16"
  | "I32"
  | "I64"
  | "U8"
  | "I8"
  | "BOOL";

/** One tensor: type, shape and its raw values. */
export interface SafetensorsTensor {
  /** Element type. */
  readonly dtype: SafetensorsDtype;
  /** Shape (empty for a scalar). */
  readonly shape: readonly number[];
  /** Values in row-major order; F16/BF16 as raw 16-bit words. */
  readonly data:
    | Float32Array
    | Float64Array
    | Int32Array
    | BigInt64Array
    | Uint8Array
    | Int8Array
    | Uint16Array;
}

/** A decoded file: tensors by name and the string metadata (`__metadata__`). */
export interface SafetensorsFile {
  /** Tensors by name, in file order. */
  readonly tensors: Map<string, SafetensorsTensor>;
  /** String-to-string metadata. */
  readonly metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  I8: 1,
  BOOL: 1,
};

/** Largest header accepted (100 MB, as the reference implementation). */
const MAX_HEADER = 100_000_000;

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Encodes tensors and metadata as a safetensors file. Tensor data are laid out in the order given,
 * 8-byte aligned header as the reference writer does.
 *
 * @param tensors Tensors by name.
 * @param metadata Optional string metadata.
 * @returns The file's bytes.
 * @throws {TypeError} If a tensor's data length does not match its shape.
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const bytes = encodeSafetensors(
 *   new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]),
 *   { note: "hi" },
 * );
 * const file = decodeSafetensors(bytes);
 * assert.deepEqual(Array.from(file.tensors.get("w")!.data as Float32Array), [1, 2]);
 * assert.deepEqual(file.metadata.note, "hi");
 * ```
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`Safetensors metadata "${k}" must be a string, got ${typeof v}`);
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new TypeError(`Tensor name "__metadata__" is reserved`);
    const size = BYTES[t.dtype];
    if (size === undefined) throw new TypeError(`Tensor "${name}": unsupported dtype ${t.dtype}`);
    const n = product(t.shape);
    if (t.data.length !== n) {
      throw new TypeError(
        `Tensor "${name}": shape [${t.shape}] needs ${n} values, data has ${t.data.length}`,
      );
    }
    header[name] = {
      dtype: t.dtype,
      shape: [...t.shape],
      data_offsets: [offset, offset + n * size],
    };
    offset += n * size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, t] of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

/**
 * Decodes a safetensors file, validating the header against the buffer: header length, JSON,
 * dtypes, shapes, and that data ranges are in bounds, contiguous and non-overlapping.
 *
 * @param bytes The whole file.
 * @param source A name for error messages (e.g. the path).
 * @returns Tensors and metadata (data copied into aligned typed arrays).
 * @throws {Error} If the file is truncated, malformed or inconsistent; the message names what.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): SafetensorsFile {
  const fail = (what: string): never => {
    throw new Error(`Cannot read ${source}: ${what}. Is the file complete and really safetensors?`);
  };
  if (bytes.length < 8) fail(`file has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen > MAX_HEADER) fail(`header length ${headerLen} exceeds ${MAX_HEADER}`);
  if (8 + headerLen > bytes.length) {
    fail(`header needs ${headerLen} bytes but only ${bytes.length - 8} follow`);
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)),
    );
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const entries = Object.entries(header as Record<string, unknown>);
  let metadata: Record<string, string> = {};
  const ranges: Array<[string, number, number, SafetensorsDtype, number[]]> = [];
  for (const [name, value] of entries) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`metadata "${k}" is not a string`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== "object" || info === null) fail(`entry "${name}" is not an object`);
    const dtype = info.dtype as SafetensorsDtype;
    if (typeof dtype !== "string" || !(dtype in BYTES)) {
      fail(`tensor "${name}" has unsupported dtype ${String(info.dtype)}`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offs = info.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)
    ) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const n = product(shape as number[]);
    if (end - begin !== n * BYTES[dtype]) {
      fail(
        `tensor "${name}" (${dtype} [${shape}]) needs ${n * BYTES[dtype]} bytes, offsets give ${
          end - begin
        }`,
      );
    }
    ranges.push([name, begin, end, dtype, shape as number[]]);
  }
  const dataLen = bytes.length - 8 - headerLen;
  const sorted = [...ranges].sort((a, b) => a[1] - b[1]);
  let expected = 0;
  for (const [name, begin, end] of sorted) {
    if (begin !== expected) {
      fail(`tensor "${name}" starts at byte ${begin}, expected ${expected} (gap or overlap)`);
    }
    expected = end;
  }
  if (expected !== dataLen) {
    fail(
      `header describes ${expected} data bytes but the file holds ${dataLen} (truncated or padded file)`,
    );
  }
  const base = 8 + headerLen;
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, begin, end, dtype, shape] of ranges) {
    const raw = bytes.slice(base + begin, base + end);
    const buf = raw.buffer;
    const data = dtype === "F32"
      ? new Float32Array(buf)
      : dtype === "F64"
      ? new Float64Array(buf)
      : dtype === "I32"
      ? new Int32Array(buf)
      : dtype === "I64"
      ? new BigInt64Array(buf)
      : dtype === "F16" || dtype === "BF16"
      ? new Uint16Array(buf)
      : dtype === "I8"
      ? new Int8Array(buf)
      : raw;
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

/**
 * Converts a decoded tensor's values to float32 (F16, BF16, F64, integer types).
 *
 * @param tensor A decoded tensor.
 * @returns Its values as float32.
 */
export function toFloat32(tensor: SafetensorsTensor): Float32Array {
  const { dtype, data } = tensor;
  if (dtype === "F32") return data as Float32Array;
  if (dtype === "F16") {
    const src = data as Uint16Array;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const h = src[i];
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const f = h & 0x3ff;
      out[i] = e === 0
        ? s * 2 ** -14 * (f / 1024)
        : e === 31
        ? (f ? NaN : s * Infinity)
        : s * 2 ** (e - 15) * (1 + f / 1024);
    }
    return out;
  }
  if (dtype === "BF16") {
    const src = data as Uint16Array;
    const words = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) words[i] = src[i] << 16;
    return new Float32Array(words.buffer);
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}
