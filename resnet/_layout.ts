/**
 * Private helpers: PyTorch <-> tfjs weight layouts and safetensors input handling.
 *
 * @module
 */
import { decodeSafetensors, type SafetensorsFile } from "@mfi/core";

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

/** Lists items for an error message: the first few, then a count. */
export function listNames(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
