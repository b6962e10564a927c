/**
 * What a finished phase leaves behind, and how it is trusted: an output checkpoint in the phase's
 * folder (the `saves` variables, plus a sidecar holding the phase's fingerprint and its
 * {@linkcode PhaseResult}). The sidecar's weights digest is checked on every read, and the result
 * is bound to those weights by its own digest, so a hand-edited result (an accuracy typed into
 * `output.json`) makes the output invalid and the phase is redone instead of reported.
 *
 * @module
 */
import {
  type EpochRecord,
  type NamedVariables,
  readCheckpoint,
  type SafetensorsTensor,
  saveCheckpoint,
  sha256Hex,
  variablesToTensors,
} from "@mfi/core";
import type { PipelineConfig } from "./config.ts";
import type { ModelSpec } from "./model_spec.ts";
import type { Phase } from "./plan.ts";

/** Fingerprint format of phase outputs; outputs of other formats are from another version. */
export const PHASE_FORMAT = "mfi-phase/2";

/** Gradient norms of the stage-fit terms on a few training batches. */
export interface GradNormRecord {
  /** Norm of the MeanFlow term's gradient. */
  readonly meanflow: number;
  /** Norm of lambda x the endpoint term's gradient. */
  readonly endpoint: number;
}

/** What a finished phase reports (stored in its output checkpoint's sidecar `extra`). */
export interface PhaseResult {
  /** Phase id. */
  readonly phase: string;
  /** Always true in a written output (the commit marker of the phase). */
  readonly complete: true;
  /** The spec of the model the phase trained or evaluated (compress: the in-situ model). */
  readonly spec: ModelSpec;
  /** Parameters of the trained model (compress: of the stage). */
  readonly parameters: number;
  /** Trainable parameters of the phase. */
  readonly trainableParameters: number;
  /** Test top-1 of the phase's model at the end (compress: the in-situ accuracy). */
  readonly testAccuracy: number | null;
  /** Test accuracy before training (matched, meta, incubate, finetune), else null. */
  readonly initialTestAccuracy: number | null;
  /** Finetune with recalibration: test accuracy after recalibrating batch norm, before training. */
  readonly recalibratedTestAccuracy: number | null;
  /** Compress only: one-step test fit, mean squared error per element. */
  readonly fitMse: number | null;
  /** Compress only: fit MSE over the teacher output's variance (0 = perfect, 1 = the mean). */
  readonly fitRelative: number | null;
  /** Compress only: gradient norms of the two loss terms at the start and the end of the fit. */
  readonly gradNorms: { readonly start: GradNormRecord; readonly end: GradNormRecord } | null;
  /** Test images behind `testAccuracy`. */
  readonly testImages: number;
  /**
   * Per test image, whether the final model's top-1 was right: a bitset (image i = bit i % 8 of
   * byte i / 8), base64. Paired tests between models use it.
   */
  readonly correct: string | null;
  /** Training images processed (epochs x images per epoch, all training of the phase). */
  readonly imagesProcessed: number;
  /** Wall-clock seconds of the phase (including evaluation). */
  readonly wallSeconds: number;
  /** Per-epoch records (compress with prefit: the alignment's epochs first). */
  readonly history: readonly EpochRecord[];
  /** Where the data came from, for the report. */
  readonly data: string;
  /** The backend the phase was completed on (e.g. `wasm (SIMD, 2 threads)`). */
  readonly backend: string;
  /** SHA-256 of each dependency's output weights when this phase ran (staleness check). */
  readonly inputs: Readonly<Record<string, string>>;
}

/** A complete phase output as read back. */
export interface PhaseOutput {
  /** The result. */
  readonly result: PhaseResult;
  /** The fingerprint it was made with. */
  readonly fingerprint: unknown;
  /** SHA-256 of its weights file. */
  readonly sha256: string;
  /** Its weights. */
  readonly weights: ReadonlyMap<string, SafetensorsTensor>;
}

/**
 * The JSON of what makes a phase's output what it is: the phase as planned (model spec,
 * objective, sources, hyperparameters), the seed, the data config and, for a baseline loaded
 * from a file, that file's digest. A complete output with another fingerprint belongs to another
 * config.
 *
 * @param phase The planned phase.
 * @param config The run's config.
 * @param givenDigest Baseline loading a checkpoint: the file's SHA-256
 *   ({@linkcode givenCheckpointDigest}).
 * @returns A JSON-serialisable fingerprint.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, PHASE_FORMAT, phaseFingerprint, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const [baseline] = planPhases(DEFAULT_CONFIG);
 * const f = phaseFingerprint(baseline, DEFAULT_CONFIG) as { format: string; phase: { id: string } };
 * assert.deepEqual([f.format, f.phase.id], [PHASE_FORMAT, "baseline"]);
 * ```
 */
export function phaseFingerprint(
  phase: Phase,
  config: PipelineConfig,
  givenDigest?: string,
): unknown {
  return JSON.parse(JSON.stringify({
    format: PHASE_FORMAT,
    phase,
    seed: config.seed,
    data: config.data,
    checkpointSha256: phase.kind === "baseline" ? givenDigest : undefined,
  }));
}

/**
 * SHA-256 (hex) of the checkpoint file a baseline phase loads instead of training, for
 * {@linkcode phaseFingerprint}; undefined for other phases and for a trained baseline.
 *
 * @param phase The phase.
 * @returns The file's digest, or undefined.
 * @throws {Error} If the checkpoint file cannot be read (the message names it).
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, givenCheckpointDigest, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const [baseline] = planPhases(DEFAULT_CONFIG);
 * assert.equal(await givenCheckpointDigest(baseline), undefined);
 * ```
 */
export async function givenCheckpointDigest(phase: Phase): Promise<string | undefined> {
  if (phase.kind !== "baseline" || phase.checkpoint === null) return undefined;
  const path = phase.checkpoint;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(
      `Cannot read baseline.checkpoint ${path}: ${(e as Error).message}; ` +
        "give an existing checkpoint file, or set baseline.checkpoint to null to train the baseline",
    );
  }
  return await sha256Hex(bytes);
}

/** Deterministic JSON (object keys sorted), for digests. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** SHA-256 of weights' names, dtypes, shapes and values (not of any file encoding). */
async function weightsDigest(weights: ReadonlyMap<string, SafetensorsTensor>): Promise<string> {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const name of [...weights.keys()].sort()) {
    const t = weights.get(name)!;
    parts.push(enc.encode(`${name}|${t.dtype}|${t.shape.join(",")}|`));
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return await sha256Hex(all);
}

async function resultDigest(
  result: PhaseResult,
  weights: ReadonlyMap<string, SafetensorsTensor>,
): Promise<string> {
  const bound = canonical({ result, weights: await weightsDigest(weights) });
  return await sha256Hex(new TextEncoder().encode(bound));
}

/**
 * The output checkpoint of a phase, relative to the run folder.
 *
 * @param runDir The run folder.
 * @param phase The phase.
 * @returns `<runDir>/<phase.output>/output/output.json`.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, outputPath, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const meta = planPhases(DEFAULT_CONFIG).find((p) => p.id === "meta")!;
 * assert.equal(outputPath("runs/a", meta), "runs/a/phases/meta/output/output.json");
 * ```
 */
export function outputPath(runDir: string, phase: Pick<Phase, "output">): string {
  return `${runDir}/${phase.output}/output/output.json`;
}

/**
 * Reads a phase's output if it is complete and trustworthy: the sidecar is valid, the weights
 * match their SHA-256, the commit marker is set, and the result matches the digest that binds
 * it to the weights (an edited result is not trusted).
 *
 * @param runDir The run folder.
 * @param phase The phase (its `id` and `output`).
 * @returns The output; undefined if absent, incomplete or edited.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, planPhases, readPhaseOutput } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await readPhaseOutput(dir, planPhases(DEFAULT_CONFIG)[0]), undefined);
 * await Deno.remove(dir);
 * ```
 */
export async function readPhaseOutput(
  runDir: string,
  phase: Pick<Phase, "id" | "output">,
): Promise<PhaseOutput | undefined> {
  const path = outputPath(runDir, phase);
  try {
    await Deno.stat(path);
  } catch {
    return undefined;
  }
  try {
    const ckpt = await readCheckpoint(path);
    const extra = ckpt.sidecar.extra as unknown as PhaseResult & { resultSha256?: string };
    if (extra?.complete !== true || extra.phase !== phase.id) return undefined;
    const { resultSha256, ...result } = extra;
    if (resultSha256 !== await resultDigest(result, ckpt.weights)) return undefined;
    return {
      result,
      fingerprint: ckpt.sidecar.config,
      sha256: ckpt.sidecar.sha256,
      weights: ckpt.weights,
    };
  } catch {
    return undefined;
  }
}

/**
 * Commits a phase's output: its saved variables and a sidecar with the fingerprint and the
 * result, bound to the weights by a digest.
 *
 * @param runDir The run folder.
 * @param phase The phase.
 * @param variables The variables to save (the phase's `saves`).
 * @param fingerprint {@linkcode phaseFingerprint}.
 * @param result The result.
 * @returns Nothing.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, planPhases, readPhaseOutput, writePhaseOutput } from "@mfi/incubation";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const phase = planPhases(DEFAULT_CONFIG)[0];
 * const w = tf.variable(tf.ones([2]));
 * const result = { phase: "baseline", complete: true, testAccuracy: 0.5, history: [] } as never;
 * await writePhaseOutput(dir, phase, [["w", w]], {}, result);
 * assert.equal((await readPhaseOutput(dir, phase))!.result.testAccuracy, 0.5);
 * w.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePhaseOutput(
  runDir: string,
  phase: Phase,
  variables: NamedVariables,
  fingerprint: unknown,
  result: PhaseResult,
): Promise<void> {
  // The digest covers the result as it will read back from JSON, and the saved values.
  const clean = JSON.parse(JSON.stringify(result)) as PhaseResult;
  const resultSha256 = await resultDigest(clean, await variablesToTensors(variables));
  const last = clean.history?.[clean.history.length - 1];
  await saveCheckpoint(`${runDir}/${phase.output}/output`, variables, {
    epoch: clean.history?.length ?? 0,
    step: last?.step ?? 0,
    config: fingerprint,
    extra: { ...clean, resultSha256 } as unknown as Record<string, unknown>,
  }, { name: "output", keep: 0 });
}
