/**
 * The `compress` phase kind: fit one MeanFlow stage to the frozen teacher's stage features with
 * the phase's objective (alignment joint, or prefitted by regression and frozen first), then
 * read the fit out two ways: the one-step error on the test split's teacher features, and the
 * in-situ accuracy (the teacher with only this stage replaced, before any further training).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  deriveSeed,
  type EpochRecord,
  type LossOutput,
  type Module,
  prefixed,
  Rng,
  trainableVariables,
  trainModel,
} from "@mfi/core";
import { alignmentLoss, type MeanFlowStage, meanFlowStageLoss, stageGradNorms } from "@mfi/flows";
import type { CompressPhase } from "./plan.ts";
import { stageLossOptions } from "./objective.ts";
import { meanFlowStage } from "./_flows.ts";
import {
  evaluateCorrect,
  type FeatureBatch,
  featureBatches,
  loadTeacher,
  makeOptimizer,
  type PhaseContext,
} from "./_phase_kit.ts";
import type { PhaseWork } from "./phase_classifier.ts";

/** Batches used to measure the loss terms' gradient norms. */
const GRAD_NORM_BATCHES = 2;

/**
 * Fits stage `phase.stage` and evaluates the fit.
 *
 * @param ctx The phase context.
 * @param phase The phase.
 * @returns The work to commit (the stage's variables under `stages.<l-1>.`).
 * @throws {PhaseNotReadyError} If the teacher's output is missing.
 */
export async function runCompress(ctx: PhaseContext, phase: CompressPhase): Promise<PhaseWork> {
  const l = phase.stage;
  const teacher = await loadTeacher(ctx, phase);
  const stageSpec = phase.spec.stages[l - 1];
  if (stageSpec.kind !== "meanflow") throw new Error(`${phase.id}: stage ${l} is not MeanFlow`);
  const stage = meanFlowStage(stageSpec.config, deriveSeed(ctx.seed, "init"));
  const wrapped: Module = {
    apply: (x, o) => stage.apply(x, o),
    namedVariables: () => prefixed(`stages.${l - 1}`, stage.namedVariables()),
  };
  ctx.keepModel(wrapped);
  const features = (images: tf.Tensor) => {
    const inference = { training: false };
    const x = teacher.runStages(teacher.stem.apply(images, inference), 0, l - 1, inference);
    return { x, target: teacher.stages[l - 1].module.apply(x, inference) };
  };
  const trainFeatures = (epoch: number) => featureBatches(ctx.trainBatches(epoch), features);
  const objective = phase.objective;
  const prefit = objective.align.mode === "prefit";
  const history: EpochRecord[] = [];
  if (prefit && objective.align.prefitEpochs > 0 && phase.train.epochs > 0) {
    history.push(...await fitAlignment(ctx, phase, stage, wrapped, trainFeatures));
  }
  const { history: flowHistory, gradNorms } = await fitFlows(
    ctx,
    phase,
    stage,
    wrapped,
    trainFeatures,
  );
  history.push(...flowHistory);
  const fit = await stageFit(stage, featureBatches(ctx.testBatches(), features));
  ctx.log(
    `  ${phase.id}: test fit MSE ${fit.mse.toPrecision(4)} (${
      (100 * fit.relative).toFixed(1)
    } % of the teacher output's variance)`,
  );
  const inSitu = await evaluateCorrect(teacher.withStage(l - 1, stage), ctx.testBatches());
  ctx.log(`  ${phase.id}: in-situ test accuracy ${(100 * inSitu.accuracy).toFixed(2)} %`);
  const parameters = wrapped.namedVariables().reduce(
    (s, [, v]) => s + (v.trainable ? v.size : 0),
    0,
  );
  return {
    saved: wrapped.namedVariables(),
    parameters,
    trainableParameters: parameters,
    history,
    final: inSitu,
    fit,
    gradNorms,
    imagesProcessed: history.length * ctx.stepsPerEpoch * phase.train.batchSize,
  };
}

/**
 * Fits the velocity networks (and, unless prefitted, the alignment) with the phase's objective;
 * measures the loss terms' gradient norms at the start and the end.
 */
async function fitFlows(
  ctx: PhaseContext,
  phase: CompressPhase,
  stage: MeanFlowStage,
  wrapped: Module,
  trainFeatures: (epoch: number) => Iterable<FeatureBatch>,
) {
  const l = phase.stage;
  const prefit = phase.objective.align.mode === "prefit";
  // Prefit: the alignment is frozen (batch norm in inference mode) while the flows are fitted.
  const flowVars = wrapped.namedVariables().filter(([name, v]) =>
    v.trainable && (!prefit || !name.startsWith(`stages.${l - 1}.align.`))
  );
  const lossOptions = (rng: Rng) => stageLossOptions(phase.objective, rng, !prefit);
  const norms = () => gradNorms(stage, trainFeatures(0), trainableVariables(flowVars), lossOptions);
  const start = await startNorms(ctx, norms);
  let history: readonly EpochRecord[] = [];
  if (phase.train.epochs > 0) {
    const optimizer = ctx.keep(makeOptimizer(phase.train, flowVars));
    const result = await trainModel(wrapped, {
      ...ctx.common("train", phase.train.epochs),
      optimizer,
      schedule: ctx.schedule(phase.train),
      trainData: trainFeatures,
      lossFn: (batch, step): LossOutput => {
        const target = (batch as FeatureBatch).target!;
        const loss = meanFlowStageLoss(stage, batch.images, target, lossOptions(step.rng));
        return { loss: loss.total, metrics: { meanflow: loss.meanflow, endpoint: loss.endpoint } };
      },
    });
    history = result.history;
  }
  return { history, gradNorms: { start, end: await norms() } };
}

/** Fits the alignment alone by regression to X(l) (`align.mode: prefit`). */
async function fitAlignment(
  ctx: PhaseContext,
  phase: CompressPhase,
  stage: MeanFlowStage,
  wrapped: Module,
  trainFeatures: (epoch: number) => Iterable<FeatureBatch>,
): Promise<readonly EpochRecord[]> {
  const l = phase.stage;
  const vars = wrapped.namedVariables().filter(([name, v]) =>
    v.trainable && name.startsWith(`stages.${l - 1}.align.`)
  );
  const epochs = phase.objective.align.prefitEpochs;
  const train = { ...phase.train, epochs };
  const optimizer = ctx.keep(makeOptimizer(train, vars));
  const result = await trainModel(wrapped, {
    ...ctx.common("train-align", epochs),
    logFile: `${ctx.dir}/log-align.jsonl`,
    optimizer,
    schedule: ctx.schedule(train),
    trainData: trainFeatures,
    lossFn: (batch): LossOutput => ({
      loss: alignmentLoss(stage, batch.images, (batch as FeatureBatch).target!, {
        endpointNorm: phase.objective.endpointNorm,
      }),
    }),
  });
  ctx.log(`  ${phase.id}: alignment prefitted for ${epochs} epoch(s), now frozen`);
  return result.history;
}

/** Gradient norms at the start of the flow fit, kept on disk so that a resumed fit reports the real start. */
async function startNorms(
  ctx: PhaseContext,
  measure: () => Promise<{ meanflow: number; endpoint: number }>,
): Promise<{ meanflow: number; endpoint: number }> {
  const path = `${ctx.dir}/grad-norms-start.json`;
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    const norms = await measure();
    await Deno.mkdir(ctx.dir, { recursive: true });
    await Deno.writeTextFile(path, JSON.stringify(norms));
    return norms;
  }
}

/** Mean gradient norms of the two loss terms over the first training batches (a fixed generator). */
async function gradNorms(
  stage: MeanFlowStage,
  source: Iterable<FeatureBatch>,
  variables: tf.Variable[],
  lossOptions: (rng: Rng) => ReturnType<typeof stageLossOptions>,
): Promise<{ meanflow: number; endpoint: number }> {
  let meanflow = 0;
  let endpoint = 0;
  let n = 0;
  for (const b of source) {
    try {
      const g = await stageGradNorms(
        stage,
        b.images,
        b.target!,
        variables,
        lossOptions(new Rng(n)),
      );
      meanflow += g.meanflow;
      endpoint += g.endpoint;
    } finally {
      b.images.dispose();
      b.labels.dispose();
    }
    if (++n >= GRAD_NORM_BATCHES) break;
  }
  return { meanflow: meanflow / Math.max(n, 1), endpoint: endpoint / Math.max(n, 1) };
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
