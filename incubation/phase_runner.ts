/**
 * Executes one planned {@linkcode Phase}: checks that what it reads is complete, resumes or
 * discards its partial training, dispatches to the function of its kind, and commits its output
 * (the `saves` variables, the fingerprint, the result). The kinds live in
 * `phase_classifier.ts` (baseline, matched, meta, incubate, finetune) and `phase_compress.ts`.
 *
 * @module
 */
import { latestCheckpoint, type ProgressReporterOptions, readCheckpoint } from "@mfi/core";
import type { PipelineConfig } from "./config.ts";
import { PhaseNotReadyError } from "./errors.ts";
import type { PipelineData } from "./pipeline_data.ts";
import type { Phase } from "./plan.ts";
import {
  givenCheckpointDigest,
  phaseFingerprint,
  type PhaseResult,
  readPhaseOutput,
  writePhaseOutput,
} from "./phase_output.ts";
import {
  type PhaseWork,
  runBaseline,
  runFinetune,
  runIncubate,
  runMatched,
  runMeta,
} from "./phase_classifier.ts";
import { runCompress } from "./phase_compress.ts";
import { backendNow, type PhaseContext, phaseContext } from "./_phase_kit.ts";

/** Options of {@linkcode runPhase}. */
export interface RunPhaseOptions {
  /** The run folder. */
  readonly runDir: string;
  /** The run's config. */
  readonly config: PipelineConfig;
  /** The plan the phase belongs to (where its sources live). */
  readonly plan: readonly Phase[];
  /** The run's data. */
  readonly data: PipelineData;
  /** Progress display options, or false. */
  readonly progress?: ProgressReporterOptions | false;
  /** Log sink for one-line messages (default console.log). */
  readonly log?: (line: string) => void;
}

/** The function of each kind. */
function dispatch(ctx: PhaseContext, phase: Phase): Promise<PhaseWork> {
  switch (phase.kind) {
    case "baseline":
      return runBaseline(ctx, phase);
    case "matched":
      return runMatched(ctx, phase);
    case "compress":
      return runCompress(ctx, phase);
    case "meta":
      return runMeta(ctx, phase);
    case "incubate":
      return runIncubate(ctx, phase);
    case "finetune":
      return runFinetune(ctx, phase);
  }
}

/**
 * The SHA-256 of each dependency's output weights.
 *
 * @throws {PhaseNotReadyError} If one is missing or incomplete.
 */
async function readInputs(
  phase: Phase,
  plan: readonly Phase[],
  runDir: string,
): Promise<Record<string, string>> {
  const inputs: Record<string, string> = {};
  const missing: string[] = [];
  for (const d of phase.dependsOn) {
    const dep = plan.find((p) => p.id === d);
    const out = dep === undefined ? undefined : await readPhaseOutput(runDir, dep);
    if (out === undefined) missing.push(d);
    else inputs[d] = out.sha256;
  }
  if (missing.length > 0) throw new PhaseNotReadyError(phase.id, missing, runDir);
  return inputs;
}

/** The result a phase's work commits. */
function resultOf(
  phase: Phase,
  work: PhaseWork,
  run: { wallSeconds: number; data: string; inputs: Record<string, string> },
): PhaseResult {
  return {
    phase: phase.id,
    complete: true,
    spec: phase.spec,
    parameters: work.parameters,
    trainableParameters: work.trainableParameters,
    testAccuracy: work.final.accuracy,
    initialTestAccuracy: work.initialTestAccuracy ?? null,
    recalibratedTestAccuracy: work.recalibratedTestAccuracy ?? null,
    fitMse: work.fit?.mse ?? null,
    fitRelative: work.fit?.relative ?? null,
    gradNorms: work.gradNorms ?? null,
    testImages: work.final.count,
    correct: work.final.correct,
    imagesProcessed: work.imagesProcessed,
    wallSeconds: run.wallSeconds,
    history: work.history,
    data: run.data,
    backend: backendNow(),
    inputs: run.inputs,
  };
}

/** Removes partial training made from other inputs or another config (it cannot be resumed). */
async function discardForeignTraining(
  trainDir: string,
  fingerprint: unknown,
  log: (line: string) => void,
): Promise<void> {
  const found = await latestCheckpoint(trainDir).catch(() => undefined);
  if (found === undefined) return;
  const ckpt = await readCheckpoint(found);
  if (JSON.stringify(ckpt.sidecar.config) === JSON.stringify(fingerprint)) return;
  log(`  discarding partial training in ${trainDir}: it was made from other inputs or config`);
  await Deno.remove(trainDir, { recursive: true });
}

/**
 * Runs one phase to completion and writes its output. The caller checks dependencies and skips
 * complete phases; this function resumes an interrupted training of the same phase.
 *
 * @param phase The phase from {@linkcode planPhases}.
 * @param options Run folder, config, plan and data.
 * @returns The phase's result (also stored in its output).
 * @throws {PhaseNotReadyError} If an output it reads is missing or incomplete.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, PhaseNotReadyError, planPhases, runPhase } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * // A phase whose inputs are missing is refused before anything is built.
 * const dir = await Deno.makeTempDir();
 * const plan = planPhases(DEFAULT_CONFIG);
 * const meta = plan.find((p) => p.id === "meta")!;
 * const data = {} as Parameters<typeof runPhase>[1]["data"];
 * await assert.rejects(
 *   runPhase(meta, { runDir: dir, config: DEFAULT_CONFIG, plan, data }),
 *   (e) => e instanceof PhaseNotReadyError && e.missing[0] === "baseline",
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function runPhase(phase: Phase, options: RunPhaseOptions): Promise<PhaseResult> {
  const { runDir, config, plan, data } = options;
  const log = options.log ?? ((line: string) => console.log(line));
  const t0 = performance.now();
  const fingerprint = phaseFingerprint(phase, config, await givenCheckpointDigest(phase));
  const inputs = await readInputs(phase, plan, runDir);
  const dir = `${runDir}/${phase.output}`;
  await Deno.mkdir(dir, { recursive: true });
  const trainFingerprint = { ...(fingerprint as Record<string, unknown>), inputs };
  for (const sub of ["train", "train-align"]) {
    await discardForeignTraining(`${dir}/${sub}`, trainFingerprint, log);
  }
  const disposables: Array<{ dispose(): void }> = [];
  try {
    const ctx = phaseContext({
      runDir,
      config,
      plan,
      data,
      phase,
      // An ablation's fit of stage l starts from the same initialisation and sees the same
      // batches as the run's own fit of that stage: only the objective differs.
      seedName: phase.kind === "compress" ? `compress:${phase.stage}` : phase.id,
      trainFingerprint,
      progress: options.progress,
      log,
      disposables,
    });
    const work = await dispatch(ctx, phase);
    const result = resultOf(phase, work, {
      wallSeconds: (performance.now() - t0) / 1000,
      data: data.source.description,
      inputs,
    });
    await writePhaseOutput(runDir, phase, work.saved, fingerprint, result);
    // The output is committed; the resumable training checkpoints are no longer needed.
    for (const sub of ["train", "train-align"]) {
      await Deno.remove(`${dir}/${sub}`, { recursive: true }).catch(() => {});
    }
    await Deno.remove(`${dir}/grad-norms-start.json`).catch(() => {});
    return result;
  } finally {
    for (const d of disposables) d.dispose();
  }
}
