/**
 * PyTorch interop: CIFAR ResNet `state_dict`s saved as safetensors, with kuangliu's names
 * (`conv1`, `bn1`, `layer1.0.shortcut.0`, `linear`) or torchvision's (`layer1.0.downsample.0`,
 * `fc`), NCHW/OIHW layouts converted to ours (HWIO convolutions, [in, out] linear weights).
 * A leading `module.` (from `nn.DataParallel`) is stripped; `num_batches_tracked` is ignored.
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
import {
  assignAll,
  hwioToOihw,
  listNames,
  oihwToHwio,
  openLoad,
  sameShape,
  transpose2d,
} from "./_layout.ts";
import type { LoadReport } from "./state_dict.ts";

/** PyTorch naming conventions: kuangliu/pytorch-cifar or torchvision. */
export type TorchNaming = "kuangliu" | "torchvision";

const BN_FIELD = "(weight|bias|running_mean|running_var)";

/**
 * Maps a PyTorch CIFAR ResNet `state_dict` key to our variable name.
 *
 * @param key A PyTorch key, e.g. `layer2.0.shortcut.1.running_var` or `fc.weight`.
 * @returns Our name (e.g. `stages.1.blocks.0.shortcut.bn.running_var`), `null` for keys that are
 *   deliberately ignored (`num_batches_tracked`), or `undefined` for unknown keys.
 * @example
 * ```ts
 * import { torchKeyToName } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * assert.equal(torchKeyToName("layer3.0.downsample.0.weight"), "stages.2.blocks.0.shortcut.conv.weight");
 * assert.equal(torchKeyToName("module.linear.bias"), "head.fc.bias");
 * assert.equal(torchKeyToName("bn1.num_batches_tracked"), null);
 * assert.equal(torchKeyToName("avgpool.weight"), undefined);
 * ```
 */
export function torchKeyToName(key: string): string | null | undefined {
  const k = key.startsWith("module.") ? key.slice("module.".length) : key;
  if (k.endsWith(".num_batches_tracked")) return null;
  let m: RegExpMatchArray | null;
  if (k === "conv1.weight") return "stem.conv.weight";
  if ((m = k.match(new RegExp(`^bn1\\.${BN_FIELD}$`)))) return `stem.bn.${m[1]}`;
  if ((m = k.match(/^(linear|fc)\.(weight|bias)$/))) return `head.fc.${m[2]}`;
  if ((m = k.match(/^layer(\d+)\.(\d+)\.(.+)$/))) {
    const stage = Number(m[1]) - 1;
    if (stage < 0) return undefined;
    const prefix = `stages.${stage}.blocks.${Number(m[2])}`;
    const rest = m[3];
    let r: RegExpMatchArray | null;
    if ((r = rest.match(/^(conv[123])\.weight$/))) return `${prefix}.${r[1]}.weight`;
    if ((r = rest.match(new RegExp(`^(bn[123])\\.${BN_FIELD}$`)))) {
      return `${prefix}.${r[1]}.${r[2]}`;
    }
    if (/^(shortcut|downsample)\.0\.weight$/.test(rest)) return `${prefix}.shortcut.conv.weight`;
    if ((r = rest.match(new RegExp(`^(?:shortcut|downsample)\\.1\\.${BN_FIELD}$`)))) {
      return `${prefix}.shortcut.bn.${r[1]}`;
    }
  }
  return undefined;
}

/**
 * Maps one of our variable names to a PyTorch key.
 *
 * @param name Our name, e.g. `stages.0.blocks.1.bn2.weight`.
 * @param naming `kuangliu` (default) or `torchvision`.
 * @returns The PyTorch key, e.g. `layer1.1.bn2.weight`.
 * @throws {Error} If the name is not a CIFAR ResNet variable name.
 * @example
 * ```ts
 * import { nameToTorchKey } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * assert.equal(nameToTorchKey("stages.1.blocks.0.shortcut.bn.weight"), "layer2.0.shortcut.1.weight");
 * assert.equal(nameToTorchKey("head.fc.weight", "torchvision"), "fc.weight");
 * ```
 */
export function nameToTorchKey(name: string, naming: TorchNaming = "kuangliu"): string {
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^stem\.conv\.weight$/))) return "conv1.weight";
  if ((m = name.match(/^stem\.bn\.(.+)$/))) return `bn1.${m[1]}`;
  if ((m = name.match(/^head\.fc\.(weight|bias)$/))) {
    return `${naming === "kuangliu" ? "linear" : "fc"}.${m[1]}`;
  }
  if ((m = name.match(/^stages\.(\d+)\.blocks\.(\d+)\.(.+)$/))) {
    const prefix = `layer${Number(m[1]) + 1}.${m[2]}`;
    const sc = naming === "kuangliu" ? "shortcut" : "downsample";
    const rest = m[3].replace(/^shortcut\.conv\./, `${sc}.0.`).replace(
      /^shortcut\.bn\./,
      `${sc}.1.`,
    );
    const key = `${prefix}.${rest}`;
    if (torchKeyToName(key) === name) return key;
  }
  throw new Error(
    `Cannot name "${name}" in PyTorch: it is not a CIFAR ResNet variable (stem.*, stages.<i>.blocks.<j>.*, head.fc.*)`,
  );
}

/** Options of {@linkcode importTorchStateDict}. */
export interface ImportTorchOptions {
  /** Ignore keys that map to no variable of the model (default false: error). */
  readonly allowUnexpected?: boolean;
  /** Name of the data for error messages (e.g. the path). */
  readonly source?: string;
}

function toOurLayout(t: SafetensorsTensor, key: string, source: string): [number[], Float32Array] {
  const values = toFloat32(t);
  if (t.shape.length === 4) {
    return [[t.shape[2], t.shape[3], t.shape[1], t.shape[0]], oihwToHwio(values, t.shape)];
  }
  if (t.shape.length === 2) {
    return [[t.shape[1], t.shape[0]], transpose2d(values, t.shape[0], t.shape[1])];
  }
  if (t.shape.length === 1) return [[...t.shape], values];
  throw new Error(
    `Cannot import ${source}: "${key}" has rank ${t.shape.length}; expected 1, 2 or 4`,
  );
}

/**
 * Imports a PyTorch CIFAR ResNet `state_dict` (safetensors, kuangliu or torchvision names) into a
 * model with our names (e.g. from {@linkcode buildResNet}, width and classes matching the file).
 * All checks run before any variable changes: on error the model is untouched.
 *
 * @param model The model to fill.
 * @param data The safetensors bytes or a decoded file.
 * @param options Strictness and the source's name.
 * @returns What was loaded and skipped (ignored `num_batches_tracked` and allowed extras).
 * @throws {Error} On an unknown key (unless `allowUnexpected`), two keys for one variable, a
 *   missing variable, or a shape mismatch; the message names the key.
 * @example
 * ```ts
 * import { buildResNet, exportTorchStateDict, importTorchStateDict } from "@mfi/resnet";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const a = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 1 });
 * const b = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 2 });
 * const report = importTorchStateDict(b, await exportTorchStateDict(a));
 * assert.equal(report.loaded, a.namedVariables().length);
 * assert.deepEqual(b.stem.namedVariables()[0][1].dataSync(), a.stem.namedVariables()[0][1].dataSync());
 * disposeModule(a);
 * disposeModule(b);
 * ```
 */
export function importTorchStateDict(
  model: Module,
  data: Uint8Array | SafetensorsFile,
  options: ImportTorchOptions = {},
): LoadReport {
  const source = options.source ?? "PyTorch state_dict";
  const { file, vars } = openLoad(model, data, source);
  const keyOf = new Map<string, string>();
  const skipped: string[] = [];
  const unexpected: string[] = [];
  for (const key of file.tensors.keys()) {
    const name = torchKeyToName(key);
    if (name === null) {
      skipped.push(key);
    } else if (name === undefined || !vars.has(name)) {
      unexpected.push(name === undefined ? `"${key}"` : `"${key}" (as "${name}")`);
      skipped.push(key);
    } else if (keyOf.has(name)) {
      throw new Error(
        `Cannot import ${source}: "${key}" and "${
          keyOf.get(name)
        }" both map to "${name}"; keep one of them`,
      );
    } else {
      keyOf.set(name, key);
    }
  }
  if (unexpected.length > 0 && !options.allowUnexpected) {
    throw new Error(
      `Cannot import ${source}: unexpected key(s) ${
        listNames(unexpected)
      } match no variable of the model; check the architecture, or pass allowUnexpected: true to ignore them`,
    );
  }
  const missing = [...vars.keys()].filter((n) => !keyOf.has(n));
  if (missing.length > 0) {
    throw new Error(
      `Cannot import ${source}: no key for ${missing.length} variable(s) ${
        listNames(missing.map((n) => `"${n}" (PyTorch "${safeTorchKey(n)}")`))
      }; was it saved from the same architecture and width?`,
    );
  }
  const values: Array<[tf.Variable, Float32Array]> = [];
  for (const [name, v] of vars) {
    const key = keyOf.get(name)!;
    const [shape, x] = toOurLayout(file.tensors.get(key)!, key, source);
    if (!sameShape(shape, v)) {
      throw new Error(
        `Cannot import ${source}: "${key}" has shape [${
          file.tensors.get(key)!.shape
        }] (PyTorch layout), which is [${shape}] in ours, but "${name}" is [${v.shape}]`,
      );
    }
    values.push([v, x]);
  }
  return { loaded: assignAll(values), skipped };
}

function safeTorchKey(name: string): string {
  try {
    return nameToTorchKey(name);
  } catch {
    return "?";
  }
}

/** Options of {@linkcode exportTorchStateDict}. */
export interface ExportTorchOptions {
  /** Key style (default `kuangliu`). */
  readonly naming?: TorchNaming;
  /** String metadata stored in the file. */
  readonly metadata?: Record<string, string>;
}

/**
 * Exports a CIFAR ResNet as a PyTorch `state_dict` in safetensors (OIHW convolutions,
 * [out, in] linear weights, float32, plus a zero int64 `num_batches_tracked` per batch norm
 * so that PyTorch's strict `load_state_dict` accepts it). Reads values asynchronously.
 *
 * @param model A model with CIFAR ResNet names.
 * @param options Key style and metadata.
 * @returns The file's bytes.
 * @throws {Error} If a variable has no PyTorch name (e.g. a swapped-in MeanFlow stage).
 * @example
 * ```ts
 * import { buildResNet, exportTorchStateDict } from "@mfi/resnet";
 * import { decodeSafetensors, disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const model = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 1 });
 * const file = decodeSafetensors(await exportTorchStateDict(model));
 * assert.deepEqual(file.tensors.get("conv1.weight")!.shape, [4, 3, 3, 3]); // OIHW
 * assert.deepEqual(file.tensors.get("linear.weight")!.shape, [10, 32]); // [out, in]
 * disposeModule(model);
 * ```
 */
export async function exportTorchStateDict(
  model: Module,
  options: ExportTorchOptions = {},
): Promise<Uint8Array> {
  const naming = options.naming ?? "kuangliu";
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, v] of variableMap(model.namedVariables())) {
    const key = nameToTorchKey(name, naming);
    const x = (await v.data()) as Float32Array;
    const s = v.shape;
    if (s.length === 4) {
      tensors.set(key, { dtype: "F32", shape: [s[3], s[2], s[0], s[1]], data: hwioToOihw(x, s) });
    } else if (s.length === 2) {
      tensors.set(key, { dtype: "F32", shape: [s[1], s[0]], data: transpose2d(x, s[0], s[1]) });
    } else {
      tensors.set(key, { dtype: "F32", shape: s, data: x });
    }
    if (key.endsWith(".running_var")) {
      tensors.set(key.replace(/running_var$/, "num_batches_tracked"), {
        dtype: "I64",
        shape: [],
        data: new BigInt64Array(1),
      });
    }
  }
  return encodeSafetensors(tensors, options.metadata);
}
