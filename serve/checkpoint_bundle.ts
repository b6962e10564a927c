/**
 * Converting a training checkpoint (`saveCheckpoint` in `@mfi/core`: weights + optimizer state in
 * safetensors, JSON sidecar with the resolved config) into an inference bundle: the model's
 * weights and batch-norm statistics only, with the spec, labels, normalisation and recorded
 * accuracy found in the sidecar. Works for every model a {@linkcode ModelSpec} describes:
 * baseline ResNet, meta model, hybrid, MFI-ResNet.
 *
 * Where things are found (first hit wins; every one can be overridden by an option):
 * - spec: `extra.spec` (the pipeline's phase result), `config.spec`, `config.model.spec`, else a
 *   baseline ResNet from `config.model`, `config.width`, `config.dataset` (checkpoints of the old
 *   `deno task train`, before it ran the pipeline's baseline phase);
 * - dataset: `config.data.dataset`, `config.dataset`, else CIFAR-10/100 by class count;
 * - accuracy: `extra.testAccuracy`, else the last `testAccuracy` in `history`; the test examples
 *   from `config.data.testPerClass` (first n per class), `config.limitTest` (first n), else the
 *   full test set (10,000);
 * - backend that produced the weights: `extra.backend` (the label a phase result or a training
 *   checkpoint records, e.g. `wasm (SIMD, 2 threads)`; a software WebGPU adapter is recorded as
 *   such), else unknown (`null`). Never the backend that runs the export.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  disposeModule,
  labelSaysSoftwareAdapter,
  type LoadedCheckpoint,
  restoreVariables,
} from "@mfi/core";
import type { ResNetArchName, StagedModel } from "@mfi/resnet";
import { CLASS_NAMES, NORMALIZATION } from "./_cifar_labels.ts";
import {
  type BundleAccuracy,
  type BundleBackend,
  BundleError,
  type BundleInfo,
  type Normalization,
  readBundle,
  writeBundle,
} from "./bundle.ts";
import {
  buildModel,
  MODEL_SPEC_FORMAT,
  type ModelSpec,
  resnetSpec,
  validateModelSpec,
} from "@mfi/incubation";

/** Options of {@linkcode bundleFromCheckpoint}: overrides of what the sidecar records. */
export interface BundleFromCheckpointOptions {
  /** The model's spec (default: found in the sidecar). */
  readonly spec?: ModelSpec;
  /** Dataset the model was trained on, for default labels and normalisation. */
  readonly dataset?: "cifar10" | "cifar100";
  /** Class names (default: the dataset's). */
  readonly classNames?: readonly string[];
  /** Input normalisation (default: the dataset's). */
  readonly normalization?: Normalization;
  /** Recorded accuracy (default: found in the sidecar; `null` records none). */
  readonly accuracy?: BundleAccuracy | null;
  /** Free-text name (default: describes the spec and the checkpoint). */
  readonly name?: string;
  /**
   * The backend that produced the weights (default: found in the sidecar; `null` records
   * "unknown").
   */
  readonly backend?: BundleBackend | null;
}

/** A bundle made from a checkpoint. */
export interface ExportedBundle {
  /** The `.mfi` file's bytes. */
  readonly bytes: Uint8Array;
  /** Its verified description (read back from `bytes`). */
  readonly info: BundleInfo;
}

function get(root: unknown, path: readonly string[]): unknown {
  let v = root;
  for (const k of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

const SPEC_PLACES = [["extra", "spec"], ["config", "spec"], ["config", "model", "spec"]] as const;

function findSpec(checkpoint: LoadedCheckpoint): ModelSpec {
  for (const place of SPEC_PLACES) {
    const raw = get(checkpoint.sidecar, place);
    if (get(raw, ["format"]) === MODEL_SPEC_FORMAT) {
      try {
        return validateModelSpec(raw);
      } catch (e) {
        throw new BundleError(
          `Cannot export ${checkpoint.path}: its ${place.join(".")} is not a valid spec (${
            (e as Error).message
          })`,
          { cause: e },
        );
      }
    }
  }
  // Old `deno task train` checkpoints record the ResNet's name, width and dataset, not a spec;
  // buildModel(resnetSpec(...)) names variables exactly as buildResNet does.
  const arch = get(checkpoint.sidecar, ["config", "model"]);
  const width = get(checkpoint.sidecar, ["config", "width"]);
  const dataset = get(checkpoint.sidecar, ["config", "dataset"]);
  if (
    typeof arch === "string" && typeof width === "number" &&
    (dataset === "cifar10" || dataset === "cifar100")
  ) {
    try {
      return resnetSpec(arch as ResNetArchName, CLASS_NAMES[dataset].length, width);
    } catch (e) {
      throw new BundleError(
        `Cannot export ${checkpoint.path}: config.model/width do not describe a ResNet (${
          (e as Error).message
        })`,
        { cause: e },
      );
    }
  }
  throw new BundleError(
    `Cannot export ${checkpoint.path}: its sidecar records no model spec (looked in ${
      SPEC_PLACES.map((p) => p.join(".")).join(", ")
    }, and config.model/width/dataset); pass the spec explicitly (--spec spec.json)`,
  );
}

function findDataset(
  checkpoint: LoadedCheckpoint,
  spec: ModelSpec,
): "cifar10" | "cifar100" | undefined {
  for (const place of [["config", "data", "dataset"], ["config", "dataset"]]) {
    const v = get(checkpoint.sidecar, place);
    if (v === "cifar10" || v === "cifar100") return v;
  }
  return spec.classes === 10 ? "cifar10" : spec.classes === 100 ? "cifar100" : undefined;
}

function findAccuracy(
  checkpoint: LoadedCheckpoint,
  dataset: string,
  classes: number,
): BundleAccuracy | null {
  let top1 = get(checkpoint.sidecar, ["extra", "testAccuracy"]);
  if (typeof top1 !== "number") {
    const history = checkpoint.sidecar.history;
    for (let i = history.length - 1; i >= 0 && typeof top1 !== "number"; i--) {
      top1 = get(history[i], ["testAccuracy"]);
    }
  }
  if (typeof top1 !== "number" || !(top1 >= 0 && top1 <= 1)) return null;
  const perClass = get(checkpoint.sidecar, ["config", "data", "testPerClass"]);
  const first = get(checkpoint.sidecar, ["config", "limitTest"]);
  if (typeof perClass === "number" && perClass > 0) {
    return {
      top1,
      dataset,
      split: "test",
      examples: perClass * classes,
      subset: "first-per-class",
    };
  }
  if (typeof first === "number" && first > 0 && first < 10_000) {
    return { top1, dataset, split: "test", examples: first, subset: "first" };
  }
  return { top1, dataset, split: "test", examples: 10_000, subset: "all" };
}

function findBackend(checkpoint: LoadedCheckpoint): BundleBackend | null {
  const label = get(checkpoint.sidecar, ["extra", "backend"]);
  if (typeof label !== "string" || label.trim() === "") return null;
  return { label, softwareAdapter: labelSaysSoftwareAdapter(label) };
}

/**
 * Builds an inference bundle from a loaded training checkpoint (see the module doc for where the
 * spec, labels and accuracy come from). The model is rebuilt from the spec and every one of its
 * variables must be in the checkpoint (optimizer tensors are left out). Select a backend first
 * (the cpu backend is enough).
 *
 * @param checkpoint A checkpoint from `readCheckpoint` (`@mfi/core`).
 * @param options Overrides.
 * @returns The bundle's bytes and its verified description.
 * @throws {BundleError} If the sidecar has no usable spec, labels cannot be determined, or the
 *   weights do not match the spec (e.g. a checkpoint holding only one stage).
 * @example
 * ```ts
 * import { buildModel, resnetSpec } from "@mfi/incubation";
 * import { bundleFromCheckpoint } from "@mfi/serve";
 * import { disposeModule, readCheckpoint, saveCheckpoint } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 10, 1 / 32);
 * const model = buildModel(spec, { seed: 1 });
 * const dir = await Deno.makeTempDir();
 * const path = await saveCheckpoint(dir, model.namedVariables(), {
 *   epoch: 1,
 *   step: 10,
 *   config: { spec, data: { dataset: "cifar10" } },
 *   extra: { testAccuracy: 0.42 },
 * });
 * const { info } = await bundleFromCheckpoint(await readCheckpoint(path));
 * assert.equal(info.classNames[0], "airplane");
 * assert.equal(info.accuracy?.top1, 0.42);
 * assert.equal(info.backend, null); // the sidecar does not say (a phase result does)
 * disposeModule(model);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function bundleFromCheckpoint(
  checkpoint: LoadedCheckpoint,
  options: BundleFromCheckpointOptions = {},
): Promise<ExportedBundle> {
  const spec = options.spec ? validateModelSpec(options.spec) : findSpec(checkpoint);
  const dataset = options.dataset ?? findDataset(checkpoint, spec);
  const classNames = options.classNames ?? (dataset ? CLASS_NAMES[dataset] : undefined);
  const normalization = options.normalization ?? (dataset ? NORMALIZATION[dataset] : undefined);
  if (!classNames || !normalization) {
    throw new BundleError(
      `Cannot export ${checkpoint.path}: the dataset is unknown (${spec.classes} classes, no ` +
        `config.data.dataset); pass the class names and normalisation (--class-names, --mean, --std)`,
    );
  }
  const accuracy = options.accuracy !== undefined
    ? options.accuracy
    : findAccuracy(checkpoint, dataset ?? "unknown", spec.classes);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 0 });
  });
  try {
    try {
      restoreVariables(model.namedVariables(), checkpoint.weights, checkpoint.path);
    } catch (e) {
      throw new BundleError(
        `${(e as Error).message} A bundle needs the whole model: export the output of a phase ` +
          `that trains or assembles the complete model (baseline, meta, finetune), not of one stage.`,
        { cause: e },
      );
    }
    const bytes = await writeBundle(model, spec, {
      classNames,
      normalization,
      accuracy,
      backend: options.backend !== undefined ? options.backend : findBackend(checkpoint),
      name: options.name ??
        `${spec.family} ${
          typeof spec.arch === "string" ? spec.arch : "custom"
        } x${spec.width} (${spec.classes} classes) from ${checkpoint.sidecar.name}, epoch ${checkpoint.sidecar.epoch}`,
    });
    const { info } = await readBundle(bytes, { source: "exported bundle" });
    return { bytes, info };
  } finally {
    disposeModule(model);
  }
}
