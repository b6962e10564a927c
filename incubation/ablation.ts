/**
 * The stage-fit ablation (METHOD.md section 5: is the MeanFlow loss, the one-step endpoint
 * regression, or both the better stage fit?). Each variant named in `config.ablation` is a
 * sub-run in `<run>/ablation/<variant>`: the run's config with another stage-fit objective and
 * `baseline.checkpoint` set to the run's own baseline, so every variant starts from the same
 * teacher, seed, data and schedules and only the objective differs. {@linkcode planAblation} is
 * pure; {@linkcode runAblation} executes the sub-runs (resumable like any run) and returns the
 * rows of the report's ablation table.
 *
 * @module
 */
import type { ProgressReporterOptions } from "@mfi/core";
import {
  ABLATION_VARIANTS,
  type AblationVariant,
  type MeanFlowConfig,
  mergeConfig,
  type PipelineConfig,
} from "./config.ts";
import type { PipelineData } from "./pipeline_data.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { givenCheckpointDigest, phaseDir, readPhaseOutput } from "./phase_runner.ts";
import { planPhases } from "./plan.ts";
import { buildReport, type RunReport, writeReport } from "./report.ts";
import { type PipelineOutcome, runPipeline } from "./runner.ts";

/** One planned ablation sub-run. */
export interface AblationRun {
  /** The variant. */
  readonly variant: AblationVariant;
  /** The stage-fit objective, for people. */
  readonly objective: string;
  /** The sub-run's config: the run's, another objective, the run's baseline as checkpoint. */
  readonly config: PipelineConfig;
  /** The sub-run's folder. */
  readonly runDir: string;
}

/** One row of the ablation table: a stage-fit objective and what it gave. */
export interface AblationRow {
  /** `main` for the run itself, else the variant. */
  readonly variant: "main" | AblationVariant;
  /** The stage-fit objective, for people. */
  readonly objective: string;
  /** Stage fits of stages 1-4: one-step test MSE over the teacher output's variance (null = not fitted yet). */
  readonly fitRelative: readonly (number | null)[];
  /** Meta-model test top-1, or null if not run yet. */
  readonly metaTop1: number | null;
  /** MFI-ResNet test top-1, or null if not run yet. */
  readonly mfiTop1: number | null;
  /** MFI-ResNet top-1 minus the (shared) baseline's, in points, or null. */
  readonly mfiDeltaPoints: number | null;
  /** Wall-clock seconds of the row's phases after the baseline. */
  readonly wallSeconds: number;
  /** The row's own report, relative to the run folder (null for the run itself). */
  readonly report: string | null;
}

/**
 * The stage-fit objective of a MeanFlow config, in words.
 *
 * @param meanflow The config's `meanflow` section.
 * @returns E.g. `MeanFlow loss + 1 x endpoint regression`.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, objectiveName } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(objectiveName(DEFAULT_CONFIG.meanflow), "MeanFlow loss + 1 x endpoint regression");
 * assert.equal(objectiveName({ ...DEFAULT_CONFIG.meanflow, lambda: 0 }), "MeanFlow loss alone");
 * ```
 */
export function objectiveName(meanflow: MeanFlowConfig): string {
  if (!meanflow.meanflow) return "endpoint regression alone";
  if (meanflow.lambda === 0) return "MeanFlow loss alone";
  return `MeanFlow loss + ${meanflow.lambda} x endpoint regression`;
}

/**
 * The folder of a variant's sub-run.
 *
 * @param runDir The run folder.
 * @param variant The variant.
 * @returns `<runDir>/ablation/<variant>`.
 * @example
 * ```ts
 * import { ablationRunDir } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(ablationRunDir("runs/q", "endpoint-only"), "runs/q/ablation/endpoint-only");
 * ```
 */
export function ablationRunDir(runDir: string, variant: AblationVariant): string {
  return `${runDir}/ablation/${variant}`;
}

function variantPatch(variant: AblationVariant, meanflow: MeanFlowConfig): unknown {
  return variant === "meanflow-only"
    ? { meanflow: { meanflow: true, lambda: 0 } }
    : { meanflow: { meanflow: false, lambda: meanflow.lambda > 0 ? meanflow.lambda : 1 } };
}

/**
 * Plans the ablation sub-runs of a run (pure). A variant whose objective is the run's own (e.g.
 * `meanflow-only` in a run with `meanflow.lambda = 0`) is left out: the run itself is that row.
 *
 * @param config The run's config (its `ablation` names the variants).
 * @param runDir The run folder.
 * @returns One sub-run per variant, in report order.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, planAblation } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const config = mergeConfig(DEFAULT_CONFIG, { ablation: ["endpoint-only", "meanflow-only"] });
 * const runs = planAblation(config, "runs/a");
 * assert.deepEqual(runs.map((r) => r.variant), ["meanflow-only", "endpoint-only"]);
 * assert.equal(runs[0].config.meanflow.lambda, 0);
 * assert.equal(runs[1].config.meanflow.meanflow, false);
 * assert.equal(runs[1].config.baseline.checkpoint, "runs/a/phases/baseline/output/output.safetensors");
 * assert.deepEqual(runs[1].config.ablation, []);
 * ```
 */
export function planAblation(config: PipelineConfig, runDir: string): AblationRun[] {
  const own = objectiveName(config.meanflow);
  return ABLATION_VARIANTS.filter((v) => config.ablation.includes(v)).flatMap((variant) => {
    const sub = mergeConfig(config, variantPatch(variant, config.meanflow), {
      ablation: [],
      baseline: { checkpoint: `${phaseDir(runDir, "baseline")}/output/output.safetensors` },
    });
    const objective = objectiveName(sub.meanflow);
    return objective === own
      ? []
      : [{ variant, objective, config: sub, runDir: ablationRunDir(runDir, variant) }];
  });
}

/**
 * The ablation row of a run's report (the run itself, or a sub-run).
 *
 * @param report The (sub-)run's report.
 * @param variant `main` or the variant.
 * @param baselineTop1 The shared baseline's top-1 (the run's), or null.
 * @returns The row.
 * @example
 * ```ts
 * import { ablationRow, buildReport, DEFAULT_CONFIG, pipelineSpecs, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const report = buildReport({
 *   config: DEFAULT_CONFIG, specs: pipelineSpecs(DEFAULT_CONFIG), phases: planPhases(DEFAULT_CONFIG),
 *   results: {}, data: "none", sample: false, backend: "cpu",
 * });
 * const row = ablationRow(report, "main", null);
 * assert.deepEqual(row.fitRelative, [null, null, null, null]);
 * assert.equal(row.mfiTop1, null);
 * ```
 */
export function ablationRow(
  report: RunReport,
  variant: "main" | AblationVariant,
  baselineTop1: number | null,
): AblationRow {
  const top1 = (model: string) => report.models.find((m) => m.model === model)?.top1 ?? null;
  const mfiTop1 = top1("mfi-resnet");
  return {
    variant,
    objective: objectiveName(report.config.meanflow),
    fitRelative: [1, 2, 3, 4].map((l) =>
      report.phases.find((p) => p.phase === `compress:${l}`)?.fitRelative ?? null
    ),
    metaTop1: top1("meta"),
    mfiTop1,
    mfiDeltaPoints: mfiTop1 !== null && baselineTop1 !== null
      ? 100 * (mfiTop1 - baselineTop1)
      : null,
    wallSeconds: report.phases.filter((p) => p.phase !== "baseline").reduce(
      (s, p) => s + p.wallSeconds,
      0,
    ),
    report: variant === "main" ? null : `ablation/${variant}/report/results.md`,
  };
}

/**
 * Splits a `--phase` id into the run it names and its phase: `meta` is the main run's,
 * `endpoint-only/meta` a sub-run's, and a bare variant name (`endpoint-only`) the whole sub-run.
 * The variant is not checked against the known ones (callers report an unknown one).
 *
 * @param id A `--phase` argument.
 * @returns The variant (null = the main run) and the phase (null = every phase of the sub-run).
 * @example
 * ```ts
 * import { parsePhaseId } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parsePhaseId("incubate:2"), { variant: null, phase: "incubate:2" });
 * assert.deepEqual(parsePhaseId("endpoint-only/meta"), { variant: "endpoint-only", phase: "meta" });
 * assert.deepEqual(parsePhaseId("meanflow-only"), { variant: "meanflow-only", phase: null });
 * ```
 */
export function parsePhaseId(id: string): { variant: string | null; phase: string | null } {
  const slash = id.indexOf("/");
  if (slash >= 0) return { variant: id.slice(0, slash), phase: id.slice(slash + 1) };
  return ABLATION_VARIANTS.includes(id as AblationVariant)
    ? { variant: id, phase: null }
    : { variant: null, phase: id };
}

/**
 * The phases of a `--phase` selection that belong to one run (ids as {@linkcode parsePhaseId}
 * reads them). A sub-run's selection includes its baseline, which is only a load of the run's
 * baseline.
 *
 * @param only The selection, or undefined for everything.
 * @param variant null for the main run, else the variant.
 * @returns The run's selected ids (undefined = all; empty = none, only collect results).
 * @example
 * ```ts
 * import { selectedPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const only = ["meta", "endpoint-only/compress:1", "meanflow-only"];
 * assert.deepEqual(selectedPhases(only, null), ["meta"]);
 * assert.deepEqual(selectedPhases(only, "endpoint-only"), ["baseline", "compress:1"]);
 * assert.equal(selectedPhases(only, "meanflow-only"), undefined);
 * assert.equal(selectedPhases(undefined, null), undefined);
 * ```
 */
export function selectedPhases(
  only: readonly string[] | undefined,
  variant: AblationVariant | null,
): string[] | undefined {
  if (only === undefined) return undefined;
  const mine = only.map(parsePhaseId).filter((p) => p.variant === variant);
  if (mine.some((p) => p.phase === null)) return undefined;
  const ids = mine.map((p) => p.phase!);
  return variant === null || ids.length === 0 || ids.includes("baseline")
    ? ids
    : ["baseline", ...ids];
}

/** Options of {@linkcode runAblation}. */
export interface RunAblationOptions {
  /** The run folder (its baseline must be complete). */
  readonly runDir: string;
  /** The run's data. */
  readonly data: PipelineData;
  /** `--phase` selection (see {@linkcode selectedPhases}); default: every sub-run phase. */
  readonly only?: readonly string[];
  /** Data description, sample flag and backend, for the sub-runs' reports. */
  readonly describe: { readonly data: string; readonly sample: boolean; readonly backend: string };
  /** Progress display options, or false. */
  readonly progress?: ProgressReporterOptions | false;
  /** One-line log sink (default console.log). */
  readonly log?: (line: string) => void;
}

/** What {@linkcode runAblation} did. */
export interface AblationOutcome {
  /** Each sub-run, its pipeline outcome and its report (written to `<sub-run>/report`). */
  readonly runs: ReadonlyArray<
    { readonly run: AblationRun; readonly outcome: PipelineOutcome; readonly report: RunReport }
  >;
}

/**
 * Runs (or resumes) the ablation sub-runs of a run and writes each one's report. The run's own
 * baseline must be complete: every variant loads it.
 *
 * @param config The run's config.
 * @param options Run folder, data, selection.
 * @returns The sub-runs' outcomes and reports.
 * @throws {Error} If the run's baseline is not complete, or a sub-run fails.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, runAblation } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * // The sub-runs themselves are exercised by tests/pipeline_ablation_test.ts; here: the guard.
 * const config = mergeConfig(DEFAULT_CONFIG, { ablation: ["endpoint-only"] });
 * const dir = await Deno.makeTempDir();
 * const data = {} as Parameters<typeof runAblation>[1]["data"];
 * const describe = { data: "none", sample: false, backend: "cpu" };
 * await assert.rejects(
 *   runAblation(config, { runDir: dir, data, describe, log: () => {} }),
 *   /ablation needs the run's own baseline/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function runAblation(
  config: PipelineConfig,
  options: RunAblationOptions,
): Promise<AblationOutcome> {
  const log = options.log ?? ((line: string) => console.log(line));
  const planned = planAblation(config, options.runDir);
  if (planned.length === 0) return { runs: [] };
  if ((await readPhaseOutput(options.runDir, "baseline")) === undefined) {
    throw new Error(
      `The stage-fit ablation needs the run's own baseline, which is not complete in ` +
        `${options.runDir}; run the baseline first (without --phase, or with --phase baseline)`,
    );
  }
  const reportOf = (run: AblationRun, outcome: PipelineOutcome) =>
    buildReport({
      config: run.config,
      specs: pipelineSpecs(run.config),
      phases: outcome.phases,
      results: outcome.results,
      ...options.describe,
    });
  const runs = [];
  for (const run of planned) {
    log(`[ablation] ${run.variant}: ${run.objective}, in ${run.runDir}`);
    // A sub-run's baseline is a copy of the run's: if the run's was redone since, reload it
    // (phases made from the old one then become stale and are redone too) when the sub-run is
    // selected; an unselected one is left as it is and reports nothing.
    const only = selectedPhases(options.only, run.variant);
    const copy = await readPhaseOutput(run.runDir, "baseline");
    if (copy !== undefined) {
      const baseline = planPhases(run.config)[0];
      const had = (copy.fingerprint as { checkpointSha256?: string }).checkpointSha256;
      if (had !== await givenCheckpointDigest(baseline, run.config)) {
        if (only !== undefined && only.length === 0) {
          log(
            `[stale] ${run.variant}: its baseline copy is not of the run's current baseline; ` +
              `not selected, kept (run --phase ${run.variant} to redo it)`,
          );
          const outcome = { phases: planPhases(run.config), results: {}, ran: [], skipped: [] };
          runs.push({ run, outcome, report: reportOf(run, outcome) });
          continue;
        }
        log(
          `[stale] ${run.variant}/baseline: its copy is not of the run's current baseline ` +
            "file; reloading it",
        );
        await Deno.remove(phaseDir(run.runDir, "baseline"), { recursive: true });
      }
    }
    const outcome = await runPipeline(run.config, {
      runDir: run.runDir,
      data: options.data,
      only,
      progress: options.progress,
      log: (line) => log(`  ${run.variant}: ${line}`),
    });
    const report = reportOf(run, outcome);
    await writeReport(`${run.runDir}/report`, report, outcome.results);
    runs.push({ run, outcome, report });
  }
  return { runs };
}
