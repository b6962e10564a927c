/**
 * The training loop every phase reuses: epochs over a seeded batch source, a generic loss over an
 * explicit optimizer (so a phase can train one stage only), periodic evaluation, one JSON line per
 * epoch, a progress bar, atomic checkpoints and exact resume.
 *
 * Determinism: given the same seed, a run resumed from an epoch checkpoint reaches the same
 * weights as an uninterrupted one, provided the data source derives all its randomness from
 * `(seed, epoch)` and the loss draws randomness only from `context.rng` (checkpointed) or from
 * seeds derived from `context.step`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Scalar, Tensor } from "./tf_types.ts";
import type { Batch, BatchSource } from "./batch.ts";
import { writeTextFileAtomic } from "./atomic_file.ts";
import { activeBackend, backendLabel } from "./backend.ts";
import {
  latestFiniteCheckpoint,
  listCheckpoints,
  type LoadedCheckpoint,
  restoreVariables,
  saveCheckpoint,
} from "./checkpoint.ts";
import { type EvalResult, evaluate } from "./evaluate.ts";
import { countCorrect, type CrossEntropyOptions, softmaxCrossEntropy } from "./loss.ts";
import type { Module } from "./module.ts";
import type { Optimizer } from "./optimizer.ts";
import { formatDuration, ProgressReporter, type ProgressReporterOptions } from "./progress.ts";
import { deriveSeed, Rng } from "./random.ts";
import type { LrSchedule } from "./schedule.ts";

/** What a loss function knows about the step it is computing. */
export interface StepContext {
  /** 0-based epoch index. */
  readonly epoch: number;
  /** 0-based global optimizer step. */
  readonly step: number;
  /** The loop's generator (its state is checkpointed); use it or `deriveSeed(seed, step)`. */
  readonly rng: Rng;
}

/** A loss with optional per-batch metrics (scalars averaged over the epoch, weighted by batch). */
export interface LossOutput {
  /** The scalar to minimise. */
  readonly loss: Scalar;
  /** Extra per-batch means, e.g. `{ accuracy }` or `{ endpoint }`. */
  readonly metrics?: Readonly<Record<string, Scalar>>;
}

/**
 * A training loss: computes a scalar from a batch. Runs inside the gradient tape; the loop owns
 * the batch and disposes it afterwards. Metrics must be scalars; a metric may be the loss itself.
 * (An exception thrown by the function itself stops the run; tfjs then cannot free the tensors
 * its tape saved, so do not catch and continue in a long-lived process.)
 */
export type LossFn = (batch: Batch, context: StepContext) => Scalar | LossOutput;

/** One line of the training log, written after each epoch. */
export interface EpochRecord {
  /** 1-based number of the epoch just finished. */
  readonly epoch: number;
  /** Optimizer steps completed so far. */
  readonly step: number;
  /** Mean training loss over the epoch. */
  readonly loss: number;
  /** Mean training accuracy over the epoch (the `accuracy` metric), or null. */
  readonly trainAccuracy: number | null;
  /** Top-1 accuracy on the test source, or null when not evaluated this epoch. */
  readonly testAccuracy: number | null;
  /** Mean test cross-entropy, or null. */
  readonly testLoss: number | null;
  /** Learning rate of the epoch's last step. */
  readonly lr: number;
  /** Training throughput. */
  readonly imagesPerSecond: number;
  /** Wall-clock seconds of the epoch (training and evaluation). */
  readonly seconds: number;
  /** Other training metrics (epoch means), by name. */
  readonly metrics: Readonly<Record<string, number>>;
  /** Only on the first epoch after a resume that changed safe config keys: the changes. */
  readonly configChanges?: readonly ConfigChange[];
}

/** What a NaN stop found on disk (see {@linkcode NonFiniteLossError}). */
export interface NonFiniteStopOptions {
  /** What became non-finite: the step's loss (default) or the weights before a checkpoint. */
  readonly kind?: "loss" | "weights";
  /** Newer checkpoints that hold NaN or infinity (so are not named as good). */
  readonly nonFinite?: readonly string[];
  /** True when the run had written (or resumed from) checkpoints at all. */
  readonly hadCheckpoints?: boolean;
}

/**
 * Thrown when the training loss (or, before a checkpoint, a weight) becomes NaN or infinite. The
 * checkpoint it names has been read back and every weight and optimizer value checked finite.
 */
export class NonFiniteLossError extends Error {
  /** 0-based global step whose loss was not finite (for weights: steps completed). */
  readonly step: number;
  /** The value read (NaN for weights). */
  readonly value: number;
  /** The newest checkpoint with finite values, or null if there is none. */
  readonly checkpoint: string | null;
  /** Newer checkpoints holding NaN or infinity. */
  readonly nonFinite: readonly string[];

  /**
   * Builds the error message from the step, epoch, value and the last finite checkpoint.
   *
   * @param step The step.
   * @param epoch The 0-based epoch.
   * @param value The loss read.
   * @param checkpoint The newest checkpoint checked finite, if any.
   * @param options What became non-finite and which newer checkpoints are not finite.
   */
  constructor(
    step: number,
    epoch: number,
    value: number,
    checkpoint: string | null,
    options: NonFiniteStopOptions = {},
  ) {
    const nonFinite = options.nonFinite ?? [];
    const what = options.kind === "weights"
      ? `Model weights hold NaN or infinity after step ${step} (end of epoch ${epoch + 1}); ` +
        `stopped before saving a checkpoint.`
      : `Training loss is ${value} at step ${step} (epoch ${epoch + 1}); stopped.`;
    const bad = nonFinite.length > 0
      ? ` Newer checkpoint(s) ${nonFinite.join(", ")} hold NaN/Inf values: do not use them.`
      : "";
    const advice = checkpoint
      ? ` The last good checkpoint (every value checked finite) is ${checkpoint}; resume from ` +
        `it with a lower learning rate (the learning rate may change on resume).`
      : nonFinite.length > 0 || options.hadCheckpoints
      ? ` No checkpoint with finite values exists; lower the learning rate and restart in a ` +
        `new directory.`
      : " No checkpoint was written yet; lower the learning rate and restart.";
    super(what + bad + advice);
    this.name = "NonFiniteLossError";
    this.step = step;
    this.value = value;
    this.checkpoint = checkpoint;
    this.nonFinite = nonFinite;
  }
}

/** One config key that changed on resume. */
export interface ConfigChange {
  /** The top-level config key. */
  readonly key: string;
  /** Its value in the checkpoint. */
  readonly from: unknown;
  /** Its value now. */
  readonly to: unknown;
}

/** A resume that changed safe keys: when, and what. */
export interface ConfigHistoryEntry {
  /** Completed epochs at the resume. */
  readonly epoch: number;
  /** Completed steps at the resume. */
  readonly step: number;
  /** The checkpoint resumed from. */
  readonly checkpoint: string;
  /** ISO time of the resume. */
  readonly at: string;
  /** The keys that changed. */
  readonly changes: readonly ConfigChange[];
}

/** What {@linkcode TrainOptions.beforeStart} is told. */
export interface TrainStart {
  /** The checkpoint being resumed from, or null for a fresh start. */
  readonly resumedFrom: string | null;
  /** Safe keys that differ from the checkpoint's config (empty for a fresh start). */
  readonly configChanges: readonly ConfigChange[];
  /** Every resume with changes so far, this one included (from the checkpoints). */
  readonly configHistory: readonly ConfigHistoryEntry[];
  /** Newer checkpoints skipped on resume because they hold NaN or infinity. */
  readonly skippedNonFinite: readonly string[];
}

/** Options of {@linkcode trainModel}. */
export interface TrainOptions {
  /** The optimizer, built over exactly the variables this phase trains. */
  readonly optimizer: Optimizer;
  /** Learning rate per 0-based step. */
  readonly schedule: LrSchedule;
  /** Total epochs of the run (a resumed run continues up to this count). */
  readonly epochs: number;
  /** Training batches of a 0-based epoch; derive all shuffling/augmentation from (seed, epoch). */
  readonly trainData: (epoch: number) => BatchSource;
  /** Test batches; without it no evaluation happens. */
  readonly testData?: () => BatchSource;
  /** Evaluate every k epochs (default 1); the last epoch is always evaluated. */
  readonly evalEvery?: number;
  /** The loss (default: {@linkcode classificationLoss} of the model). */
  readonly lossFn?: LossFn;
  /** Seed of the loop's generator passed to the loss (default 0). */
  readonly seed?: number;
  /** Batches per epoch, if known: enables the progress bar's total and ETA. */
  readonly stepsPerEpoch?: number;
  /** Read the loss from the device every k steps (default 10); NaN is still located exactly. */
  readonly readEvery?: number;
  /** Checkpoint directory; without it no checkpoints are written. */
  readonly checkpointDir?: string;
  /** Checkpoint every k epochs (default 1); the last epoch always gets one. */
  readonly checkpointEvery?: number;
  /** Complete checkpoints to keep (default 2). */
  readonly keepCheckpoints?: number;
  /**
   * Continue from the newest complete checkpoint in `checkpointDir` whose values are all finite
   * (fresh start if none).
   */
  readonly resume?: boolean;
  /** The resolved run config (JSON), stored in checkpoints and compared on resume. */
  readonly config?: unknown;
  /**
   * Top-level config keys that may differ on resume (e.g. `["lr"]`): keys that do not change
   * what the saved weights, optimizer state, RNG state and step count mean. Changes are recorded
   * in the first epoch record after the resume (`configChanges`) and in the checkpoints'
   * `extra.configHistory`. Any other difference is refused naming the key.
   */
  readonly safeToChange?: readonly string[];
  /**
   * Called once every check has passed (resume found and compatible, directory usable) and
   * before the loop writes anything: the place to write a run's own files, so that a refused run
   * touches nothing.
   */
  readonly beforeStart?: (start: TrainStart) => void | Promise<void>;
  /** JSONL log path: one {@linkcode EpochRecord} per line. */
  readonly logFile?: string;
  /** Called after each epoch with its record. */
  readonly onEpoch?: (record: EpochRecord) => void | Promise<void>;
  /** Progress display options, or false for none. */
  readonly progress?: ProgressReporterOptions | false;
}

/** Result of {@linkcode trainModel}. */
export interface TrainResult {
  /** One record per finished epoch (including those before a resume). */
  readonly history: readonly EpochRecord[];
  /** Optimizer steps completed. */
  readonly step: number;
  /** Sidecar of the checkpoint the run resumed from, or null. */
  readonly resumedFrom: string | null;
  /** Sidecar of the last checkpoint written or resumed from, or null. */
  readonly lastCheckpoint: string | null;
}

/**
 * The default classification loss: softmax cross-entropy of `model.apply(images, { training:
 * true })` logits, with the batch's top-1 accuracy as the `accuracy` metric.
 *
 * @param model The classifier.
 * @param options Label smoothing.
 * @returns The loss function.
 * @example
 * ```ts
 * import { classificationLoss, Linear, Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const fc = new Linear({ inFeatures: 2, outFeatures: 3, seed: 0, init: "zeros" });
 * const batch = { images: tf.ones([4, 2]) as unknown as tf.Tensor4D, labels: tf.zeros([4], "int32") as tf.Tensor1D };
 * const lossFn = classificationLoss(fc);
 * const loss = tf.tidy(() => {
 *   const out = lossFn(batch, { epoch: 0, step: 0, rng: new Rng(0) });
 *   return out instanceof tf.Tensor ? out : out.loss;
 * });
 * assert.ok(Math.abs((await loss.data())[0] - Math.log(3)) < 1e-6);
 * tf.dispose([loss, batch.images, batch.labels, fc.weight, fc.bias!]);
 * ```
 */
export function classificationLoss(model: Module, options: CrossEntropyOptions = {}): LossFn {
  return (batch: Batch): LossOutput => {
    const logits = model.apply(batch.images, { training: true });
    const n = batch.labels.shape[0];
    return {
      loss: softmaxCrossEntropy(logits, batch.labels, options),
      metrics: { accuracy: tf.div(countCorrect(logits, batch.labels), n) as Scalar },
    };
  };
}

function checkCount(key: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new RangeError(`trainModel: ${key} must be an integer >= ${min}, got ${value}`);
  }
}

function diffConfig(saved: unknown, current: unknown): ConfigChange[] {
  const isObj = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (!isObj(saved) || !isObj(current)) {
    return JSON.stringify(saved) === JSON.stringify(current)
      ? []
      : [{ key: "(config)", from: saved, to: current }];
  }
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  return [...keys].filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(current[k]))
    .map((k) => ({ key: k, from: saved[k], to: current[k] }));
}

function describeChange(c: ConfigChange): string {
  return `${c.key}: saved ${JSON.stringify(c.from)}, now ${JSON.stringify(c.to)}`;
}

/** True when every value of every variable is finite (one device read). */
async function variablesFinite(model: Module): Promise<boolean> {
  const vars = model.namedVariables().map(([, v]) => v).filter((v) => v.dtype === "float32");
  if (vars.length === 0) return true;
  const flags = tf.tidy(() => tf.stack(vars.map((v) => tf.all(tf.isFinite(v)))));
  try {
    return (await flags.data()).every((x) => x === 1);
  } finally {
    flags.dispose();
  }
}

function disposeBatch(batch: Batch): void {
  if (!batch.images.isDisposed) batch.images.dispose();
  if (!batch.labels.isDisposed) batch.labels.dispose();
}

/**
 * Trains a model: for each epoch, one optimizer step per batch of `trainData(epoch)` on
 * `lossFn`, then (every `evalEvery` epochs) {@linkcode evaluate} on `testData()`, a JSON log line,
 * the `onEpoch` callback and (every `checkpointEvery` epochs) an atomic checkpoint. With `resume`,
 * weights, optimizer state, RNG state, step and history come back from the newest complete
 * checkpoint and training continues with the next epoch.
 *
 * @param model The model (all its named variables, buffers included, are checkpointed).
 * @param options Optimizer, schedule, data, loss, evaluation, logging and checkpoint options.
 * @returns The history, step count and checkpoint paths.
 * @throws {NonFiniteLossError} If the loss becomes NaN or infinite (names the step and the newest
 * checkpoint checked finite), or the weights do before a checkpoint (which is then not written).
 * @throws {Error} On invalid options, a resume whose config differs from the checkpoint's in a
 * key outside `safeToChange`, a
 * checkpoint that does not fit the model, or a fresh run into a directory that already holds
 * checkpoints.
 * @example
 * ```ts
 * import { constantSchedule, Linear, Sgd, trainModel } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const fc = new Linear({ inFeatures: 2, outFeatures: 2, seed: 0 });
 * const data = () => [{
 *   images: tf.tensor2d([[1, 0], [0, 1]]) as unknown as tf.Tensor4D,
 *   labels: tf.tensor1d([0, 1], "int32"),
 * }];
 * const sgd = new Sgd(fc.namedVariables(), { momentum: 0.9 });
 * const result = await trainModel(fc, {
 *   optimizer: sgd, schedule: constantSchedule(0.5), epochs: 20,
 *   trainData: data, testData: data, progress: false,
 * });
 * assert.equal(result.history.at(-1)!.testAccuracy, 1);
 * sgd.dispose();
 * tf.dispose([fc.weight, fc.bias!]);
 * ```
 */
export async function trainModel(model: Module, options: TrainOptions): Promise<TrainResult> {
  const { optimizer, schedule, epochs, trainData } = options;
  checkCount("epochs", epochs, 1);
  checkCount("evalEvery", options.evalEvery, 1);
  checkCount("readEvery", options.readEvery, 1);
  checkCount("checkpointEvery", options.checkpointEvery, 1);
  checkCount("stepsPerEpoch", options.stepsPerEpoch, 1);
  if (options.resume && options.checkpointDir === undefined) {
    throw new Error("trainModel: resume needs checkpointDir (where the run's checkpoints are)");
  }
  const evalEvery = options.evalEvery ?? 1;
  const readEvery = options.readEvery ?? 10;
  const checkpointEvery = options.checkpointEvery ?? 1;
  const lossFn = options.lossFn ?? classificationLoss(model);
  const progress = options.progress === false ? null : new ProgressReporter(options.progress);
  const varList = optimizer.variables.map(([, v]) => v);
  const nameOf = new Map(optimizer.variables.map(([n, v]) => [v.name, n]));

  let rng = new Rng(deriveSeed(options.seed ?? 0, "train-loop"));
  let step = 0;
  let startEpoch = 0;
  let history: EpochRecord[] = [];
  let resumedFrom: string | null = null;
  let lastCheckpoint: string | null = null;

  let configChanges: ConfigChange[] = [];
  let configHistory: ConfigHistoryEntry[] = [];
  let skippedNonFinite: string[] = [];
  const safe = new Set(options.safeToChange ?? []);
  if (options.checkpointDir !== undefined) {
    let found: string | undefined;
    let ckpt: LoadedCheckpoint | undefined;
    if (options.resume) {
      const search = await latestFiniteCheckpoint(options.checkpointDir);
      found = search.path;
      ckpt = search.loaded;
      skippedNonFinite = search.nonFinite.map((c) => c.path);
    }
    if (found !== undefined && ckpt !== undefined) {
      if (options.config !== undefined && ckpt.sidecar.config !== null) {
        const diff = diffConfig(ckpt.sidecar.config, options.config);
        const refused = diff.filter((c) => !safe.has(c.key));
        if (refused.length > 0) {
          throw new Error(
            `Cannot resume from ${found}: the config differs (${
              refused.map(describeChange).join("; ")
            }). ` +
              (safe.size > 0 ? `Only ${[...safe].join(", ")} may change on resume. ` : "") +
              `Resume with the same config, or start a new run in another directory.`,
          );
        }
        configChanges = diff;
      }
      const savedHistory = ckpt.sidecar.extra?.configHistory;
      configHistory = Array.isArray(savedHistory) ? [...savedHistory as ConfigHistoryEntry[]] : [];
      if (configChanges.length > 0) {
        configHistory.push({
          epoch: ckpt.sidecar.epoch,
          step: ckpt.sidecar.step,
          checkpoint: found,
          at: new Date().toISOString(),
          changes: configChanges,
        });
      }
      restoreVariables(model.namedVariables(), ckpt.weights, found);
      if (ckpt.optimizer === undefined) {
        throw new Error(`Cannot resume from ${found}: it holds no optimizer state`);
      }
      optimizer.setState(ckpt.optimizer);
      if (ckpt.sidecar.rng) rng = Rng.fromState(ckpt.sidecar.rng);
      step = ckpt.sidecar.step;
      startEpoch = ckpt.sidecar.epoch;
      history = [...ckpt.sidecar.history as EpochRecord[]];
      resumedFrom = found;
      lastCheckpoint = found;
    } else if ((await listCheckpoints(options.checkpointDir)).length > 0) {
      throw new Error(
        options.resume
          ? `Cannot resume from ${options.checkpointDir}: every checkpoint there holds NaN or ` +
            `infinite values (${skippedNonFinite.join(", ")}). Lower the learning rate and ` +
            `start a new run in another directory.`
          : `Checkpoint directory ${options.checkpointDir} already holds checkpoints: pass ` +
            `resume to continue that run, or choose a new directory`,
      );
    }
  }
  await options.beforeStart?.({
    resumedFrom,
    configChanges,
    configHistory,
    skippedNonFinite,
  });
  if (options.logFile !== undefined) {
    const lines = history.map((r) => JSON.stringify(r) + "\n").join("");
    await writeTextFileAtomic(options.logFile, lines);
  }
  const stopNonFinite = async (
    at: number,
    epoch: number,
    value: number,
    kind: "loss" | "weights",
  ): Promise<NonFiniteLossError> => {
    if (options.checkpointDir === undefined) {
      return new NonFiniteLossError(at, epoch, value, null, { kind });
    }
    const search = await latestFiniteCheckpoint(options.checkpointDir);
    return new NonFiniteLossError(at, epoch, value, search.path ?? null, {
      kind,
      nonFinite: search.nonFinite.map((c) => c.path),
      hadCheckpoints: lastCheckpoint !== null,
    });
  };

  for (let epoch = startEpoch; epoch < epochs; epoch++) {
    const t0 = performance.now();
    progress?.reset();
    const label = `epoch ${epoch + 1}/${epochs}`;
    let lossSum: Tensor = tf.scalar(0);
    let metricSums = new Map<string, Tensor>();
    let pending: Array<{ step: number; value: Tensor }> = [];
    let images = 0;
    let batches = 0;
    let lr = schedule(step);
    let running: { loss: number; accuracy?: number; metrics: Record<string, number> } = {
      loss: NaN,
      metrics: {},
    };

    // Reads the running sums and the pending per-step losses in one transfer; throws on NaN/Inf.
    const flush = async (): Promise<void> => {
      const names = [...metricSums.keys()];
      const stacked = tf.tidy(() =>
        tf.stack([lossSum, ...names.map((k) => metricSums.get(k)!), ...pending.map((p) => p.value)])
      );
      const values = await stacked.data();
      stacked.dispose();
      const offset = 1 + names.length;
      for (let i = 0; i < pending.length; i++) {
        if (!Number.isFinite(values[offset + i])) {
          throw await stopNonFinite(pending[i].step, epoch, values[offset + i], "loss");
        }
      }
      tf.dispose(pending.map((p) => p.value));
      pending = [];
      const metrics: Record<string, number> = {};
      names.forEach((k, i) => (metrics[k] = values[1 + i] / Math.max(images, 1)));
      running = { loss: values[0] / Math.max(images, 1), accuracy: metrics.accuracy, metrics };
      progress?.update({
        label,
        done: batches,
        total: options.stepsPerEpoch,
        loss: running.loss,
        accuracy: running.accuracy,
        imagesPerSecond: images / ((performance.now() - t0) / 1000),
        seconds: (performance.now() - t0) / 1000,
      });
    };

    try {
      for await (const batch of trainData(epoch)) {
        try {
          lr = schedule(step);
          const n = batch.labels.shape[0];
          const context: StepContext = { epoch, step, rng };
          let kept: Record<string, Scalar> = {};
          let value: Scalar | undefined;
          let invalid: string | undefined;
          try {
            const result = tf.variableGrads(() => {
              const out = lossFn(batch, context);
              if (out instanceof tf.Tensor) return out;
              kept = {};
              for (const [k, m] of Object.entries(out.metrics ?? {})) {
                // Throwing inside the tape would leak its saved tensors: report after it closes.
                if (!(m instanceof tf.Tensor) || m.rank !== 0) {
                  invalid ??= `trainModel: metric "${k}" of the loss function must be a scalar ` +
                    `tensor (a per-batch mean), got ${
                      m instanceof tf.Tensor ? `shape [${m.shape}]` : String(m)
                    }`;
                  continue;
                }
                kept[k] = tf.keep(m === out.loss ? m.clone() : m);
              }
              return out.loss;
            }, varList);
            value = result.value;
            if (invalid !== undefined) {
              tf.dispose(Object.values(result.grads));
              throw new Error(invalid);
            }
            const named = new Map<string, Tensor>();
            for (const [tfName, g] of Object.entries(result.grads)) {
              const name = nameOf.get(tfName);
              if (name !== undefined) named.set(name, g);
            }
            try {
              optimizer.applyGradients(named, lr);
            } finally {
              tf.dispose(Object.values(result.grads));
            }
            const next = tf.tidy(() => {
              const sums: Record<string, Tensor> = {};
              for (const [k, m] of Object.entries(kept)) {
                const prev = metricSums.get(k);
                const add = tf.mul(m, n);
                sums[k] = prev ? tf.add(prev, add) : add;
              }
              for (const [k, prev] of metricSums) if (!(k in sums)) sums[k] = tf.clone(prev);
              return { loss: tf.add(lossSum, tf.mul(value!, n)), sums };
            });
            tf.dispose([lossSum, ...metricSums.values()]);
            lossSum = next.loss;
            metricSums = new Map(Object.entries(next.sums));
          } catch (e) {
            if (value !== undefined) value.dispose();
            throw e;
          } finally {
            tf.dispose(Object.values(kept));
          }
          pending.push({ step, value });
          step++;
          batches++;
          images += n;
        } finally {
          disposeBatch(batch);
        }
        if (pending.length >= readEvery) await flush();
      }
      if (batches === 0) {
        throw new Error(`trainModel: the training source of epoch ${epoch} yielded no batches`);
      }
      await flush();
    } finally {
      tf.dispose([lossSum, ...metricSums.values(), ...pending.map((p) => p.value)]);
    }
    const trainSeconds = (performance.now() - t0) / 1000;

    let test: EvalResult | null = null;
    if (options.testData && ((epoch + 1) % evalEvery === 0 || epoch === epochs - 1)) {
      test = await evaluate(model, options.testData());
    }
    const { accuracy: _accuracy, ...otherMetrics } = running.metrics;
    const record: EpochRecord = {
      epoch: epoch + 1,
      step,
      loss: running.loss,
      trainAccuracy: running.accuracy ?? null,
      testAccuracy: test?.accuracy ?? null,
      testLoss: test?.loss ?? null,
      lr,
      imagesPerSecond: images / trainSeconds,
      seconds: (performance.now() - t0) / 1000,
      metrics: otherMetrics,
      ...(epoch === startEpoch && configChanges.length > 0 ? { configChanges } : {}),
    };
    history.push(record);
    if (options.logFile !== undefined) {
      await Deno.writeTextFile(options.logFile, JSON.stringify(record) + "\n", { append: true });
    }
    progress?.line(formatRecord(record, epochs));
    await options.onEpoch?.(record);
    if (
      options.checkpointDir !== undefined &&
      ((epoch + 1) % checkpointEvery === 0 || epoch === epochs - 1)
    ) {
      // A step's loss is read before its update: the last update may still have produced NaN.
      if (!(await variablesFinite(model))) throw await stopNonFinite(step, epoch, NaN, "weights");
      // The backend that computed the latest epochs (when selectBackend chose it), so that a
      // bundle exported from this checkpoint can say what produced its weights.
      const choice = activeBackend();
      const extra = {
        ...(choice !== undefined ? { backend: backendLabel(choice) } : {}),
        ...(configHistory.length > 0 ? { configHistory } : {}),
      };
      lastCheckpoint = await saveCheckpoint(options.checkpointDir, model.namedVariables(), {
        epoch: epoch + 1,
        step,
        config: options.config,
        optimizer: await optimizer.getState(),
        rng: rng.state(),
        history,
        ...(Object.keys(extra).length > 0 ? { extra } : {}),
      }, { keep: options.keepCheckpoints });
    }
  }
  return { history, step, resumedFrom, lastCheckpoint };
}

function formatRecord(r: EpochRecord, epochs: number): string {
  const pct = (x: number | null): string => (x === null ? "-" : `${(100 * x).toFixed(2)}%`);
  return [
    `epoch ${r.epoch}/${epochs}`,
    `step ${r.step}`,
    `loss ${r.loss.toFixed(4)}`,
    `train ${pct(r.trainAccuracy)}`,
    `test ${pct(r.testAccuracy)}`,
    `lr ${r.lr.toPrecision(3)}`,
    `${r.imagesPerSecond.toFixed(1)} img/s`,
    `${r.seconds.toFixed(1)} s`,
    ...(r.epoch < epochs ? [`(run ETA ${formatDuration(r.seconds * (epochs - r.epoch))})`] : []),
  ].join(" ");
}
