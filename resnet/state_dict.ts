/**
 * A module's variables as safetensors under our own names and layouts (HWIO convolutions,
 * [in, out] linear weights, batch-norm buffers included): export, and strict import.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  encodeSafetensors,
  type Module,
  type SafetensorsFile,
  type SafetensorsTensor,
  toFloat32,
  variableMap,
} from "@mfi/core";
import { assignAll, listNames, openLoad, sameShape } from "./_layout.ts";

/** Options of {@linkcode exportStateDict}. */
export interface ExportStateDictOptions {
  /** String metadata stored in the file (e.g. `{ config: JSON.stringify(model.config) }`). */
  readonly metadata?: Record<string, string>;
}

/**
 * Writes every variable of a module (parameters and buffers) as float32 safetensors under its
 * stable name. Reads values asynchronously (safe on webgpu).
 *
 * @param module The module.
 * @param options Optional metadata.
 * @returns The file's bytes.
 * @throws {Error} If two variables share a name.
 * @example
 * ```ts
 * import { buildResNet, exportStateDict, loadStateDict } from "@mfi/resnet";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const a = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 1 });
 * const b = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 2 });
 * loadStateDict(b, await exportStateDict(a));
 * assert.deepEqual(b.head.namedVariables()[0][1].dataSync(), a.head.namedVariables()[0][1].dataSync());
 * disposeModule(a);
 * disposeModule(b);
 * ```
 */
export async function exportStateDict(
  module: Module,
  options: ExportStateDictOptions = {},
): Promise<Uint8Array> {
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, v] of variableMap(module.namedVariables())) {
    tensors.set(name, { dtype: "F32", shape: v.shape, data: (await v.data()) as Float32Array });
  }
  return encodeSafetensors(tensors, options.metadata);
}

/** Options of {@linkcode loadStateDict}. */
export interface LoadStateDictOptions {
  /** Ignore tensors in the file that the module does not have (default false: error). */
  readonly allowUnexpected?: boolean;
  /** Name of the data for error messages (e.g. the path). */
  readonly source?: string;
}

/** What a load did. */
export interface LoadReport {
  /** Number of variables assigned (all of the module's). */
  readonly loaded: number;
  /** File entries that were not used (unexpected or ignored), in file order. */
  readonly skipped: readonly string[];
}

/**
 * Assigns a module's variables from safetensors written by {@linkcode exportStateDict}. All
 * checks run before any variable changes: on error the module is untouched.
 *
 * @param module The module to fill.
 * @param data The file's bytes or a decoded file.
 * @param options Strictness and the source's name.
 * @returns What was loaded and skipped.
 * @throws {Error} On a missing variable, an unexpected tensor (unless allowed) or a shape
 *   mismatch; the message names the key.
 * @example
 * ```ts
 * import { buildResNet, exportStateDict, loadStateDict } from "@mfi/resnet";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const small = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 1 });
 * const other = buildResNet({ arch: "resnet18", classes: 100, width: 1 / 16, seed: 1 });
 * assert.throws(() => loadStateDict(other, { tensors: new Map(), metadata: {} }), /missing/);
 * const bytes = await exportStateDict(small);
 * assert.throws(() => loadStateDict(other, bytes), /head\.fc\.weight/);
 * disposeModule(small);
 * disposeModule(other);
 * ```
 */
export function loadStateDict(
  module: Module,
  data: Uint8Array | SafetensorsFile,
  options: LoadStateDictOptions = {},
): LoadReport {
  const source = options.source ?? "state dict";
  const { file, vars } = openLoad(module, data, source);
  const missing = [...vars.keys()].filter((n) => !file.tensors.has(n));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load ${source}: missing ${missing.length} variable(s) ${
        listNames(missing.map((n) => `"${n}"`))
      }; was it saved from the same architecture?`,
    );
  }
  const skipped = [...file.tensors.keys()].filter((n) => !vars.has(n));
  if (skipped.length > 0 && !options.allowUnexpected) {
    throw new Error(
      `Cannot load ${source}: unexpected tensor(s) ${
        listNames(skipped.map((n) => `"${n}"`))
      }; pass allowUnexpected: true to ignore them`,
    );
  }
  const values: Array<[tf.Variable, Float32Array]> = [];
  for (const [name, v] of vars) {
    const t = file.tensors.get(name)!;
    if (!sameShape(t.shape, v)) {
      throw new Error(
        `Cannot load ${source}: "${name}" has shape [${t.shape}] in the file but [${v.shape}] in the model`,
      );
    }
    values.push([v, toFloat32(t)]);
  }
  return { loaded: assignAll(values), skipped };
}
