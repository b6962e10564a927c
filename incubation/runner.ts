/**
 * Executes a plan: every phase whose output is absent or incomplete runs, in plan order;
 * complete phases are skipped (their outputs are reused), so a killed run resumes where it
 * stopped. A single phase (`only: ["incubate:2"]`) can run alone, e.g. as its own process or on
 * another machine, once its dependencies are complete.
 *
 * @module
 */
import type { ProgressReporterOptions } from "@mfi/core";
import type { PipelineConfig } from "./config.ts";
import type { PipelineData } from "./pipeline_data.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import {
  givenCheckpointDigest,
  phaseDir,
  phaseFingerprint,
  type PhaseResult,
  readPhaseOutput,
  runPhase,
} from "./phase_runner.ts";
import { type Phase, planPhases } from "./plan.ts";

/** Options of {@linkcode runPipeline}. */
export interface RunPipelineOptions {
  /** The run folder (created if needed). */
  readonly runDir: string;
  /** The run's data. */
  readonly data: PipelineData;
  /** Run only these phases (their dependencies must be complete); default: all. */
  readonly only?: readonly string[];
  /** Progress display options, or false. */
  readonly progress?: ProgressReporterOptions | false;
  /** One-line log sink (default console.log). */
  readonly log?: (line: string) => void;
}

/** Outcome of a pipeline run. */
export interface PipelineOutcome {
  /** The plan. */
  readonly phases: readonly Phase[];
  /** Results of every complete phase (run now or earlier), by id. */
  readonly results: Readonly<Record<string, PhaseResult>>;
  /** Phases run by this call. */
  readonly ran: readonly string[];
  /** Phases skipped because their output was complete. */
  readonly skipped: readonly string[];
}

/**
 * Runs the pipeline, skipping complete phases.
 *
 * @param config The validated config.
 * @param options Run folder, data, phase selection.
 * @returns Results per phase and what ran.
 * @throws {Error} If a selected phase's dependency is incomplete, or a complete output was made
 *   with another config (use a new run folder).
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, runPipeline } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * // The full pipeline on real data is exercised by tests/pipeline_smoke_test.ts; here: selection.
 * const data = {} as Parameters<typeof runPipeline>[1]["data"];
 * await assert.rejects(
 *   runPipeline(DEFAULT_CONFIG, { runDir: "unused", data, only: ["incubate:4"] }),
 *   /Unknown phase "incubate:4"/,
 * );
 * ```
 */
export async function runPipeline(
  config: PipelineConfig,
  options: RunPipelineOptions,
): Promise<PipelineOutcome> {
  const log = options.log ?? ((line: string) => console.log(line));
  const phases = planPhases(config);
  const specs = pipelineSpecs(config);
  const ids = new Set(phases.map((p) => p.id));
  for (const id of options.only ?? []) {
    if (!ids.has(id)) {
      throw new RangeError(`Unknown phase "${id}"; this plan has ${[...ids].join(", ")}`);
    }
  }
  await Deno.mkdir(options.runDir, { recursive: true });
  const results: Record<string, PhaseResult> = {};
  const shas: Record<string, string> = {};
  const ran: string[] = [];
  const skipped: string[] = [];
  const selected = options.only ? new Set(options.only) : ids;
  for (const phase of phases) {
    const spec = phase.model === "baseline"
      ? specs.baseline
      : phase.model === "meta"
      ? specs.meta
      : phase.model === "hybrid"
      ? specs.hybrids[phase.stage!]
      : specs.mfi;
    const fingerprint = JSON.stringify(
      phaseFingerprint(phase, config, spec, await givenCheckpointDigest(phase, config)),
    );
    const existing = await readPhaseOutput(options.runDir, phase.id);
    if (existing !== undefined) {
      if (JSON.stringify(existing.fingerprint) !== fingerprint) {
        throw new Error(
          `Run folder ${options.runDir} holds a complete ${phase.id} made with another config; ` +
            "use a new --out folder (or delete that phase's folder to redo it)",
        );
      }
      const changed = phase.dependsOn.filter((d) =>
        results[d] === undefined || shas[d] !== existing.result.inputs?.[d]
      );
      if (changed.length > 0) {
        // Only a phase about to be redone is deleted: another process may be completing the
        // inputs of a phase this one did not select (independent phases run side by side).
        if (!selected.has(phase.id)) {
          log(
            `[stale] ${phase.id}: made from an earlier ${changed.join(", ")}; not selected, kept`,
          );
          continue;
        }
        log(`[stale] ${phase.id}: made from an earlier ${changed.join(", ")}; discarding it`);
        await Deno.remove(phaseDir(options.runDir, phase.id), { recursive: true });
      } else {
        results[phase.id] = existing.result;
        shas[phase.id] = existing.sha256;
        if (selected.has(phase.id)) {
          skipped.push(phase.id);
          log(`[skip] ${phase.id}: complete output found`);
        }
        continue;
      }
    }
    if (!selected.has(phase.id)) continue;
    const missing = phase.dependsOn.filter((d) => results[d] === undefined);
    if (missing.length > 0) {
      throw new Error(
        `Cannot run ${phase.id}: ${missing.join(", ")} not complete in ${options.runDir}; ` +
          `run ${missing.map((m) => `--phase ${m}`).join(" ")} first (or run without --phase)`,
      );
    }
    log(
      phase.kind === "baseline" && config.baseline.checkpoint !== null
        ? `[run] ${phase.id} (loads ${config.baseline.checkpoint})`
        : `[run] ${phase.id} (${phase.kind}${phase.stage ? ` stage ${phase.stage}` : ""}, ` +
          `${phase.train.epochs} epoch(s), trains ${phase.trainable.join(", ")})`,
    );
    const result = await runPhase(phase, {
      runDir: options.runDir,
      config,
      specs,
      data: options.data,
      progress: options.progress,
      log,
    });
    results[phase.id] = result;
    shas[phase.id] = (await readPhaseOutput(options.runDir, phase.id))!.sha256;
    ran.push(phase.id);
    log(`[done] ${phase.id} in ${result.wallSeconds.toFixed(1)} s`);
  }
  return { phases, results, ran, skipped };
}
