/**
 * What every phase kind shares: the phase's context (seeds, batches, schedule, training options,
 * things to dispose), loading sources, the optimizer factory, the frozen-prefix split of a
 * staged model, and evaluation that keeps per-image correctness.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  activeBackend,
  AdamW,
  backendLabel,
  type Batch,
  cosineSchedule,
  countCorrect,
  decodeSafetensors,
  deriveSeed,
  type LrSchedule,
  type Module,
  type NamedVariables,
  type Optimizer,
  type ProgressReporterOptions,
  readCheckpoint,
  restoreVariables,
  Sgd,
  softmaxCrossEntropy,
  type TrainOptions,
} from "@mfi/core";
import { batchCount, batches } from "@mfi/data";
import { importTorchStateDict, loadStateDict, type StagedModel } from "@mfi/resnet";
import type { PipelineConfig, TrainConfig } from "./config.ts";
import { PhaseNotReadyError } from "./errors.ts";
import { buildModel } from "./model_spec.ts";
import type { PipelineData } from "./pipeline_data.ts";
import { matchesAny, type Phase } from "./plan.ts";
import { readPhaseOutput } from "./phase_output.ts";
import { packCorrect } from "./statistics.ts";
import { tidyBuild } from "./_tidy.ts";

/** Everything a phase function needs. */
export interface PhaseContext {
  /** The run folder. */
  readonly runDir: string;
  /** The run's config. */
  readonly config: PipelineConfig;
  /** The plan (to find a source's output folder). */
  readonly plan: readonly Phase[];
  /** The run's data. */
  readonly data: PipelineData;
  /** The phase's own folder. */
  readonly dir: string;
  /** The phase's base seed. */
  readonly seed: number;
  /** Optimizer steps per training epoch. */
  readonly stepsPerEpoch: number;
  /** Training batches of a 0-based epoch (augmented, shuffled by the phase's data seed). */
  readonly trainBatches: (epoch: number) => Iterable<Batch>;
  /** The test split, in order. */
  readonly testBatches: () => Iterable<Batch>;
  /** The cosine schedule of `train` over `epochs` epochs. */
  readonly schedule: (train: TrainConfig) => LrSchedule;
  /** Options every `trainModel` call of the phase shares (checkpoints in `<dir>/<sub>`). */
  readonly common: (
    sub: string,
    epochs: number,
  ) => Omit<TrainOptions, "optimizer" | "schedule" | "trainData">;
  /** One-line log. */
  readonly log: (line: string) => void;
  /** Registers something to dispose when the phase ends. */
  readonly keep: <T extends { dispose(): void }>(x: T) => T;
  /** Registers a model whose variables are disposed when the phase ends. */
  readonly keepModel: <T extends Module>(m: T) => T;
}

/** Inputs of {@linkcode phaseContext}. */
export interface PhaseContextInputs {
  readonly runDir: string;
  readonly config: PipelineConfig;
  readonly plan: readonly Phase[];
  readonly data: PipelineData;
  readonly phase: Phase;
  /** Seed name: the phase id, or for ablation fits the run's own fit of that stage. */
  readonly seedName: string;
  readonly trainFingerprint: unknown;
  readonly progress?: ProgressReporterOptions | false;
  readonly log: (line: string) => void;
  readonly disposables: Array<{ dispose(): void }>;
}

/** Builds the context of one phase. */
export function phaseContext(inputs: PhaseContextInputs): PhaseContext {
  const { runDir, config, data, phase } = inputs;
  const seed = deriveSeed(config.seed, inputs.seedName);
  const train = phase.train;
  const dropLast = data.train.count > train.batchSize;
  const stepsPerEpoch = batchCount(data.train.count, { batchSize: train.batchSize, dropLast });
  const dir = `${runDir}/${phase.output}`;
  return {
    runDir,
    config,
    plan: inputs.plan,
    data,
    dir,
    seed,
    stepsPerEpoch,
    trainBatches: (epoch: number) =>
      batches(data.train, {
        batchSize: train.batchSize,
        shuffle: true,
        augment: config.data.augment,
        seed: deriveSeed(seed, "data"),
        epoch,
        dropLast,
      }),
    testBatches: () => batches(data.test, { batchSize: config.data.evalBatchSize }),
    schedule: (t: TrainConfig) =>
      cosineSchedule({
        baseLr: t.lr,
        totalSteps: Math.max(1, t.epochs * stepsPerEpoch),
        warmupSteps: Math.min(
          Math.round(t.warmupEpochs * stepsPerEpoch),
          Math.max(0, t.epochs * stepsPerEpoch - 1),
        ),
      }),
    common: (sub: string, epochs: number) => ({
      epochs,
      stepsPerEpoch,
      checkpointDir: `${dir}/${sub}`,
      resume: true,
      config: inputs.trainFingerprint,
      logFile: `${dir}/log.jsonl`,
      seed,
      progress: inputs.progress,
    }),
    log: inputs.log,
    keep: (x) => {
      inputs.disposables.push(x);
      return x;
    },
    keepModel: (m) => {
      inputs.disposables.push({ dispose: () => tf.dispose(m.namedVariables().map(([, v]) => v)) });
      return m;
    },
  };
}

/**
 * Builds a phase's optimizer (in tidy: state variables survive, their initial values do not).
 *
 * @param train The phase's hyperparameters.
 * @param variables The variables it trains.
 * @returns SGD or AdamW over `variables`.
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

/** The plan's phase with this id (a source or dependency). */
function planned(ctx: PhaseContext, id: string): Phase {
  const p = ctx.plan.find((q) => q.id === id);
  if (p === undefined) throw new Error(`The plan has no phase ${id}`);
  return p;
}

/**
 * Loads a phase's sources (the variables it takes from earlier phases' outputs) into `model`.
 *
 * @throws {PhaseNotReadyError} If a source's output is missing or incomplete.
 */
export async function loadSources(ctx: PhaseContext, model: Module, phase: Phase): Promise<void> {
  const vars = model.namedVariables();
  for (const source of phase.sources) {
    const out = await readPhaseOutput(ctx.runDir, planned(ctx, source.phase));
    if (out === undefined) throw new PhaseNotReadyError(phase.id, [source.phase], ctx.runDir);
    const wanted = vars.filter(([name]) => matchesAny(name, source.patterns));
    const tensors = new Map([...out.weights].filter(([name]) => matchesAny(name, source.patterns)));
    restoreVariables(
      wanted,
      tensors,
      `the output of ${source.phase} (${source.patterns.join(", ")})`,
    );
  }
}

/**
 * The frozen teacher of a compress phase: the teacher phase's model with its output's weights.
 *
 * @throws {PhaseNotReadyError} If the teacher's output is missing.
 */
export async function loadTeacher(
  ctx: PhaseContext,
  phase: Phase & { readonly teacher: string },
): Promise<StagedModel> {
  const source = planned(ctx, phase.teacher);
  const teacher = ctx.keepModel(buildModel(source.spec, { seed: 0 }));
  await loadSources(ctx, teacher, { ...phase, sources: [{ phase: source.id, patterns: ["*"] }] });
  return teacher;
}

/**
 * Loads a given baseline checkpoint (ours, our own state dict, or a PyTorch state_dict).
 *
 * @returns What was loaded, for the log.
 */
export async function loadGivenBaseline(model: StagedModel, path: string): Promise<string> {
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

/** The backend running now, for the result. */
export function backendNow(): string {
  const choice = activeBackend();
  return choice === undefined ? tf.getBackend() : backendLabel(choice);
}

/**
 * A staged model cut where training starts: parts are 0 = stem, 1..n = stages, n + 1 = head.
 * `prefix` runs the frozen parts before the first trainable one (inference mode, off the tape);
 * `rest` runs the others, each in training mode iff it has trainable variables.
 */
export interface FrozenPrefixSplit {
  /** First part with a trainable variable. */
  readonly from: number;
  /** Images -> the input of part `from`. */
  readonly prefix: (images: tf.Tensor) => tf.Tensor;
  /** The input of part `from` -> logits. */
  readonly rest: (x: tf.Tensor) => tf.Tensor;
}

/**
 * Splits a staged model at its first part with a variable matching `trainable`, using the
 * model's own seams (`stem`, `runStages`, `stages`, `head`).
 *
 * @throws {Error} If no variable matches.
 */
export function frozenPrefix(model: StagedModel, trainable: readonly string[]): FrozenPrefixSplit {
  const n = model.stages.length;
  const prefixOf = (part: number) =>
    part === 0 ? "stem" : part === n + 1 ? "head" : `stages.${part - 1}`;
  const trains = Array.from(
    { length: n + 2 },
    (_, part) =>
      model.namedVariables().some(([name, v]) =>
        v.trainable && name.startsWith(`${prefixOf(part)}.`) && matchesAny(name, trainable)
      ),
  );
  const from = trains.indexOf(true);
  if (from < 0) throw new Error(`No variable matches ${trainable.join(", ")}`);
  const inference = { training: false };
  return {
    from,
    prefix: (images) => {
      if (from === 0) return images;
      const x = model.stem.apply(images, inference);
      return model.runStages(x, 0, Math.min(from - 1, n), inference);
    },
    rest: (input) => {
      let x = input;
      if (from === 0) x = model.stem.apply(x, { training: trains[0] });
      for (let i = Math.max(from, 1) - 1; i < n; i++) {
        x = model.stages[i].module.apply(x, { training: trains[i + 1] });
      }
      return model.head.apply(x, { training: trains[n + 1] });
    },
  };
}

/** A batch whose images are features entering a later part; `target` is set for stage fits. */
export interface FeatureBatch extends Batch {
  /** Teacher output of the fitted stage (compress). */
  readonly target?: tf.Tensor;
}

/** Maps batches through a frozen function outside any gradient tape. */
export function* featureBatches(
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

/** Cross-entropy and batch accuracy of logits, for `trainModel`'s loss. */
export function classifierLoss(logits: tf.Tensor, labels: tf.Tensor) {
  return {
    loss: softmaxCrossEntropy(logits, labels),
    metrics: {
      accuracy: tf.div(countCorrect(logits, labels), labels.shape[0]) as tf.Scalar,
    },
  };
}

/** Test accuracy with per-image correctness. */
export interface Evaluation {
  /** Top-1 accuracy in [0, 1]. */
  readonly accuracy: number;
  /** Images evaluated. */
  readonly count: number;
  /** Per image, right or wrong, packed (see `packCorrect`). */
  readonly correct: string;
}

/**
 * Evaluates a model on the test split in order, keeping which images it got right.
 *
 * @throws {Error} If the test split is empty.
 */
export async function evaluateCorrect(
  model: Module,
  source: Iterable<Batch>,
): Promise<Evaluation> {
  const hits: number[] = [];
  for (const batch of source) {
    try {
      const right = tf.tidy(() =>
        tf.cast(
          tf.equal(tf.argMax(model.apply(batch.images, { training: false }), -1), batch.labels),
          "int32",
        )
      );
      const values = await right.data();
      right.dispose();
      for (const v of values) hits.push(v);
    } finally {
      batch.images.dispose();
      batch.labels.dispose();
    }
  }
  if (hits.length === 0) throw new Error("Cannot evaluate: the test split is empty");
  return {
    accuracy: hits.reduce((s, v) => s + v, 0) / hits.length,
    count: hits.length,
    correct: packCorrect(hits),
  };
}
