/**
 * Incubation is a plan, then execution: {@linkcode planPhases} turns a config into the list of
 * phases (baseline, compute-matched baseline, MeanFlow compression per stage, meta model,
 * incubation per stage, assembled fine-tune, and the stage-fit ablation's fits), each naming
 * the phases it reads, the folder it writes, the model it trains (as a spec) and its trainable
 * variables by name pattern. It is pure: no tensors, no files. The runner reads and writes
 * exactly what a phase says.
 *
 * @module
 */
import type { AblationVariant, PipelineConfig, TrainConfig } from "./config.ts";
import { UnknownPhaseError } from "./errors.ts";
import { type ModelSpec, replaceStages, resnetSpec } from "./model_spec.ts";
import { planVariants, type StageObjective, stageObjective } from "./objective.ts";
import { datasetClasses, type PipelineSpecs, pipelineSpecs } from "./pipeline_specs.ts";

/** Variables a phase takes from an earlier phase's checkpoint. */
export interface PhaseSource {
  /** The phase whose output is read. */
  readonly phase: string;
  /** Name patterns of the variables taken (`*` matches any run of characters). */
  readonly patterns: readonly string[];
}

/** What every phase declares. */
export interface PhaseCommon {
  /**
   * Unique id, also the `--phase` argument: `baseline`, `matched`, `compress:2`, `meta`,
   * `incubate:1`, `finetune`, and `VARIANT/compress:2` for the ablation's fits.
   */
  readonly id: string;
  /** Phases that must be complete first (their outputs are read). */
  readonly dependsOn: readonly string[];
  /** Where the initial variables come from (the rest are freshly initialised). */
  readonly sources: readonly PhaseSource[];
  /** Name patterns of the trained variables; everything else is frozen (BN in inference mode). */
  readonly trainable: readonly string[];
  /** Name patterns of the variables written to the output checkpoint. */
  readonly saves: readonly string[];
  /** The phase's folder, relative to the run folder (its output is `<output>/output/`). */
  readonly output: string;
  /** Hyperparameters. */
  readonly train: TrainConfig;
  /**
   * The model the phase trains and evaluates. Compress: the baseline with only this stage
   * replaced by its MeanFlow fit (what the in-situ accuracy evaluates).
   */
  readonly spec: ModelSpec;
}

/** Train the baseline ResNet, or load `checkpoint` instead. */
export interface BaselinePhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "baseline";
  /** A checkpoint to load instead of training (ours or a PyTorch state_dict), or null. */
  readonly checkpoint: string | null;
}

/** Train the baseline further, as long as MFI-ResNet trains after the baseline. */
export interface MatchedPhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "matched";
}

/** Fit stage `stage` as a MeanFlow stage to the frozen teacher's stage features. */
export interface CompressPhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "compress";
  /** 1-based stage. */
  readonly stage: number;
  /** The ablation variant this fit belongs to, or null for the run's own fits. */
  readonly variant: AblationVariant | null;
  /** The phase whose model is the frozen teacher. */
  readonly teacher: string;
  /** How the stage is fitted. */
  readonly objective: StageObjective;
}

/** Assemble the meta model (teacher stem, MeanFlow stages, teacher head) and fine-tune it. */
export interface MetaPhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "meta";
}

/** Train residual stage `stage` alone inside the meta model (Deep Incubation). */
export interface IncubatePhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "incubate";
  /** 1-based stage. */
  readonly stage: number;
}

/** Assemble MFI-ResNet, recalibrate its batch norms, fine-tune it end to end. */
export interface FinetunePhase extends PhaseCommon {
  /** Discriminator. */
  readonly kind: "finetune";
  /** Training batches for batch-norm recalibration before fine-tuning (0 = none). */
  readonly recalibrateBatches: number;
}

/** One phase of the pipeline. */
export type Phase =
  | BaselinePhase
  | MatchedPhase
  | CompressPhase
  | MetaPhase
  | IncubatePhase
  | FinetunePhase;

/** What a phase does. */
export type PhaseKind = Phase["kind"];

const stagePattern = (stage: number): string => `stages.${stage - 1}.*`;

/**
 * The folder of a phase relative to the run folder: `phases/<id>` with `:` as `-`
 * (`endpoint-only/compress:2` -> `phases/endpoint-only/compress-2`).
 *
 * @param id A phase id.
 * @returns The relative folder.
 * @example
 * ```ts
 * import { phaseFolder } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(phaseFolder("incubate:2"), "phases/incubate-2");
 * assert.equal(phaseFolder("legacy/compress:1"), "phases/legacy/compress-1");
 * ```
 */
export function phaseFolder(id: string): string {
  return `phases/${id.replaceAll(":", "-")}`;
}

/**
 * Epochs of the compute-matched baseline: `matched.epochs`, or with `auto` the epochs MFI-ResNet
 * trains after the baseline (each incubation's, plus the fine-tune's).
 *
 * @param config The config.
 * @returns The epochs.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, matchedEpochs } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(matchedEpochs(DEFAULT_CONFIG), 3 * 20 + 20);
 * ```
 */
export function matchedEpochs(config: PipelineConfig): number {
  const m = config.matched.epochs;
  return m === "auto"
    ? config.incubate.epochs * config.incubate.stages.length +
      config.finetune.epochs
    : m;
}

function compressPhase(
  config: PipelineConfig,
  specs: PipelineSpecs,
  l: number,
  variant: AblationVariant | null,
  objective: StageObjective,
): CompressPhase {
  const id = variant === null ? `compress:${l}` : `${variant}/compress:${l}`;
  return {
    id,
    kind: "compress",
    stage: l,
    variant,
    teacher: "baseline",
    objective,
    dependsOn: ["baseline"],
    sources: [],
    trainable: [stagePattern(l)],
    saves: [stagePattern(l)],
    output: phaseFolder(id),
    train: config.compress,
    spec: replaceStages(specs.baseline, { [l - 1]: specs.meta.stages[l - 1] }, "hybrid"),
  };
}

const trainOf = (t: TrainConfig): TrainConfig => ({
  epochs: t.epochs,
  batchSize: t.batchSize,
  optimizer: t.optimizer,
  lr: t.lr,
  momentum: t.momentum,
  nesterov: t.nesterov,
  weightDecay: t.weightDecay,
  warmupEpochs: t.warmupEpochs,
});

/**
 * The baseline phase of a run alone: what {@linkcode planPhases} plans first, without sizing
 * the MeanFlow stages (so it plans at any model width). `deno task train` runs it.
 *
 * @param config The validated pipeline config.
 * @returns The baseline phase.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, planBaseline, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(planBaseline(DEFAULT_CONFIG), planPhases(DEFAULT_CONFIG)[0]);
 * // At width 1/16 the paper-sized stage 4 cannot be planned; the baseline can.
 * const narrow = mergeConfig(DEFAULT_CONFIG, { model: { width: 0.0625 } });
 * assert.throws(() => planPhases(narrow), /Cannot size stage 4/);
 * assert.equal(planBaseline(narrow).spec.width, 0.0625);
 * ```
 */
export function planBaseline(config: PipelineConfig): BaselinePhase {
  const { arch, width } = config.model;
  return {
    id: "baseline",
    kind: "baseline",
    checkpoint: config.baseline.checkpoint,
    dependsOn: [],
    sources: [],
    trainable: ["*"],
    saves: ["*"],
    output: phaseFolder("baseline"),
    train: trainOf(config.baseline),
    spec: resnetSpec(arch, datasetClasses(config.data.dataset), width),
  };
}

/**
 * Plans the phases of a run. Order is a valid execution order; phases with no path between
 * them in `dependsOn` (the compressions, the incubations, the matched baseline, the ablation's
 * fits) are independent jobs.
 *
 * @param config The validated pipeline config.
 * @returns The phases, dependencies first.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const ids = planPhases(mergeConfig(DEFAULT_CONFIG, { ablation: ["endpoint-only"] })).map((p) => p.id);
 * assert.deepEqual(ids, [
 *   "baseline", "matched", "compress:1", "compress:2", "compress:3", "compress:4", "meta",
 *   "incubate:1", "incubate:2", "incubate:3", "finetune",
 *   "endpoint-only/compress:1", "endpoint-only/compress:2", "endpoint-only/compress:3",
 *   "endpoint-only/compress:4",
 * ]);
 * ```
 */
export function planPhases(config: PipelineConfig): Phase[] {
  const specs = pipelineSpecs(config);
  const phases: Phase[] = [];
  const all = [1, 2, 3, 4];
  phases.push(planBaseline(config));
  if (config.matched.enabled) {
    phases.push({
      id: "matched",
      kind: "matched",
      dependsOn: ["baseline"],
      sources: [{ phase: "baseline", patterns: ["*"] }],
      trainable: ["*"],
      saves: ["*"],
      output: phaseFolder("matched"),
      train: { ...trainOf(config.finetune), epochs: matchedEpochs(config) },
      spec: specs.baseline,
    });
  }
  // The meta model needs a MeanFlow stage in every position; compress.stages lists which are
  // fitted, the others start from their fresh initialisation (an ablation).
  const own = stageObjective(config);
  for (const l of config.compress.stages) phases.push(compressPhase(config, specs, l, null, own));
  const compressIds = config.compress.stages.map((l) => `compress:${l}`);
  phases.push({
    id: "meta",
    kind: "meta",
    dependsOn: ["baseline", ...compressIds],
    sources: [
      { phase: "baseline", patterns: ["stem.*", "head.*"] },
      ...config.compress.stages.map((l) => ({
        phase: `compress:${l}`,
        patterns: [stagePattern(l)],
      })),
    ],
    trainable: config.meta.trainable === "head" ? ["head.*"] : ["*"],
    saves: ["*"],
    output: phaseFolder("meta"),
    train: trainOf(config.meta),
    spec: specs.meta,
  });
  for (const k of config.incubate.stages) {
    const others = all.filter((l) => l !== k).map(stagePattern);
    phases.push({
      id: `incubate:${k}`,
      kind: "incubate",
      stage: k,
      dependsOn: config.incubate.init === "baseline" ? ["baseline", "meta"] : ["meta"],
      sources: [
        { phase: "meta", patterns: ["stem.*", ...others, "head.*"] },
        ...(config.incubate.init === "baseline"
          ? [{ phase: "baseline", patterns: [stagePattern(k)] }]
          : []),
      ],
      trainable: [stagePattern(k)],
      saves: [stagePattern(k)],
      output: phaseFolder(`incubate:${k}`),
      train: trainOf(config.incubate),
      spec: specs.hybrids[k],
    });
  }
  const kept = all.filter((l) => !config.incubate.stages.includes(l)).map(stagePattern);
  phases.push({
    id: "finetune",
    kind: "finetune",
    recalibrateBatches: config.finetune.recalibrateBatches,
    dependsOn: ["meta", ...config.incubate.stages.map((k) => `incubate:${k}`)],
    sources: [
      { phase: "meta", patterns: ["stem.*", ...kept, "head.*"] },
      ...config.incubate.stages.map((k) => ({
        phase: `incubate:${k}`,
        patterns: [stagePattern(k)],
      })),
    ],
    trainable: ["*"],
    saves: ["*"],
    output: phaseFolder("finetune"),
    train: trainOf(config.finetune),
    spec: specs.mfi,
  });
  for (const v of planVariants(config)) {
    const variantSpecs = pipelineSpecs(v.config);
    for (const l of config.compress.stages) {
      phases.push(compressPhase(v.config, variantSpecs, l, v.variant, v.objective));
    }
  }
  return phases;
}

/**
 * Expands `--phase` ids into plan ids: an id of the plan stands for itself, an ablation variant's
 * name (`endpoint-only`) for all of its phases.
 *
 * @param phases The plan.
 * @param ids The ids asked for.
 * @returns Plan ids, in plan order, without duplicates.
 * @throws {UnknownPhaseError} If an id is neither a phase nor a planned variant.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, planPhases, selectPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const plan = planPhases(mergeConfig(DEFAULT_CONFIG, { ablation: ["legacy"] }));
 * assert.deepEqual(selectPhases(plan, ["legacy", "meta"]), [
 *   "meta", "legacy/compress:1", "legacy/compress:2", "legacy/compress:3", "legacy/compress:4",
 * ]);
 * assert.throws(() => selectPhases(plan, ["incubate:4"]), /Unknown phase "incubate:4"/);
 * ```
 */
export function selectPhases(phases: readonly Phase[], ids: readonly string[]): string[] {
  const wanted = new Set<string>();
  for (const id of ids) {
    const exact = phases.find((p) => p.id === id);
    const ofVariant = phases.filter((p) => p.kind === "compress" && p.variant === id);
    if (exact === undefined && ofVariant.length === 0) {
      throw new UnknownPhaseError(id, phases.map((p) => p.id));
    }
    if (exact !== undefined) wanted.add(exact.id);
    for (const p of ofVariant) wanted.add(p.id);
  }
  return phases.filter((p) => wanted.has(p.id)).map((p) => p.id);
}

/**
 * Whether a variable name matches a pattern (`*` matches any run of characters, including dots).
 *
 * @param name A variable name such as `stages.2.blocks.0.conv1.weight`.
 * @param pattern A pattern such as `stages.2.*`.
 * @returns True on a match.
 * @example
 * ```ts
 * import { matchesPattern } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.ok(matchesPattern("stages.2.blocks.0.conv1.weight", "stages.2.*"));
 * assert.ok(!matchesPattern("stages.20.x", "stages.2.*"));
 * assert.ok(!matchesPattern("head.fc.weight", "stages.*"));
 * ```
 */
export function matchesPattern(name: string, pattern: string): boolean {
  const re = new RegExp(
    "^" + pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$",
  );
  return re.test(name);
}

/**
 * Whether a name matches any of the patterns.
 *
 * @param name A variable name.
 * @param patterns Patterns, see {@linkcode matchesPattern}.
 * @returns True if one matches.
 * @example
 * ```ts
 * import { matchesAny } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.ok(matchesAny("head.fc.weight", ["stem.*", "head.*"]));
 * assert.ok(!matchesAny("stages.0.conv.weight", ["stem.*", "head.*"]));
 * ```
 */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => matchesPattern(name, p));
}

/**
 * The phases needed to run the selected ones: the selection plus everything it depends on,
 * in plan order.
 *
 * @param phases The plan.
 * @param selected Phase ids (e.g. from `--phase incubate:2`).
 * @returns The closure, in plan order.
 * @throws {UnknownPhaseError} If a selected id is not in the plan.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, planPhases, withDependencies } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const ids = withDependencies(planPhases(DEFAULT_CONFIG), ["meta"]).map((p) => p.id);
 * assert.deepEqual(ids, ["baseline", "compress:1", "compress:2", "compress:3", "compress:4", "meta"]);
 * ```
 */
export function withDependencies(phases: readonly Phase[], selected: readonly string[]): Phase[] {
  const byId = new Map(phases.map((p) => [p.id, p]));
  const need = new Set<string>();
  const visit = (id: string) => {
    const p = byId.get(id);
    if (p === undefined) throw new UnknownPhaseError(id, phases.map((q) => q.id));
    if (need.has(id)) return;
    need.add(id);
    p.dependsOn.forEach(visit);
  };
  selected.forEach(visit);
  return phases.filter((p) => need.has(p.id));
}
