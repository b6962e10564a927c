/**
 * Training objective of a {@linkcode MeanFlowStage} on teacher pairs (X(l-1), X(l)):
 * x1 = z_align = align(X(l-1)) (trained jointly), x0 = X(l); total = MeanFlow loss (if
 * `meanflow`) + lambda * one-step endpoint loss. Both components are always returned, so the
 * ablation (MeanFlow alone: lambda = 0; endpoint alone: meanflow = false; both) reports both.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Rng, trainableVariables } from "@mfi/core";
import { meanFlowLoss } from "./meanflow_loss.ts";
import type { MeanFlowStage } from "./meanflow_stage.ts";
import { detached, stopGradient } from "./stop_gradient.ts";

/** Options of {@linkcode meanFlowStageLoss}. */
export interface StageLossOptions {
  /** Generator of the (r, t) draws (advanced). */
  readonly rng: Rng;
  /** Include the MeanFlow loss in the total (default true). */
  readonly meanflow?: boolean;
  /** Weight of the endpoint loss (default 1; 0 = MeanFlow loss alone). */
  readonly lambda?: number;
  /** Batch-norm mode of the alignment (default true). */
  readonly training?: boolean;
  /** What one loss sample is (default "pixel": one C-vector; "image": one whole map). */
  readonly sample?: "pixel" | "image";
  /** Adaptive-weight power p (default 1). */
  readonly p?: number;
  /** Adaptive-weight constant c (default 1e-3). */
  readonly c?: number;
  /** Logit-normal mean of the (r, t) sampler (default -0.4). */
  readonly mean?: number;
  /** Logit-normal std (default 1.0). */
  readonly std?: number;
  /** Fraction of samples with r != t (default 0.25). */
  readonly distinctFraction?: number;
}

/** The loss of one batch, as tensors. */
export type StageLoss = {
  /** What to differentiate: `[meanflow] + lambda * endpoint`. */
  readonly total: tf.Scalar;
  /** MeanFlow loss (adaptively weighted), averaged over modules. */
  readonly meanflow: tf.Scalar;
  /** Endpoint loss: mean per-sample ||transport(z_align) - X(l)||^2 (one step per module). */
  readonly endpoint: tf.Scalar;
};

/** The loss of one training step, as numbers. */
export interface StageStepResult {
  /** The optimised total. */
  readonly total: number;
  /** MeanFlow component. */
  readonly meanflow: number;
  /** Endpoint component. */
  readonly endpoint: number;
}

const KEYS = new Set([
  "rng",
  "meanflow",
  "lambda",
  "training",
  "sample",
  "p",
  "c",
  "mean",
  "std",
  "distinctFraction",
]);

function checkOptions(options: StageLossOptions): void {
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `meanFlowStageLoss: unknown option "${key}"; expected one of ${[...KEYS].join(", ")}`,
      );
    }
  }
  const lambda = options.lambda ?? 1;
  if (!(lambda >= 0) || !Number.isFinite(lambda)) {
    throw new RangeError(`meanFlowStageLoss: lambda must be a finite number >= 0, got ${lambda}`);
  }
  if ((options.meanflow ?? true) === false && lambda === 0) {
    throw new RangeError(
      "meanFlowStageLoss: meanflow = false with lambda = 0 leaves nothing to train; " +
        "set meanflow = true or lambda > 0",
    );
  }
}

/**
 * The stage's training loss on a batch of teacher pairs. Call inside `tf.variableGrads` (or use
 * {@linkcode trainStageStep}). A component excluded from the total is computed off the
 * gradient tape, for reporting only.
 *
 * @param stage The stage being fitted.
 * @param xPrev Teacher stage input X(l-1), NHWC [B, H, W, inChannels].
 * @param xNext Teacher stage output X(l), NHWC [B, H/stride, W/stride, outChannels].
 * @param options Generator, ablation switches, loss options.
 * @returns Total and both components.
 * @throws {RangeError} If X(l) does not have z_align's shape, or on an invalid option.
 * @example
 * ```ts
 * import { MeanFlowStage, meanFlowStageLoss } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({
 *   inChannels: 4, outChannels: 6, stride: 2, hidden: 8, modules: 1, seed: 0,
 * });
 * const xPrev = tf.randomNormal([2, 4, 4, 4], 0, 1, "float32", 1);
 * const xNext = tf.randomNormal([2, 2, 2, 6], 0, 1, "float32", 2);
 * const l = tf.tidy(() => meanFlowStageLoss(stage, xPrev, xNext, { rng: new Rng(0), lambda: 0.5 }));
 * const [total, mf, ep] = [l.total, l.meanflow, l.endpoint].map((s) => s.dataSync()[0]);
 * assert.ok(Math.abs(total - (mf + 0.5 * ep)) < 1e-4);
 * tf.dispose([xPrev, xNext, l.total, l.meanflow, l.endpoint]);
 * stage.dispose();
 * ```
 */
export function meanFlowStageLoss(
  stage: MeanFlowStage,
  xPrev: tf.Tensor,
  xNext: tf.Tensor,
  options: StageLossOptions,
): StageLoss {
  checkOptions(options);
  const { rng, meanflow: useMeanflow = true, lambda = 1, training = true } = options;
  const { p, c, sample = "pixel", mean, std, distinctFraction } = options;
  const lossOptions = { p, c, sample, mean, std, distinctFraction };
  for (const [k, v] of Object.entries(lossOptions)) {
    if (v === undefined) delete (lossOptions as Record<string, unknown>)[k];
  }
  return tf.tidy(() => {
    const zAlign = stage.align(xPrev, { training }); // x1, [B, H', W', C]
    if (!tf.util.arraysEqual(zAlign.shape, xNext.shape)) {
      throw new RangeError(
        `meanFlowStageLoss: X(l) must have z_align's shape [${zAlign.shape}], got [${xNext.shape}]`,
      );
    }
    // MeanFlow loss of every module on its part of the path, averaged over modules.
    const flowLoss = (): tf.Scalar => {
      const losses: tf.Scalar[] = [];
      let x1 = zAlign as tf.Tensor;
      for (let k = 0; k < stage.flows.length; k++) {
        const interval = stage.moduleInterval(k);
        if (stage.config.moduleSplit === "cascade" && k > 0) {
          x1 = stopGradient(stage.step(k - 1, x1)); // module k refines modules < k
        }
        losses.push(
          meanFlowLoss(stage.flows[k], xNext, x1, { rng, ...lossOptions, interval }).loss,
        );
      }
      return tf.div(tf.addN(losses), losses.length) as tf.Scalar;
    };
    // One-step endpoint loss ||transport(z_align) - X(l)||^2 per sample.
    const endpointLoss = (): tf.Scalar => {
      const diff = tf.square(tf.sub(stage.transport(zAlign), xNext));
      const samples = sample === "image" ? diff.shape[0] : diff.size / diff.shape[diff.rank - 1];
      return tf.mean(tf.sum(tf.reshape(diff, [samples, -1]), 1)) as tf.Scalar;
    };
    const meanflow = useMeanflow ? flowLoss() : detached(flowLoss, [zAlign]);
    const endpoint = lambda > 0 ? endpointLoss() : detached(endpointLoss, [zAlign]);
    const total = useMeanflow
      ? (lambda > 0 ? tf.add(meanflow, tf.mul(lambda, endpoint)) : tf.clone(meanflow))
      : tf.mul(lambda, endpoint);
    return { total: total as tf.Scalar, meanflow, endpoint };
  });
}

/**
 * One optimiser step on a stage: gradients of {@linkcode meanFlowStageLoss}'s total with
 * respect to every trainable variable of the stage (alignment and velocity networks), applied
 * by `optimizer`. Frees every intermediate tensor.
 *
 * @param stage The stage being fitted.
 * @param optimizer Any tfjs optimiser (e.g. `tf.train.adam(1e-3)`).
 * @param batch Teacher pairs `{ xPrev, xNext }` (not disposed).
 * @param options As for {@linkcode meanFlowStageLoss}.
 * @returns The loss values before the update.
 * @throws {RangeError} As {@linkcode meanFlowStageLoss}.
 * @example
 * ```ts
 * import { MeanFlowStage, trainStageStep } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({
 *   inChannels: 4, outChannels: 6, stride: 1, hidden: 8, modules: 1, seed: 0,
 * });
 * const xPrev = tf.randomNormal([2, 3, 3, 4], 0, 1, "float32", 1);
 * const xNext = tf.randomNormal([2, 3, 3, 6], 0, 1, "float32", 2);
 * const opt = tf.train.adam(1e-2);
 * const rng = new Rng(0);
 * const first = trainStageStep(stage, opt, { xPrev, xNext }, { rng });
 * for (let i = 0; i < 20; i++) trainStageStep(stage, opt, { xPrev, xNext }, { rng });
 * const last = trainStageStep(stage, opt, { xPrev, xNext }, { rng, meanflow: false });
 * assert.ok(last.endpoint < first.endpoint);
 * tf.dispose([xPrev, xNext]);
 * opt.dispose();
 * stage.dispose();
 * ```
 */
export function trainStageStep(
  stage: MeanFlowStage,
  optimizer: tf.Optimizer,
  batch: { readonly xPrev: tf.Tensor; readonly xNext: tf.Tensor },
  options: StageLossOptions,
): StageStepResult {
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const loss = meanFlowStageLoss(stage, batch.xPrev, batch.xNext, options);
    parts = [tf.keep(loss.meanflow), tf.keep(loss.endpoint)];
    return loss.total;
  }, trainableVariables(stage.namedVariables()));
  try {
    optimizer.applyGradients(grads);
    return {
      total: value.dataSync()[0],
      meanflow: parts[0].dataSync()[0],
      endpoint: parts[1].dataSync()[0],
    };
  } finally {
    tf.dispose([value, ...Object.values(grads), ...parts]);
  }
}
