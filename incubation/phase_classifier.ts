/**
 * The phase kinds that train a classifier with cross-entropy: `baseline` (train, or load a given
 * checkpoint), `matched` (the baseline trained further), `meta` (the meta model's head or all of
 * it), `incubate` (one residual stage inside the meta model) and `finetune` (the assembled
 * MFI-ResNet, after batch-norm recalibration). Each is one small function over the shared
 * {@linkcode trainClassifier}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { deriveSeed, type EpochRecord, type NamedVariables, trainModel } from "@mfi/core";
import { batches } from "@mfi/data";
import type { StagedModel } from "@mfi/resnet";
import { buildModel } from "./model_spec.ts";
import type {
  BaselinePhase,
  FinetunePhase,
  IncubatePhase,
  MatchedPhase,
  MetaPhase,
  Phase,
} from "./plan.ts";
import { matchesAny } from "./plan.ts";
import {
  classifierLoss,
  evaluateCorrect,
  type Evaluation,
  featureBatches,
  frozenPrefix,
  loadGivenBaseline,
  loadSources,
  makeOptimizer,
  type PhaseContext,
} from "./_phase_kit.ts";

/** What a phase function hands back to the runner, which writes the output. */
export interface PhaseWork {
  /** Variables to save (the phase's `saves`). */
  readonly saved: NamedVariables;
  /** Parameters of the model (compress: of the stage). */
  readonly parameters: number;
  /** Trainable parameters. */
  readonly trainableParameters: number;
  /** Per-epoch records. */
  readonly history: readonly EpochRecord[];
  /** The final evaluation (compress: in situ). */
  readonly final: Evaluation;
  /** Test accuracy before training, if measured. */
  readonly initialTestAccuracy?: number;
  /** Finetune: test accuracy after batch-norm recalibration. */
  readonly recalibratedTestAccuracy?: number;
  /** Compress: one-step fit. */
  readonly fit?: { readonly mse: number; readonly relative: number };
  /** Compress: gradient norms of the loss terms. */
  readonly gradNorms?: {
    readonly start: { readonly meanflow: number; readonly endpoint: number };
    readonly end: { readonly meanflow: number; readonly endpoint: number };
  };
  /** Training images processed. */
  readonly imagesProcessed: number;
}

/** Trains the phase's trainable variables of `model` with cross-entropy (frozen prefix outside the tape). */
async function trainClassifier(
  ctx: PhaseContext,
  phase: Phase,
  model: StagedModel,
): Promise<{ history: readonly EpochRecord[]; trainableParameters: number }> {
  const vars = model.namedVariables().filter(([name, v]) =>
    v.trainable && matchesAny(name, phase.trainable)
  );
  const trainableParameters = vars.reduce((s, [, v]) => s + v.size, 0);
  if (phase.train.epochs === 0) return { history: [], trainableParameters };
  const split = frozenPrefix(model, phase.trainable);
  const optimizer = ctx.keep(makeOptimizer(phase.train, vars));
  const result = await trainModel(model, {
    ...ctx.common("train", phase.train.epochs),
    optimizer,
    schedule: ctx.schedule(phase.train),
    testData: ctx.testBatches,
    trainData: (epoch) =>
      featureBatches(ctx.trainBatches(epoch), (images) => ({ x: split.prefix(images) })),
    lossFn: (batch) => classifierLoss(split.rest(batch.images), batch.labels),
  });
  return { history: result.history, trainableParameters };
}

function modelParameters(model: StagedModel): number {
  return model.namedVariables().reduce((s, [, v]) => s + (v.trainable ? v.size : 0), 0);
}

function imagesOf(ctx: PhaseContext, phase: Phase, history: readonly EpochRecord[]): number {
  return history.length * ctx.stepsPerEpoch * phase.train.batchSize;
}

async function evaluateInitial(ctx: PhaseContext, phase: Phase, model: StagedModel) {
  const acc = (await evaluateCorrect(model, ctx.testBatches())).accuracy;
  ctx.log(`  ${phase.id}: test accuracy before training ${(100 * acc).toFixed(2)} %`);
  return acc;
}

async function finish(
  ctx: PhaseContext,
  phase: Phase,
  model: StagedModel,
  trained: { history: readonly EpochRecord[]; trainableParameters: number },
  extra: Partial<PhaseWork> = {},
): Promise<PhaseWork> {
  const final = await evaluateCorrect(model, ctx.testBatches());
  ctx.log(`  ${phase.id}: test accuracy ${(100 * final.accuracy).toFixed(2)} %`);
  return {
    saved: model.namedVariables().filter(([name]) => matchesAny(name, phase.saves)),
    parameters: modelParameters(model),
    trainableParameters: trained.trainableParameters,
    history: trained.history,
    final,
    imagesProcessed: imagesOf(ctx, phase, trained.history),
    ...extra,
  };
}

function build(ctx: PhaseContext, phase: Phase): StagedModel {
  return ctx.keepModel(buildModel(phase.spec, { seed: deriveSeed(ctx.seed, "init") }));
}

/**
 * The baseline: trained from scratch, or loaded from `phase.checkpoint` (then not trained).
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit.
 */
export async function runBaseline(ctx: PhaseContext, phase: BaselinePhase): Promise<PhaseWork> {
  const model = build(ctx, phase);
  if (phase.checkpoint !== null) {
    const what = await loadGivenBaseline(model, phase.checkpoint);
    ctx.log(`  baseline: loaded ${what}; not training`);
    return await finish(ctx, phase, model, { history: [], trainableParameters: 0 });
  }
  return await finish(ctx, phase, model, await trainClassifier(ctx, phase, model));
}

/**
 * The compute-matched baseline: the baseline trained further with the fine-tune's
 * hyperparameters for as many epochs as MFI-ResNet trains after the baseline.
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit.
 */
export async function runMatched(ctx: PhaseContext, phase: MatchedPhase): Promise<PhaseWork> {
  return await trainFromSources(ctx, phase);
}

/**
 * The meta model: teacher stem, fitted MeanFlow stages and teacher head; its head (or all of it)
 * fine-tuned.
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit.
 */
export async function runMeta(ctx: PhaseContext, phase: MetaPhase): Promise<PhaseWork> {
  return await trainFromSources(ctx, phase);
}

/**
 * Incubation of one stage: the meta model with that stage residual; only the stage trains.
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit.
 */
export async function runIncubate(ctx: PhaseContext, phase: IncubatePhase): Promise<PhaseWork> {
  return await trainFromSources(ctx, phase);
}

/**
 * The assembled MFI-ResNet: incubated stages, remaining MeanFlow stages, stem and head; batch
 * norm recalibrated on `recalibrateBatches` training batches, then fine-tuned end to end.
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit.
 */
export async function runFinetune(ctx: PhaseContext, phase: FinetunePhase): Promise<PhaseWork> {
  const model = build(ctx, phase);
  await loadSources(ctx, model, phase);
  const initialTestAccuracy = await evaluateInitial(ctx, phase, model);
  let recalibratedTestAccuracy: number | undefined;
  if (phase.recalibrateBatches > 0) {
    recalibrateBatchNorm(model, ctx, phase);
    recalibratedTestAccuracy = (await evaluateCorrect(model, ctx.testBatches())).accuracy;
    ctx.log(
      `  finetune: batch norm recalibrated on ${phase.recalibrateBatches} batches: ` +
        `test accuracy ${(100 * recalibratedTestAccuracy).toFixed(2)} %`,
    );
  }
  return await finish(ctx, phase, model, await trainClassifier(ctx, phase, model), {
    initialTestAccuracy,
    recalibratedTestAccuracy,
  });
}

/**
 * Runs training batches through the model in training mode without updating weights, so every
 * batch norm's running statistics move to the assembled model's own activations.
 */
function recalibrateBatchNorm(model: StagedModel, ctx: PhaseContext, phase: FinetunePhase): void {
  const source = batches(ctx.data.train, {
    batchSize: phase.train.batchSize,
    shuffle: true,
    augment: ctx.config.data.augment,
    seed: deriveSeed(ctx.seed, "recalibrate"),
    dropLast: ctx.data.train.count > phase.train.batchSize,
  });
  let done = 0;
  for (const batch of source) {
    try {
      tf.tidy(() => {
        model.apply(batch.images, { training: true });
      });
    } finally {
      batch.images.dispose();
      batch.labels.dispose();
    }
    if (++done >= phase.recalibrateBatches) break;
  }
}

async function trainFromSources(
  ctx: PhaseContext,
  phase: MatchedPhase | MetaPhase | IncubatePhase,
): Promise<PhaseWork> {
  const model = build(ctx, phase);
  await loadSources(ctx, model, phase);
  const initialTestAccuracy = await evaluateInitial(ctx, phase, model);
  return await finish(ctx, phase, model, await trainClassifier(ctx, phase, model), {
    initialTestAccuracy,
  });
}
