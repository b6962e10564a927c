/**
 * Incubation is a plan, then execution: {@linkcode planPhases} turns a config into the list of
 * phases (baseline, MeanFlow compression per stage, meta model, incubation per stage, assembled
 * fine-tune), each naming the checkpoints it reads, the one it writes, the model it trains and
 * its trainable variables by name pattern. It is pure: no tensors, no files.
 *
 * @module
 */
import type { PipelineConfig, TrainConfig } from "./config.ts";

/** What a phase does. */
export type PhaseKind = "baseline" | "compress" | "meta" | "incubate" | "finetune";

/** Which model of the run a phase's model is. */
export type PhaseModel = "baseline" | "meta" | "hybrid" | "mfi";

/** Variables a phase takes from an earlier phase's checkpoint. */
export interface PhaseSource {
  /** The phase whose output is read. */
  readonly phase: string;
  /** Name patterns of the variables taken (`*` matches any run of characters). */
  readonly patterns: readonly string[];
}

/** One phase of the pipeline. */
export interface Phase {
  /** Unique id, also the `--phase` argument: `baseline`, `compress:2`, `meta`, `incubate:1`, `finetune`. */
  readonly id: string;
  /** What the phase does. */
  readonly kind: PhaseKind;
  /** 1-based stage the phase works on (compress, incubate), else null. */
  readonly stage: number | null;
  /** Phases that must be complete first (their outputs are read). */
  readonly dependsOn: readonly string[];
  /** Which model is trained. `hybrid` = the meta model with `stage` residual. */
  readonly model: PhaseModel;
  /** Where the initial variables come from (the rest are freshly initialised). */
  readonly sources: readonly PhaseSource[];
  /** Frozen teacher (compress): the phase whose model computes target features. */
  readonly teacher: string | null;
  /** Name patterns of the trained variables; everything else is frozen (BN in inference mode). */
  readonly trainable: readonly string[];
  /** Name patterns of the variables written to the output checkpoint. */
  readonly saves: readonly string[];
  /** Output checkpoint, relative to the run folder. */
  readonly output: string;
  /** Hyperparameters. */
  readonly train: TrainConfig;
}

const stagePattern = (stage: number): string => `stages.${stage - 1}.*`;

/**
 * Plans the phases of a run. Order is a valid execution order; phases with no path between
 * them in `dependsOn` (the four compressions, the incubations) are independent jobs.
 *
 * @param config The validated pipeline config.
 * @returns The phases, dependencies first.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const ids = planPhases(DEFAULT_CONFIG).map((p) => p.id);
 * assert.deepEqual(ids, [
 *   "baseline", "compress:1", "compress:2", "compress:3", "compress:4", "meta",
 *   "incubate:1", "incubate:2", "incubate:3", "finetune",
 * ]);
 * ```
 */
export function planPhases(config: PipelineConfig): Phase[] {
  const phases: Phase[] = [];
  const all = [1, 2, 3, 4];
  phases.push({
    id: "baseline",
    kind: "baseline",
    stage: null,
    dependsOn: [],
    model: "baseline",
    sources: [],
    teacher: null,
    trainable: ["*"],
    saves: ["*"],
    output: "phases/baseline.safetensors",
    train: config.baseline,
  });
  // The meta model needs a MeanFlow stage in every position; compress.stages lists which are
  // fitted, the others start from their fresh initialisation (an ablation).
  for (const l of config.compress.stages) {
    phases.push({
      id: `compress:${l}`,
      kind: "compress",
      stage: l,
      dependsOn: ["baseline"],
      model: "meta",
      sources: [],
      teacher: "baseline",
      trainable: [stagePattern(l)],
      saves: [stagePattern(l)],
      output: `phases/compress-${l}.safetensors`,
      train: config.compress,
    });
  }
  const compressIds = config.compress.stages.map((l) => `compress:${l}`);
  phases.push({
    id: "meta",
    kind: "meta",
    stage: null,
    dependsOn: ["baseline", ...compressIds],
    model: "meta",
    sources: [
      { phase: "baseline", patterns: ["stem.*", "head.*"] },
      ...config.compress.stages.map((l) => ({
        phase: `compress:${l}`,
        patterns: [stagePattern(l)],
      })),
    ],
    teacher: null,
    trainable: config.meta.trainable === "head" ? ["head.*"] : ["*"],
    saves: ["*"],
    output: "phases/meta.safetensors",
    train: config.meta,
  });
  for (const k of config.incubate.stages) {
    const others = all.filter((l) => l !== k).map(stagePattern);
    phases.push({
      id: `incubate:${k}`,
      kind: "incubate",
      stage: k,
      dependsOn: config.incubate.init === "baseline" ? ["baseline", "meta"] : ["meta"],
      model: "hybrid",
      sources: [
        { phase: "meta", patterns: ["stem.*", ...others, "head.*"] },
        ...(config.incubate.init === "baseline"
          ? [{ phase: "baseline", patterns: [stagePattern(k)] }]
          : []),
      ],
      teacher: null,
      trainable: [stagePattern(k)],
      saves: [stagePattern(k)],
      output: `phases/incubate-${k}.safetensors`,
      train: config.incubate,
    });
  }
  const kept = all.filter((l) => !config.incubate.stages.includes(l)).map(stagePattern);
  phases.push({
    id: "finetune",
    kind: "finetune",
    stage: null,
    dependsOn: ["meta", ...config.incubate.stages.map((k) => `incubate:${k}`)],
    model: "mfi",
    sources: [
      { phase: "meta", patterns: ["stem.*", ...kept, "head.*"] },
      ...config.incubate.stages.map((k) => ({
        phase: `incubate:${k}`,
        patterns: [stagePattern(k)],
      })),
    ],
    teacher: null,
    trainable: ["*"],
    saves: ["*"],
    output: "phases/finetune.safetensors",
    train: config.finetune,
  });
  return phases;
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
 * @throws {RangeError} If a selected id is not in the plan.
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
    if (p === undefined) {
      throw new RangeError(
        `Unknown phase "${id}"; this plan has ${phases.map((q) => q.id).join(", ")}`,
      );
    }
    if (need.has(id)) return;
    need.add(id);
    p.dependsOn.forEach(visit);
  };
  selected.forEach(visit);
  return phases.filter((p) => need.has(p.id));
}
