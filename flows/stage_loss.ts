/**
 * Training objective of a {@linkcode MeanFlowStage} on teacher pairs (X(l-1), X(l)):
 * x1 = z_align = align(X(l-1)) (trained jointly), x0 = X(l); total = MeanFlow loss (if
 * `meanflow`) + lambda * one-step endpoint loss. Both components are always returned, so the
 * ablation (MeanFlow alone: lambda = 0; endpoint alone: meanflow = false; both) reports both.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Scalar, Tensor, TfjsOptimizer, Variable } from "@mfi/core";
import { Rng, trainableVariables } from "@mfi/core";
import { meanFlowLoss } from "./meanflow_loss.ts";
import type { MeanFlowStage } from "./meanflow_stage.ts";
import { detached, stopGradient } from "./stop_gradient.ts";
import type { TimeSamplerOptions } from "./time_sampler.ts";

/**
 * How the endpoint term measures the one-step error: `"none"` = mean per-sample squared norm
 * `||transport(z_align) - X(l)||^2` (scales with the feature variance and the channel count);
 * `"variance"` = mean squared error per element divided by the teacher output's per-channel
 * variance over the batch (1 = no better than predicting each channel's mean), so that it sits on
 * the same footing as the nearly scale-free adaptively weighted MeanFlow term.
 */
export type EndpointNorm = "none" | "variance";

/** Options of {@linkcode meanFlowStageLoss}. */
export interface StageLossOptions {
  /** Generator of the (r, t) draws (advanced). */
  readonly rng: Rng;
  /** Include the MeanFlow loss in the total (default true). */
  readonly meanflow?: boolean;
  /** Weight of the endpoint loss (default 1; 0 = MeanFlow loss alone). */
  readonly lambda?: number;
  /** Batch-norm mode of the alignment (default true; false for a frozen alignment). */
  readonly training?: boolean;
  /** What one loss sample is (default "pixel": one C-vector; "image": one whole map). */
  readonly sample?: "pixel" | "image";
  /** Adaptive-weight power p (default 1). */
  readonly p?: number;
  /** Adaptive-weight constant c (default 1e-3). */
  readonly c?: number;
  /** The (r, t) sampler, e.g. `SAMPLER_PRESETS.v1` (default: the ImageNet setting). */
  readonly sampler?: Omit<TimeSamplerOptions, "interval">;
  /** How the endpoint term is measured (default `"none"`). */
  readonly endpointNorm?: EndpointNorm;
}

/** The loss of one batch, as tensors. */
export type StageLoss = {
  /** What to differentiate: `[meanflow] + lambda * endpoint`. */
  readonly total: Scalar;
  /** MeanFlow loss (adaptively weighted), averaged over modules. */
  readonly meanflow: Scalar;
  /** Endpoint loss: mean per-sample ||transport(z_align) - X(l)||^2 (one step per module). */
  readonly endpoint: Scalar;
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
  "sampler",
  "endpointNorm",
]);

function checkOptions(options: StageLossOptions): void {
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `meanFlowStageLoss: unknown option "${key}"; expected one of ${[...KEYS].join(", ")}`,
      );
    }
  }
  const norm = options.endpointNorm ?? "none";
  if (norm !== "none" && norm !== "variance") {
    throw new RangeError(
      `meanFlowStageLoss: endpointNorm must be "none" or "variance", got ${JSON.stringify(norm)}`,
    );
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
 * import * as tf from "@tensorflow/tfjs-core";
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
  xPrev: Tensor,
  xNext: Tensor,
  options: StageLossOptions,
): StageLoss {
  checkOptions(options);
  const { rng, meanflow: useMeanflow = true, lambda = 1, training = true } = options;
  const { p, c, sample = "pixel", sampler = {}, endpointNorm = "none" } = options;
  const lossOptions = { p, c, sample, ...sampler };
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
    const flowLoss = (): Scalar => {
      const losses: Scalar[] = [];
      let x1 = zAlign as Tensor;
      for (let k = 0; k < stage.flows.length; k++) {
        const interval = stage.moduleInterval(k);
        if (stage.config.moduleSplit === "cascade" && k > 0) {
          x1 = stopGradient(stage.step(k - 1, x1)); // module k refines modules < k
        }
        losses.push(
          meanFlowLoss(stage.flows[k], xNext, x1, { rng, ...lossOptions, interval }).loss,
        );
      }
      return tf.div(tf.addN(losses), losses.length) as Scalar;
    };
    // One-step endpoint loss: ||transport(z_align) - X(l)||^2 per sample, or per element over
    // the teacher output's per-channel variance.
    const endpointLoss = (): Scalar =>
      endpointError(stage.transport(zAlign), xNext, { sample, endpointNorm });
    const meanflow = useMeanflow ? flowLoss() : detached(flowLoss, [zAlign]);
    const endpoint = lambda > 0 ? endpointLoss() : detached(endpointLoss, [zAlign]);
    const total = useMeanflow
      ? (lambda > 0 ? tf.add(meanflow, tf.mul(lambda, endpoint)) : tf.clone(meanflow))
      : tf.mul(lambda, endpoint);
    return { total: total as Scalar, meanflow, endpoint };
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
 * @returns The loss values before the update (read with `await t.data()`).
 * @throws {RangeError} As {@linkcode meanFlowStageLoss} (as a rejection).
 * @example
 * ```ts
 * import { MeanFlowStage, trainStageStep } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({
 *   inChannels: 4, outChannels: 6, stride: 1, hidden: 8, modules: 1, seed: 0,
 * });
 * const xPrev = tf.randomNormal([2, 3, 3, 4], 0, 1, "float32", 1);
 * const xNext = tf.randomNormal([2, 3, 3, 6], 0, 1, "float32", 2);
 * const opt = tf.train.adam(1e-2);
 * const rng = new Rng(0);
 * const first = await trainStageStep(stage, opt, { xPrev, xNext }, { rng });
 * for (let i = 0; i < 20; i++) await trainStageStep(stage, opt, { xPrev, xNext }, { rng });
 * const last = await trainStageStep(stage, opt, { xPrev, xNext }, { rng, meanflow: false });
 * assert.ok(last.endpoint < first.endpoint);
 * tf.dispose([xPrev, xNext]);
 * opt.dispose();
 * stage.dispose();
 * ```
 */
export async function trainStageStep(
  stage: MeanFlowStage,
  optimizer: TfjsOptimizer,
  batch: { readonly xPrev: Tensor; readonly xNext: Tensor },
  options: StageLossOptions,
): Promise<StageStepResult> {
  let parts: Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const loss = meanFlowStageLoss(stage, batch.xPrev, batch.xNext, options);
    parts = [tf.keep(loss.meanflow), tf.keep(loss.endpoint)];
    return loss.total;
  }, trainableVariables(stage.namedVariables()));
  try {
    optimizer.applyGradients(grads);
    // Awaited reads: a synchronous read stalls (or fails) on WebGPU.
    const [total, meanflow, endpoint] = await Promise.all([value, ...parts].map((t) => t.data()));
    return { total: total[0], meanflow: meanflow[0], endpoint: endpoint[0] };
  } finally {
    tf.dispose([value, ...Object.values(grads), ...parts]);
  }
}

/**
 * The one-step error of a prediction against the teacher output X(l), as the endpoint term
 * measures it (see {@linkcode EndpointNorm}).
 *
 * @param prediction The stage's estimate of X(l), NHWC.
 * @param target X(l), same shape.
 * @param options What one sample is, and the normalisation.
 * @returns A scalar (differentiable in `prediction`).
 * @throws {RangeError} On mismatched shapes.
 * @example
 * ```ts
 * import { endpointError } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const target = tf.randomNormal([4, 2, 2, 3], 0, 5, "float32", 1);
 * // Predicting each channel's batch mean scores 1 under the variance normalisation.
 * const mean = tf.mean(target, [0, 1, 2]);
 * const e = tf.tidy(() => endpointError(tf.add(tf.zerosLike(target), mean), target, {
 *   endpointNorm: "variance",
 * }));
 * assert.ok(Math.abs(e.dataSync()[0] - 1) < 1e-3);
 * tf.dispose([target, mean, e]);
 * ```
 */
export function endpointError(
  prediction: Tensor,
  target: Tensor,
  options: { readonly sample?: "pixel" | "image"; readonly endpointNorm?: EndpointNorm } = {},
): Scalar {
  if (!tf.util.arraysEqual(prediction.shape, target.shape)) {
    throw new RangeError(
      `endpointError: prediction [${prediction.shape}] and target [${target.shape}] differ`,
    );
  }
  return tf.tidy(() => {
    const diff = tf.square(tf.sub(prediction, target));
    if ((options.endpointNorm ?? "none") === "variance") {
      const axes = Array.from({ length: target.rank - 1 }, (_, i) => i);
      const variance = stopGradient(tf.moments(target, axes).variance); // [C]
      return tf.mean(tf.div(diff, tf.add(variance, 1e-6))) as Scalar;
    }
    const samples = options.sample === "image"
      ? diff.shape[0]
      : diff.size / diff.shape[diff.rank - 1];
    return tf.mean(tf.sum(tf.reshape(diff, [samples, -1]), 1)) as Scalar;
  });
}

/**
 * The loss of the alignment alone, `error(z_align, X(l))` (what `align.mode: prefit` minimises
 * before the velocity networks are fitted with the alignment frozen). Call inside
 * `tf.variableGrads` over the alignment's variables.
 *
 * @param stage The stage whose alignment is fitted.
 * @param xPrev Teacher stage input X(l-1).
 * @param xNext Teacher stage output X(l).
 * @param options Normalisation of the error and the alignment's batch-norm mode (default true).
 * @returns The scalar loss.
 * @throws {RangeError} If X(l) does not have z_align's shape.
 * @example
 * ```ts
 * import { alignmentLoss, MeanFlowStage } from "@mfi/flows";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({ inChannels: 4, outChannels: 6, stride: 2, hidden: 8, modules: 1, seed: 0 });
 * const xPrev = tf.randomNormal([2, 4, 4, 4], 0, 1, "float32", 1);
 * const xNext = tf.randomNormal([2, 2, 2, 6], 0, 1, "float32", 2);
 * const l = tf.tidy(() => alignmentLoss(stage, xPrev, xNext, { endpointNorm: "variance" }));
 * assert.ok(l.dataSync()[0] > 0);
 * tf.dispose([xPrev, xNext, l]);
 * stage.dispose();
 * ```
 */
export function alignmentLoss(
  stage: MeanFlowStage,
  xPrev: Tensor,
  xNext: Tensor,
  options: { readonly endpointNorm?: EndpointNorm; readonly training?: boolean } = {},
): Scalar {
  return tf.tidy(() =>
    endpointError(stage.align(xPrev, { training: options.training ?? true }), xNext, {
      endpointNorm: options.endpointNorm,
    })
  );
}

/** Gradient norms of the two terms of the stage loss. */
export interface StageGradNorms {
  /** Norm of the MeanFlow term's gradient (as weighted in the total; 0 when it is off). */
  readonly meanflow: number;
  /** Norm of `lambda` x the endpoint term's gradient (0 when lambda = 0). */
  readonly endpoint: number;
}

/**
 * The global L2 norms of each term's gradient with respect to `variables`, as they enter the
 * total (MeanFlow term, and lambda x endpoint term), on one batch: what tells whether lambda
 * balances the two terms. Costs two backward passes; for logging, not for every step.
 *
 * @param stage The stage being fitted.
 * @param xPrev Teacher stage input X(l-1).
 * @param xNext Teacher stage output X(l).
 * @param variables The variables being trained.
 * @param options As for {@linkcode meanFlowStageLoss}.
 * @returns Both norms, read with `await t.data()` (neither the caller's generator nor the
 *   stage's batch-norm statistics change).
 * @throws {RangeError} As {@linkcode meanFlowStageLoss} (as a rejection).
 * @example
 * ```ts
 * import { MeanFlowStage, stageGradNorms } from "@mfi/flows";
 * import { Rng, trainableVariables } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({ inChannels: 4, outChannels: 6, stride: 1, hidden: 8, modules: 1, seed: 0 });
 * const xPrev = tf.randomNormal([2, 3, 3, 4], 0, 1, "float32", 1);
 * const xNext = tf.randomNormal([2, 3, 3, 6], 0, 1, "float32", 2);
 * const vars = trainableVariables(stage.namedVariables());
 * const n = await stageGradNorms(stage, xPrev, xNext, vars, { rng: new Rng(0), lambda: 0 });
 * assert.ok(n.meanflow > 0);
 * assert.equal(n.endpoint, 0);
 * tf.dispose([xPrev, xNext]);
 * stage.dispose();
 * ```
 */
export async function stageGradNorms(
  stage: MeanFlowStage,
  xPrev: Tensor,
  xNext: Tensor,
  variables: Variable[],
  options: StageLossOptions,
): Promise<StageGradNorms> {
  const lambda = options.lambda ?? 1;
  const useMeanflow = options.meanflow ?? true;
  const norm = async (term: "meanflow" | "endpoint"): Promise<number> => {
    // The same (r, t) draws for both terms: each pass gets its own copy of the generator.
    const rng = Rng.fromState(options.rng.state());
    const { value, grads } = tf.variableGrads(() => {
      const l = meanFlowStageLoss(stage, xPrev, xNext, { ...options, rng });
      const out = term === "meanflow" ? l.meanflow : tf.mul(lambda, l.endpoint);
      tf.dispose([l.total, l.meanflow, l.endpoint].filter((t) => t !== out));
      return out as Scalar;
    }, variables);
    try {
      const total = tf.tidy(() =>
        tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))))
      );
      try {
        return (await total.data())[0];
      } finally {
        total.dispose();
      }
    } finally {
      tf.dispose([value, ...Object.values(grads)]);
    }
  };
  // Training-mode batch norm moves running statistics: measuring must not change the stage.
  const buffers = stage.namedVariables().filter(([, v]) => !v.trainable).map(([, v]) =>
    [v, tf.clone(v)] as const
  );
  try {
    const mf = useMeanflow ? await norm("meanflow") : 0;
    const ep = lambda > 0 ? await norm("endpoint") : 0;
    return { meanflow: mf, endpoint: ep };
  } finally {
    for (const [v, saved] of buffers) v.assign(saved);
    tf.dispose(buffers.map(([, saved]) => saved));
  }
}
