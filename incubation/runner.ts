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
import { ForeignRunError, PhaseNotReadyError } from "./errors.ts";
import type { PipelineData } from "./pipeline_data.ts";
import {
  givenCheckpointDigest,
  outputPath,
  PHASE_FORMAT,
  phaseFingerprint,
  type PhaseResult,
  readPhaseOutput,
} from "./phase_output.ts";
import { runPhase } from "./phase_runner.ts";
import { type Phase, planPhases, selectPhases } from "./plan.ts";

/** Where a run stands when a phase starts (for whole-run progress). */
export interface PhaseStart {
  /** The phase about to run. */
  readonly phase: Phase;
  /** 1-based position among the phases this call runs. */
  readonly index: number;
  /** Phases this call will run (skipped ones not counted). */
  readonly total: number;
}

/** Options of {@linkcode runPipeline}. */
export interface RunPipelineOptions {
  /** The run folder (created if needed). */
  readonly runDir: string;
  /** The run's data. */
  readonly data: PipelineData;
  /**
   * The phases to execute (default: `planPhases(config)`), e.g. `[planBaseline(config)]` to
   * train the baseline alone without sizing the MeanFlow stages (`deno task train`).
   */
  readonly plan?: readonly Phase[];
  /**
   * Run only these phases (their dependencies must be complete): plan ids, or an ablation
   * variant's name for all of its fits; default: all.
   */
  readonly only?: readonly string[];
  /** Progress display options, or false. */
  readonly progress?: ProgressReporterOptions | false;
  /** One-line log sink (default console.log). */
  readonly log?: (line: string) => void;
  /** Called before each phase that runs. */
  readonly onPhaseStart?: (start: PhaseStart) => void;
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

/** What the runner knows of complete phases while it decides and runs. */
interface RunState {
  /** Results of complete phases, by id. */
  readonly results: Record<string, PhaseResult>;
  /** SHA-256 of complete phases' weights, by id. */
  readonly shas: Record<string, string>;
  /** Selected phases found complete. */
  readonly skipped: string[];
}

/** The log line of a phase about to run. */
function describePhase(phase: Phase): string {
  return phase.kind === "baseline" && phase.checkpoint !== null
    ? `[run] ${phase.id} (loads ${phase.checkpoint})`
    : `[run] ${phase.id} (${phase.kind}${"stage" in phase ? ` stage ${phase.stage}` : ""}, ` +
      `${phase.train.epochs} epoch(s), trains ${phase.trainable.join(", ")})`;
}

/**
 * Whether a phase still has to run: no trustworthy output (absent, incomplete or edited), or a
 * stale one (made from an earlier dependency; deleted when selected, kept otherwise). A complete
 * one goes into `state`.
 *
 * @throws {ForeignRunError} If its output was made with another config or format.
 */
async function inspectPhase(
  phase: Phase,
  config: PipelineConfig,
  runDir: string,
  selected: ReadonlySet<string>,
  state: RunState,
  log: (line: string) => void,
): Promise<boolean> {
  const fingerprint = JSON.stringify(
    phaseFingerprint(phase, config, await givenCheckpointDigest(phase)),
  );
  const existing = await readPhaseOutput(runDir, phase);
  if (existing === undefined) {
    if (selected.has(phase.id) && await exists(outputPath(runDir, phase))) {
      log(`[redo] ${phase.id}: its output is incomplete or was edited; it is not trusted`);
    }
    return true;
  }
  if (JSON.stringify(existing.fingerprint) !== fingerprint) {
    const format = (existing.fingerprint as { format?: string } | null)?.format;
    throw new ForeignRunError(
      runDir,
      format === PHASE_FORMAT
        ? phase.id
        : `${phase.id} (written in phase format ${format ?? "mfi-phase/1"}, ` +
          `this version writes ${PHASE_FORMAT})`,
    );
  }
  const changed = phase.dependsOn.filter((d) =>
    state.results[d] === undefined || state.shas[d] !== existing.result.inputs?.[d]
  );
  if (changed.length === 0) {
    state.results[phase.id] = existing.result;
    state.shas[phase.id] = existing.sha256;
    if (selected.has(phase.id)) {
      state.skipped.push(phase.id);
      log(`[skip] ${phase.id}: complete output found`);
    }
    return false;
  }
  // Only a phase about to be redone is deleted: another process may be completing the
  // inputs of a phase this one did not select (independent phases run side by side).
  if (!selected.has(phase.id)) {
    log(`[stale] ${phase.id}: made from an earlier ${changed.join(", ")}; not selected, kept`);
    return false;
  }
  log(`[stale] ${phase.id}: made from an earlier ${changed.join(", ")}; discarding it`);
  await Deno.remove(`${runDir}/${phase.output}`, { recursive: true });
  return true;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the pipeline, skipping complete phases. A complete output made from earlier inputs (a
 * dependency redone since) is stale: deleted and redone when selected, kept otherwise (another
 * process may be completing it). An output that is present but not trustworthy (incomplete, or
 * its result edited) is redone.
 *
 * @param config The validated config.
 * @param options Run folder, data, phase selection.
 * @returns Results per phase and what ran.
 * @throws {UnknownPhaseError} If `only` names no phase of the plan.
 * @throws {PhaseNotReadyError} If a selected phase's dependency is incomplete.
 * @throws {ForeignRunError} If a complete output was made with another config.
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
  const phases = options.plan ?? planPhases(config);
  const selected = new Set(
    options.only === undefined ? phases.map((p) => p.id) : selectPhases(phases, options.only),
  );
  await Deno.mkdir(options.runDir, { recursive: true });
  const state: RunState = { results: {}, shas: {}, skipped: [] };
  const toRun: Phase[] = [];
  // Decide in plan order what is complete; then run what is pending and selected.
  for (const phase of phases) {
    const pending = await inspectPhase(phase, config, options.runDir, selected, state, log);
    if (pending && selected.has(phase.id)) toRun.push(phase);
  }
  const { results, shas, skipped } = state;
  const ran: string[] = [];
  for (const [i, phase] of toRun.entries()) {
    const missing = phase.dependsOn.filter((d) => results[d] === undefined);
    if (missing.length > 0) throw new PhaseNotReadyError(phase.id, missing, options.runDir);
    options.onPhaseStart?.({ phase, index: i + 1, total: toRun.length });
    log(describePhase(phase));
    const result = await runPhase(phase, {
      runDir: options.runDir,
      config,
      plan: phases,
      data: options.data,
      progress: options.progress,
      log,
    });
    results[phase.id] = result;
    shas[phase.id] = (await readPhaseOutput(options.runDir, phase))!.sha256;
    ran.push(phase.id);
    log(`[done] ${phase.id} in ${result.wallSeconds.toFixed(1)} s`);
  }
  return { phases, results, ran, skipped };
}
