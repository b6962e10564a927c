/**
 * Private helpers: PyTorch <-> tfjs weight layouts and safetensors input handling.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { decodeSafetensors, type Module, type SafetensorsFile, variableMap } from "@mfi/core";

/** OIHW (PyTorch conv) values to HWIO (tfjs). */
export function oihwToHwio(src: Float32Array, shape: readonly number[]): Float32Array {
  const [o, i, h, w] = shape;
  const out = new Float32Array(src.length);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          out[((y * w + x) * i + b) * o + a] = src[((a * i + b) * h + y) * w + x];
        }
      }
    }
  }
  return out;
}

/** HWIO (tfjs) values to OIHW (PyTorch conv). */
export function hwioToOihw(
  src: Float32Array | Int32Array | Uint8Array,
  shape: readonly number[],
): Float32Array {
  const [h, w, i, o] = shape;
  const out = new Float32Array(src.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let b = 0; b < i; b++) {
        for (let a = 0; a < o; a++) {
          out[((a * i + b) * h + y) * w + x] = src[((y * w + x) * i + b) * o + a];
        }
      }
    }
  }
  return out;
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose2d(src: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}

/** Decodes bytes, or passes an already decoded file through. */
export function asSafetensorsFile(
  data: Uint8Array | SafetensorsFile,
  source: string,
): SafetensorsFile {
  return data instanceof Uint8Array ? decodeSafetensors(data, source) : data;
}

/** What both state-dict loaders start from: the decoded file and the model's variables by name. */
export interface LoadTarget {
  /** The decoded file. */
  readonly file: SafetensorsFile;
  /** The model's variables by name, in model order. */
  readonly vars: Map<string, tf.Variable>;
}

/**
 * The preamble of both loaders (ours and PyTorch's): decode the bytes (errors name `source`)
 * and map the model's variables by name.
 *
 * @param module The model to fill.
 * @param data Safetensors bytes or a decoded file.
 * @param source The file's name for messages.
 * @returns The file and the variables.
 * @throws {Error} If the bytes are not a valid safetensors file.
 */
export function openLoad(
  module: Module,
  data: Uint8Array | SafetensorsFile,
  source: string,
): LoadTarget {
  return { file: asSafetensorsFile(data, source), vars: variableMap(module.namedVariables()) };
}

/** Whether a saved shape equals a variable's. */
export function sameShape(saved: readonly number[], v: tf.Variable): boolean {
  return saved.length === v.shape.length && saved.every((d, i) => d === v.shape[i]);
}

/**
 * The end of both loaders, after every check passed: writes the values (all or nothing).
 *
 * @param values Each variable with its new values (already in our layout and shape).
 * @returns How many variables were written.
 */
export function assignAll(values: ReadonlyArray<readonly [tf.Variable, Float32Array]>): number {
  for (const [v, x] of values) tf.tidy(() => v.assign(tf.tensor(x, v.shape, "float32")));
  return values.length;
}

/** Lists items for an error message: the first few, then a count. */
export function listNames(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
