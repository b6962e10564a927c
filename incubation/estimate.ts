/**
 * Duration estimate of a run from a short timing probe on the active backend: a few training
 * steps of each model kind (baseline, each MeanFlow stage fit, an incubation hybrid, MFI-ResNet,
 * evaluation), timed after a warm-up step, multiplied by the images each phase will process.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { deriveSeed, disposeModule, type Optimizer, Rng, softmaxCrossEntropy } from "@mfi/core";
import { batchCount } from "@mfi/data";
import { meanFlowStageLoss } from "@mfi/flows";
import type { StagedModel } from "@mfi/resnet";
import type { PipelineConfig } from "./config.ts";
import { buildModel } from "./model_spec.ts";
import { makeOptimizer } from "./_phase_kit.ts";
import { stageLossOptions, stageObjective } from "./objective.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { meanFlowStage } from "./_flows.ts";
import { planPhases } from "./plan.ts";

/** Seconds per image of each probed kind. */
export interface ProbeTimings {
  /** Baseline training step. */
  readonly baseline: number;
  /** MeanFlow fit of stage 1..4 (teacher forward included). */
  readonly compress: readonly number[];
  /** Meta model head training (forward of the meta model). */
  readonly meta: number;
  /** Incubation of stage 1 (the most expensive hybrid; used for every incubation). */
  readonly incubate: number;
  /** MFI-ResNet fine-tune step. */
  readonly finetune: number;
  /** Baseline forward pass (evaluation). */
  readonly evaluate: number;
  /** Images per probed step. */
  readonly batch: number;
}

/** A run's estimate. */
export interface RunEstimate {
  /** Estimated seconds per phase id. */
  readonly phases: Readonly<Record<string, number>>;
  /** Estimated seconds of the whole run. */
  readonly totalSeconds: number;
  /** The timings it is based on. */
  readonly timings: ProbeTimings;
}

async function timeSteps(step: () => void, batch: number, steps: number): Promise<number> {
  step(); // warm-up: kernel compilation, allocation
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  // Wait for queued device work (WebGPU) before stopping the clock.
  const probe = tf.zeros([1]);
  await probe.data();
  probe.dispose();
  return (performance.now() - t0) / 1000 / (steps * batch);
}

function trainStep(model: StagedModel, x: tf.Tensor, y: tf.Tensor, from: number, sgd: Optimizer) {
  return () => {
    const vars = sgd.variables.map(([, v]) => v);
    const names = new Map(sgd.variables.map(([n, v]) => [v.name, n]));
    const { grads, value } = tf.variableGrads(() => {
      let h = x;
      if (from <= 0) h = model.stem.apply(h, { training: true });
      else {h = tf.tidy(() =>
          model.runStages(model.stem.apply(x, { training: false }), 0, from - 1, {
            training: false,
          })
        );}
      for (let i = Math.max(0, from - 1); i < model.stages.length; i++) {
        h = model.stages[i].module.apply(h, { training: from <= 0 || i === from - 1 });
      }
      return softmaxCrossEntropy(model.head.apply(h, { training: true }), y);
    }, vars);
    const named = new Map(Object.entries(grads).map(([k, g]) => [names.get(k)!, g]));
    sgd.applyGradients(named, 0);
    tf.dispose([value, ...Object.values(grads)]);
  };
}

/**
 * Times a few steps of each model kind of a config on the active backend. Allocates the models
 * at the configured width (not the data), frees them afterwards.
 *
 * @param config The run's config.
 * @param options Probe batch size (default min(32, the baseline's batch, 4 / width), at least 2)
 *   and timed steps (default 2).
 * @returns Seconds per image of each kind.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, probeTimings } from "@mfi/incubation";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const tiny = mergeConfig(DEFAULT_CONFIG, {
 *   model: { arch: "resnet18", width: 1 / 32 },
 *   meanflow: { hidden: [4, 4, 4, 4] },
 * });
 * const before = tf.memory().numTensors;
 * const t = await probeTimings(tiny, { batch: 2, steps: 1 });
 * assert.ok(t.baseline > 0 && t.compress.length === 4 && t.evaluate > 0);
 * assert.equal(tf.memory().numTensors, before);
 * ```
 */
export async function probeTimings(
  config: PipelineConfig,
  options: { readonly batch?: number; readonly steps?: number } = {},
): Promise<ProbeTimings> {
  const specs = pipelineSpecs(config);
  // Smaller probe batches for wider models keep the probe short (a full-width ResNet-50 step on
  // a CPU takes seconds per image); per-image costs at small batches slightly overestimate.
  const batch = options.batch ??
    Math.max(2, Math.min(32, config.baseline.batchSize, Math.round(4 / config.model.width)));
  const steps = options.steps ?? 2;
  const rng = new Rng(deriveSeed(config.seed, "probe"));
  const x = tf.tensor4d(rng.normalArray(batch * 32 * 32 * 3), [batch, 32, 32, 3]);
  const classes = specs.baseline.classes;
  const y = tf.tensor1d(Int32Array.from({ length: batch }, () => rng.int(classes)), "int32");
  const built: StagedModel[] = [];
  const free: Array<{ dispose(): void }> = [];
  try {
    const model = (spec: typeof specs.baseline) => {
      const m = buildModel(spec, { seed: 0 });
      built.push(m);
      return m;
    };
    const sgdOver = (m: StagedModel, prefix: string) => {
      const s = makeOptimizer(
        config.baseline,
        m.namedVariables().filter(([n, v]) => v.trainable && n.startsWith(prefix)),
      );
      free.push(s);
      return s;
    };
    const baseline = model(specs.baseline);
    const tBase = await timeSteps(
      trainStep(baseline, x, y, 0, sgdOver(baseline, "")),
      batch,
      steps,
    );
    const tEval = await timeSteps(
      () => tf.tidy(() => void baseline.apply(x, { training: false })),
      batch,
      steps,
    );
    const compress: number[] = [];
    for (let l = 1; l <= 4; l++) {
      const st = specs.meta.stages[l - 1];
      if (st.kind !== "meanflow") throw new Error("meta stages are MeanFlow");
      const stage = meanFlowStage(st.config, 0);
      free.push({ dispose: () => disposeModule(stage) });
      const sgd = makeOptimizer(
        config.compress,
        stage.namedVariables().filter(([, v]) => v.trainable),
      );
      free.push(sgd);
      const names = new Map(sgd.variables.map(([n, v]) => [v.name, n]));
      compress.push(
        await timeSteps(
          () => {
            const [xPrev, xNext] = tf.tidy(() => {
              const a = baseline.runStages(baseline.stem.apply(x, { training: false }), 0, l - 1, {
                training: false,
              });
              return [a, baseline.stages[l - 1].module.apply(a, { training: false })];
            });
            const { grads, value } = tf.variableGrads(
              () =>
                meanFlowStageLoss(
                  stage,
                  xPrev,
                  xNext,
                  stageLossOptions(stageObjective(config), rng, true),
                ).total,
              sgd.variables.map(([, v]) => v),
            );
            sgd.applyGradients(
              new Map(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])),
              0,
            );
            tf.dispose([xPrev, xNext, value, ...Object.values(grads)]);
          },
          batch,
          steps,
        ),
      );
    }
    const meta = model(specs.meta);
    const tMeta = await timeSteps(trainStep(meta, x, y, 5, sgdOver(meta, "head.")), batch, steps);
    const firstIncubated = config.incubate.stages[0];
    let tInc = 0;
    if (firstIncubated !== undefined) {
      const hybrid = model(specs.hybrids[firstIncubated]);
      tInc = await timeSteps(
        trainStep(hybrid, x, y, firstIncubated, sgdOver(hybrid, `stages.${firstIncubated - 1}.`)),
        batch,
        steps,
      );
    }
    const mfi = model(specs.mfi);
    const tMfi = await timeSteps(trainStep(mfi, x, y, 0, sgdOver(mfi, "")), batch, steps);
    return {
      baseline: tBase,
      compress,
      meta: tMeta,
      incubate: tInc,
      finetune: tMfi,
      evaluate: tEval,
      batch,
    };
  } finally {
    for (const f of free) f.dispose();
    for (const m of built) disposeModule(m);
    tf.dispose([x, y]);
  }
}

/**
 * Estimates a run's duration from probe timings and the data sizes (pure).
 *
 * @param config The run's config.
 * @param timings From {@linkcode probeTimings}.
 * @param counts Training and test images of the run.
 * @returns Seconds per phase and in total.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, estimateRun } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const t = { baseline: 1e-3, compress: [1e-4, 1e-4, 1e-4, 1e-4], meta: 1e-5, incubate: 1e-3,
 *   finetune: 1e-3, evaluate: 3e-4, batch: 32 };
 * const e = estimateRun(DEFAULT_CONFIG, t, { train: 50_000, test: 10_000 });
 * // 200 epochs x 49,920 images x 1 ms + 201 test passes of 10,000 images x 0.3 ms
 * assert.ok(Math.abs(e.phases.baseline - (200 * 49_920 * 1e-3 + 201 * 3)) < 1e-6);
 * ```
 */
export function estimateRun(
  config: PipelineConfig,
  timings: ProbeTimings,
  counts: { readonly train: number; readonly test: number },
): RunEstimate {
  const phases: Record<string, number> = {};
  for (const p of planPhases(config)) {
    const { epochs, batchSize } = p.train;
    const dropLast = counts.train > batchSize;
    const images = epochs * batchCount(counts.train, { batchSize, dropLast }) * batchSize;
    const perImage = p.kind === "baseline"
      ? (p.checkpoint !== null ? 0 : timings.baseline)
      : p.kind === "matched"
      ? timings.baseline
      : p.kind === "compress"
      ? timings.compress[p.stage - 1]
      : p.kind === "meta"
      ? timings.meta
      : p.kind === "incubate"
      ? timings.incubate
      : timings.finetune;
    // Test passes: compress = the one-step fit and the in-situ accuracy; baseline = each epoch
    // and the final one; the others also before training (and after recalibration).
    const evaluations = p.kind === "compress"
      ? 2
      : p.kind === "baseline"
      ? epochs + 1
      : epochs + 2 + (p.kind === "finetune" && p.recalibrateBatches > 0 ? 1 : 0);
    const prefit = p.kind === "compress" && p.objective.align.mode === "prefit"
      ? p.objective.align.prefitEpochs * images / Math.max(epochs, 1)
      : 0;
    const recalibration = p.kind === "finetune" ? p.recalibrateBatches * batchSize : 0;
    phases[p.id] = (images + prefit) * perImage +
      (evaluations * counts.test + recalibration) * timings.evaluate;
  }
  const totalSeconds = Object.values(phases).reduce((a, b) => a + b, 0);
  return { phases, totalSeconds, timings };
}
