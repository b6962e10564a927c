/**
 * Executes one planned {@linkcode Phase}: builds its model from the run's specs, loads its
 * sources from earlier phases' output checkpoints, trains exactly its trainable variables
 * (frozen parts run in inference mode, and the frozen prefix outside the gradient tape), and
 * writes its output checkpoint (the `saves` variables, the phase config, metrics, images
 * processed and wall time). Training is resumable per epoch (`<phase dir>/train/`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  AdamW,
  type Batch,
  cosineSchedule,
  countCorrect,
  deriveSeed,
  type EpochRecord,
  evaluate,
  latestCheckpoint,
  type LossOutput,
  type Module,
  type NamedVariables,
  type Optimizer,
  prefixed,
  type ProgressReporterOptions,
  readCheckpoint,
  restoreVariables,
  type SafetensorsTensor,
  saveCheckpoint,
  Sgd,
  softmaxCrossEntropy,
  trainModel,
} from "@mfi/core";
import { batchCount, batches, type CifarSplit } from "@mfi/data";
import { type MeanFlowStage, meanFlowStageLoss } from "@mfi/flows";
import { importTorchStateDict, loadStateDict, type StagedModel } from "@mfi/resnet";
import { activeBackend, backendLabel, decodeSafetensors, sha256Hex } from "@mfi/core";
import type { PipelineConfig, TrainConfig } from "./config.ts";
import { buildModel, type ModelSpec } from "./model_spec.ts";
import type { PipelineData } from "./pipeline_data.ts";
import type { PipelineSpecs } from "./pipeline_specs.ts";
import { matchesAny, type Phase } from "./plan.ts";
import { meanFlowStage } from "./_flows.ts";
import { tidyBuild } from "./_tidy.ts";

/** What a finished phase reports (stored in its output checkpoint's sidecar `extra`). */
export interface PhaseResult {
  /** Phase id. */
  readonly phase: string;
  /** Always true in a written output (the commit marker of the phase). */
  readonly complete: true;
  /** The spec of the model the phase trained (for compress: the meta model). */
  readonly spec: ModelSpec;
  /** Parameters of the trained model (compress: of the stage). */
  readonly parameters: number;
  /** Trainable parameters of the phase. */
  readonly trainableParameters: number;
  /** Test top-1 accuracy of the phase's model at the end (null for compress). */
  readonly testAccuracy: number | null;
  /** Test accuracy before training (meta, incubate, finetune), else null. */
  readonly initialTestAccuracy: number | null;
  /** Compress only: test fit of the one-step stage, mean squared error per element. */
  readonly fitMse: number | null;
  /** Compress only: fit MSE over the teacher output's variance (0 = perfect). */
  readonly fitRelative: number | null;
  /** Training images processed (epochs x images per epoch). */
  readonly imagesProcessed: number;
  /** Wall-clock seconds of the phase (including evaluation). */
  readonly wallSeconds: number;
  /** Per-epoch records. */
  readonly history: readonly EpochRecord[];
  /** Where the data came from, for the report. */
  readonly data: string;
  /**
   * The backend the phase was completed on (e.g. `wasm (SIMD, 2 threads)`); absent in outputs
   * written before it was recorded.
   */
  readonly backend?: string;
  /** SHA-256 of each dependency's output weights when this phase ran (staleness check). */
  readonly inputs: Readonly<Record<string, string>>;
}

/** Options of {@linkcode runPhase}. */
export interface RunPhaseOptions {
  /** The run folder. */
  readonly runDir: string;
  /** The run's config. */
  readonly config: PipelineConfig;
  /** The run's model specs. */
  readonly specs: PipelineSpecs;
  /** The run's data. */
  readonly data: PipelineData;
  /** Progress display options, or false. */
  readonly progress?: ProgressReporterOptions | false;
  /** Log sink for one-line messages (default console.log). */
  readonly log?: (line: string) => void;
}

/**
 * Folder of a phase inside the run folder (`compress:2` -> `phases/compress-2`).
 *
 * @param runDir The run folder.
 * @param phaseId The phase id.
 * @returns The phase's folder.
 * @example
 * ```ts
 * import { phaseDir } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(phaseDir("runs/a", "incubate:2"), "runs/a/phases/incubate-2");
 * ```
 */
export function phaseDir(runDir: string, phaseId: string): string {
  return `${runDir}/phases/${phaseId.replace(":", "-")}`;
}

/**
 * The JSON of a phase's settings that must not change between a run and its resume.
 *
 * @param phase The phase.
 * @param config The run's config.
 * @param spec The spec of the phase's model.
 * @param givenDigest Baseline phase loading `baseline.checkpoint`: the SHA-256 of that file
 *   (see {@linkcode givenCheckpointDigest}), so that a changed file is not mistaken for the one
 *   a complete phase loaded.
 * @returns A JSON-serialisable fingerprint.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, phaseFingerprint, pipelineSpecs, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const [baseline] = planPhases(DEFAULT_CONFIG);
 * const f = phaseFingerprint(baseline, DEFAULT_CONFIG, pipelineSpecs(DEFAULT_CONFIG).baseline);
 * assert.equal((f as { phase: string }).phase, "baseline");
 * ```
 */
export function phaseFingerprint(
  phase: Phase,
  config: PipelineConfig,
  spec: ModelSpec,
  givenDigest?: string,
): unknown {
  return JSON.parse(JSON.stringify({
    phase: phase.id,
    train: phase.train,
    trainable: phase.trainable,
    sources: phase.sources,
    spec,
    seed: config.seed,
    data: config.data,
    meanflow: phase.kind === "compress" ? config.meanflow : undefined,
    checkpointSha256: phase.kind === "baseline" ? givenDigest : undefined,
  }));
}

/**
 * SHA-256 (hex) of the checkpoint file a phase loads instead of training (the baseline phase
 * with `baseline.checkpoint` set), for {@linkcode phaseFingerprint}; undefined for other phases.
 *
 * @param phase The phase.
 * @param config The run's config.
 * @returns The file's digest, or undefined.
 * @throws {Error} If the checkpoint file cannot be read (the message names it).
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, givenCheckpointDigest, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const [baseline] = planPhases(DEFAULT_CONFIG);
 * assert.equal(await givenCheckpointDigest(baseline, DEFAULT_CONFIG), undefined);
 * ```
 */
export async function givenCheckpointDigest(
  phase: Phase,
  config: PipelineConfig,
): Promise<string | undefined> {
  const path = config.baseline.checkpoint;
  if (phase.kind !== "baseline" || path === null) return undefined;
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

/**
 * Reads a phase's output if it is complete (sidecar valid, weights match their SHA-256, commit
 * marker set).
 *
 * @param runDir The run folder.
 * @param phaseId The phase.
 * @returns The result, the config it was run with and its weights; undefined if absent or incomplete.
 * @example
 * ```ts
 * import { readPhaseOutput } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await readPhaseOutput(dir, "baseline"), undefined);
 * await Deno.remove(dir);
 * ```
 */
export async function readPhaseOutput(
  runDir: string,
  phaseId: string,
): Promise<
  | {
    result: PhaseResult;
    fingerprint: unknown;
    sha256: string;
    weights: ReadonlyMap<string, SafetensorsTensor>;
  }
  | undefined
> {
  const path = `${phaseDir(runDir, phaseId)}/output/output.json`;
  try {
    await Deno.stat(path);
  } catch {
    return undefined;
  }
  try {
    const ckpt = await readCheckpoint(path);
    const result = ckpt.sidecar.extra as unknown as PhaseResult;
    if (result?.complete !== true || result.phase !== phaseId) return undefined;
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

function specFor(phase: Phase, specs: PipelineSpecs): ModelSpec {
  switch (phase.model) {
    case "baseline":
      return specs.baseline;
    case "meta":
      return specs.meta;
    case "hybrid":
      return specs.hybrids[phase.stage!];
    case "mfi":
      return specs.mfi;
  }
}

/**
 * Builds a phase's optimizer (in tidy: state variables survive, their initial values do not).
 *
 * @param train The phase's hyperparameters.
 * @param variables The variables it trains.
 * @returns SGD or AdamW over `variables`.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, makeOptimizer } from "@mfi/incubation";
 * import * as tf from "@tensorflow/tfjs";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]));
 * const opt = makeOptimizer(DEFAULT_CONFIG.compress, [["w", w]]);
 * assert.equal(opt.kind, "adamw");
 * opt.dispose();
 * w.dispose();
 * ```
 */
export function makeOptimizer(train: TrainConfig, variables: NamedVariables): Optimizer {
  return tidyBuild((): Optimizer =>
    train.optimizer === "adamw"
      ? new AdamW(variables, { weightDecay: train.weightDecay })
      : new Sgd(variables, {
        momentum: train.momentum,
        nesterov: train.nesterov && train.momentum > 0,
        weightDecay: train.weightDecay,
      })
  );
}

/** Parts of a staged model in forward order: 0 = stem, 1..n = stages, n + 1 = head. */
function partPrefix(part: number, stages: number): string {
  return part === 0 ? "stem" : part === stages + 1 ? "head" : `stages.${part - 1}`;
}

function applyPart(model: StagedModel, part: number, x: tf.Tensor, training: boolean): tf.Tensor {
  const n = model.stages.length;
  if (part === 0) return model.stem.apply(x, { training });
  if (part === n + 1) return model.head.apply(x, { training });
  return model.stages[part - 1].module.apply(x, { training });
}

/** Which parts have trainable variables under the phase's patterns. */
function trainableParts(model: StagedModel, patterns: readonly string[]): boolean[] {
  const n = model.stages.length;
  return Array.from({ length: n + 2 }, (_, part) => {
    const prefix = partPrefix(part, n);
    return model.namedVariables().some(([name, v]) =>
      v.trainable && name.startsWith(`${prefix}.`) && matchesAny(name, patterns)
    );
  });
}

/** A batch whose images are features entering `part`; `target` is set for stage fits. */
interface FeatureBatch extends Batch {
  readonly target?: tf.Tensor;
}

/** Runs the frozen prefix (parts < from) in inference mode outside any gradient tape. */
function* featureBatches(
  source: Iterable<Batch>,
  run: (images: tf.Tensor) => { x: tf.Tensor; target?: tf.Tensor },
): Generator<FeatureBatch> {
  for (const batch of source) {
    let out: { x: tf.Tensor; target?: tf.Tensor } | undefined;
    try {
      out = tf.tidy(() => {
        const r = run(batch.images);
        return r.target ? { x: r.x, target: r.target } : { x: r.x };
      });
    } finally {
      if (out?.x !== batch.images) batch.images.dispose();
    }
    const target = out.target;
    try {
      yield { images: out.x as tf.Tensor4D, labels: batch.labels, target };
    } finally {
      target?.dispose();
    }
  }
}

async function loadSources(
  model: Module,
  phase: Phase,
  runDir: string,
): Promise<void> {
  const vars = model.namedVariables();
  for (const source of phase.sources) {
    const out = await readPhaseOutput(runDir, source.phase);
    if (out === undefined) {
      throw new Error(
        `Cannot run phase ${phase.id}: the output of ${source.phase} is missing or incomplete; ` +
          `run --phase ${source.phase} first`,
      );
    }
    const wanted = vars.filter(([name]) => matchesAny(name, source.patterns));
    const tensors = new Map([...out.weights].filter(([name]) => matchesAny(name, source.patterns)));
    restoreVariables(
      wanted,
      tensors,
      `the output of ${source.phase} (${source.patterns.join(", ")})`,
    );
  }
}

async function loadGivenBaseline(model: StagedModel, path: string): Promise<string> {
  if (path.endsWith(".json")) {
    const ckpt = await readCheckpoint(path);
    restoreVariables(model.namedVariables(), ckpt.weights, path);
    return `checkpoint ${path}`;
  }
  const bytes = await Deno.readFile(path);
  const file = decodeSafetensors(bytes, path);
  if (file.tensors.has("stem.conv.weight")) {
    loadStateDict(model, file, { source: path });
    return `state dict ${path}`;
  }
  importTorchStateDict(model, file, { source: path });
  return `PyTorch state_dict ${path}`;
}

function backendNow(): string {
  const choice = activeBackend();
  return choice === undefined ? tf.getBackend() : backendLabel(choice);
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

/** Test fit of a stage: mean squared error per element and relative to the target variance. */
async function stageFit(
  stage: MeanFlowStage,
  test: Iterable<FeatureBatch>,
): Promise<{ mse: number; relative: number }> {
  let se = 0;
  let count = 0;
  let sum = 0;
  let sumSq = 0;
  for (const b of test) {
    try {
      const t = tf.tidy(() => {
        const pred = stage.apply(b.images, { training: false });
        const target = b.target!;
        return tf.stack([
          tf.sum(tf.square(tf.sub(pred, target))),
          tf.sum(target),
          tf.sum(tf.square(target)),
        ]);
      });
      const [a, s, s2] = await t.data();
      t.dispose();
      se += a;
      sum += s;
      sumSq += s2;
      count += b.target!.size;
    } finally {
      b.images.dispose();
      b.labels.dispose();
    }
  }
  const mean = sum / count;
  const variance = sumSq / count - mean * mean;
  return { mse: se / count, relative: se / count / Math.max(variance, 1e-12) };
}

/**
 * Runs one phase to completion and writes its output. The caller checks dependencies and skips
 * complete phases; this function resumes an interrupted training of the same phase.
 *
 * @param phase The phase from {@linkcode planPhases}.
 * @param options Run folder, config, specs and data.
 * @returns The phase's result (also stored in its output).
 * @throws {Error} If a source output is missing, or the saved training belongs to another config.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, pipelineSpecs, planPhases, runPhase } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * // A phase whose inputs are missing is refused before anything is built.
 * const dir = await Deno.makeTempDir();
 * const meta = planPhases(DEFAULT_CONFIG).find((p) => p.id === "meta")!;
 * const data = {} as Parameters<typeof runPhase>[1]["data"];
 * await assert.rejects(
 *   runPhase(meta, { runDir: dir, config: DEFAULT_CONFIG, specs: pipelineSpecs(DEFAULT_CONFIG), data }),
 *   /the output of baseline is missing or incomplete; run --phase baseline first/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function runPhase(phase: Phase, options: RunPhaseOptions): Promise<PhaseResult> {
  const { runDir, config, specs, data } = options;
  const log = options.log ?? ((line: string) => console.log(line));
  const t0 = performance.now();
  const dir = phaseDir(runDir, phase.id);
  await Deno.mkdir(dir, { recursive: true });
  const spec = specFor(phase, specs);
  const seed = deriveSeed(config.seed, phase.id);
  const fingerprint = phaseFingerprint(
    phase,
    config,
    spec,
    await givenCheckpointDigest(phase, config),
  );
  const inputs: Record<string, string> = {};
  for (const d of phase.dependsOn) {
    const out = await readPhaseOutput(runDir, d);
    if (out === undefined) {
      throw new Error(
        `Cannot run phase ${phase.id}: the output of ${d} is missing or incomplete; run --phase ${d} first`,
      );
    }
    inputs[d] = out.sha256;
  }
  const trainFingerprint = { ...(fingerprint as Record<string, unknown>), inputs };
  await discardForeignTraining(`${dir}/train`, trainFingerprint, log);
  const train = phase.train;
  const dropLast = data.train.count > train.batchSize;
  const stepsPerEpoch = batchCount(data.train.count, { batchSize: train.batchSize, dropLast });
  const trainBatches = (epoch: number, split: CifarSplit = data.train) =>
    batches(split, {
      batchSize: train.batchSize,
      shuffle: true,
      augment: config.data.augment,
      seed: deriveSeed(seed, "data"),
      epoch,
      dropLast,
    });
  const testBatches = () => batches(data.test, { batchSize: config.data.evalBatchSize });
  const schedule = () =>
    cosineSchedule({
      baseLr: train.lr,
      totalSteps: Math.max(1, train.epochs * stepsPerEpoch),
      warmupSteps: Math.min(
        Math.round(train.warmupEpochs * stepsPerEpoch),
        Math.max(0, train.epochs * stepsPerEpoch - 1),
      ),
    });
  const common = {
    epochs: train.epochs,
    stepsPerEpoch,
    checkpointDir: `${dir}/train`,
    resume: true,
    config: trainFingerprint,
    logFile: `${dir}/log.jsonl`,
    seed,
    progress: options.progress,
  };
  const disposables: Array<{ dispose(): void }> = [];
  const disposeModel = (m: Module) =>
    disposables.push({ dispose: () => tf.dispose(m.namedVariables().map(([, v]) => v)) });
  try {
    let model: StagedModel;
    let savedVars: NamedVariables;
    let history: readonly EpochRecord[] = [];
    let testAccuracy: number | null = null;
    let initialTestAccuracy: number | null = null;
    let fit: { mse: number; relative: number } | null = null;
    let trainableParameters = 0;
    let parameters = 0;
    let imagesProcessed = 0;

    if (phase.kind === "compress") {
      const l = phase.stage!;
      const teacher = buildModel(specs.baseline, { seed: 0 });
      disposeModel(teacher);
      await loadSources(
        teacher,
        { ...phase, sources: [{ phase: "baseline", patterns: ["*"] }] },
        runDir,
      );
      const stageSpec = specs.meta.stages[l - 1];
      if (stageSpec.kind !== "meanflow") throw new Error(`compress:${l}: stage is not MeanFlow`);
      const stage = meanFlowStage(stageSpec.config, deriveSeed(seed, "init"));
      const wrapped: Module = {
        apply: (x, o) => stage.apply(x, o),
        namedVariables: () => prefixed(`stages.${l - 1}`, stage.namedVariables()),
      };
      disposeModel(wrapped);
      const features = (images: tf.Tensor) => {
        let x = teacher.stem.apply(images, { training: false });
        for (let i = 0; i < l - 1; i++) x = teacher.stages[i].module.apply(x, { training: false });
        return { x, target: teacher.stages[l - 1].module.apply(x, { training: false }) };
      };
      const vars = wrapped.namedVariables().filter(([, v]) => v.trainable);
      trainableParameters = vars.reduce((s, [, v]) => s + v.size, 0);
      parameters = trainableParameters;
      if (train.epochs > 0) {
        const optimizer = makeOptimizer(train, vars);
        disposables.push(optimizer);
        const result = await trainModel(wrapped, {
          ...common,
          optimizer,
          schedule: schedule(),
          trainData: (epoch) => featureBatches(trainBatches(epoch), features),
          lossFn: (batch, ctx): LossOutput => {
            const target = (batch as FeatureBatch).target!;
            const loss = meanFlowStageLoss(stage, batch.images, target, {
              rng: ctx.rng,
              lambda: config.meanflow.lambda,
              meanflow: config.meanflow.meanflow,
            });
            return {
              loss: loss.total,
              metrics: { meanflow: loss.meanflow, endpoint: loss.endpoint },
            };
          },
        });
        history = result.history;
      }
      fit = await stageFit(stage, featureBatches(testBatches(), features));
      log(
        `  compress:${l}: test fit MSE ${fit.mse.toPrecision(4)} (${
          (100 * fit.relative).toFixed(1)
        } % of the teacher output's variance)`,
      );
      savedVars = wrapped.namedVariables();
      model = teacher;
    } else {
      model = buildModel(spec, { seed: deriveSeed(seed, "init") });
      disposeModel(model);
      parameters = model.namedVariables().reduce((s, [, v]) => s + (v.trainable ? v.size : 0), 0);
      if (phase.kind === "baseline" && config.baseline.checkpoint !== null) {
        const what = await loadGivenBaseline(model, config.baseline.checkpoint);
        log(`  baseline: loaded ${what}; not training`);
      } else {
        await loadSources(model, phase, runDir);
        if (phase.kind !== "baseline") {
          initialTestAccuracy = (await evaluate(model, testBatches())).accuracy;
          log(
            `  ${phase.id}: test accuracy before training ${
              (100 * initialTestAccuracy).toFixed(2)
            } %`,
          );
        }
        const vars = model.namedVariables().filter(([name, v]) =>
          v.trainable && matchesAny(name, phase.trainable)
        );
        trainableParameters = vars.reduce((s, [, v]) => s + v.size, 0);
        if (train.epochs > 0) {
          const parts = trainableParts(model, phase.trainable);
          const from = parts.indexOf(true);
          if (from < 0) {
            throw new Error(`Phase ${phase.id}: no variable matches ${phase.trainable}`);
          }
          const n = model.stages.length;
          const m = model;
          const optimizer = makeOptimizer(train, vars);
          disposables.push(optimizer);
          const result = await trainModel(model, {
            ...common,
            optimizer,
            schedule: schedule(),
            testData: testBatches,
            trainData: (epoch) =>
              featureBatches(trainBatches(epoch), (images) => {
                let x = images;
                for (let p = 0; p < from; p++) x = applyPart(m, p, x, false);
                return { x };
              }),
            lossFn: (batch): LossOutput => {
              let x: tf.Tensor = batch.images;
              for (let p = from; p <= n + 1; p++) x = applyPart(m, p, x, parts[p]);
              const count = batch.labels.shape[0];
              return {
                loss: softmaxCrossEntropy(x, batch.labels),
                metrics: { accuracy: tf.div(countCorrect(x, batch.labels), count) as tf.Scalar },
              };
            },
          });
          history = result.history;
        }
      }
      testAccuracy = history.length > 0 && history[history.length - 1].testAccuracy !== null
        ? history[history.length - 1].testAccuracy
        : (await evaluate(model, testBatches())).accuracy;
      log(`  ${phase.id}: test accuracy ${(100 * testAccuracy!).toFixed(2)} %`);
      savedVars = model.namedVariables().filter(([name]) => matchesAny(name, phase.saves));
    }
    imagesProcessed = history.reduce((s) => s + stepsPerEpoch * train.batchSize, 0);
    const result: PhaseResult = {
      phase: phase.id,
      complete: true,
      spec,
      parameters,
      trainableParameters,
      testAccuracy,
      initialTestAccuracy,
      fitMse: fit?.mse ?? null,
      fitRelative: fit?.relative ?? null,
      imagesProcessed,
      wallSeconds: (performance.now() - t0) / 1000,
      history,
      data: data.source.description,
      backend: backendNow(),
      inputs,
    };
    await saveCheckpoint(`${dir}/output`, savedVars, {
      epoch: history.length,
      step: history.length > 0 ? history[history.length - 1].step : 0,
      config: fingerprint,
      extra: result as unknown as Record<string, unknown>,
    }, { name: "output", keep: 0 });
    // The output is committed; the resumable training checkpoints are no longer needed.
    await Deno.remove(`${dir}/train`, { recursive: true }).catch(() => {});
    return result;
  } finally {
    for (const d of disposables) d.dispose();
  }
}
