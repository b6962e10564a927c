/**
 * A model made of seams (timm's `forward_features`/`forward_head`, Deep Incubation's stages):
 * a stem, a list of stages with metadata, and a head. Incubation, feature extraction and
 * MeanFlow compression work through this interface and swap stages with
 * {@linkcode StagedModel.withStage} without touching the code that built the model.
 *
 * @module
 */
import type { Tensor } from "@mfi/core";
import { type ApplyOptions, type Module, type NamedVariables, prefixed } from "@mfi/core";

/** Metadata of one stage. */
export interface StageInfo {
  /** 0-based position in {@linkcode StagedModel.stages} (the paper's stage `index + 1`). */
  readonly index: number;
  /** Human-readable name, e.g. `"stage1"` for index 0. */
  readonly name: string;
  /** Channels of the stage's input. */
  readonly inChannels: number;
  /** Channels of the stage's output. */
  readonly outChannels: number;
  /** Spatial downsampling factor of the stage (1 or 2 in CIFAR ResNets). */
  readonly stride: number;
  /** What implements the stage, e.g. `"basic"`, `"bottleneck"`, `"meanflow"`. */
  readonly kind: string;
}

/** One stage: its module and its metadata. */
export interface Stage {
  /** The stage's module (input and output NHWC). */
  readonly module: Module;
  /** The stage's metadata. */
  readonly info: StageInfo;
}

/** The parts of a {@linkcode StagedModel}. */
export interface StagedModelParts {
  /** Maps images to the input of stage 0. */
  readonly stem: Module;
  /** Stages in order; `info.index` must equal the position. */
  readonly stages: ReadonlyArray<Stage>;
  /** Maps the output of the last stage to logits (global average pool + linear). */
  readonly head: Module;
}

/** Options of {@linkcode StagedModel.features}. */
export interface FeaturesOptions extends ApplyOptions {
  /**
   * First stage to run. If omitted, `x` is an image batch and the stem runs first (then stage 0);
   * if given, `x` is the input of stage `from` (for `from = 0`: the stem's output).
   */
  readonly from?: number;
  /** One past the last stage to run (default: the number of stages). */
  readonly to?: number;
}

function checkStage(stage: Stage, position: number): void {
  const { info } = stage;
  if (info.index !== position) {
    throw new RangeError(
      `Cannot build StagedModel: stage at position ${position} has info.index ${info.index}; they must be equal`,
    );
  }
  for (const key of ["inChannels", "outChannels", "stride"] as const) {
    if (!Number.isInteger(info[key]) || info[key] < 1) {
      throw new RangeError(
        `Cannot build StagedModel: stages[${position}].info.${key} must be a positive integer, got ${
          info[key]
        }`,
      );
    }
  }
}

/**
 * A stem, stages and a head, composed as one {@linkcode Module}. Variable names are the parts'
 * names prefixed with `stem.`, `stages.<i>.` and `head.`.
 *
 * Several models may share modules (see {@linkcode StagedModel.withStage}); disposing one
 * model's variables disposes them for every model that shares them.
 *
 * @example
 * ```ts
 * import { buildResNet } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const model = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 0 });
 * const x = tf.ones([1, 8, 8, 3]);
 * const [logits, mid] = tf.tidy(() => [
 *   model.apply(x, { training: false }),
 *   model.features(x, { to: 2, training: false }),
 * ]);
 * assert.deepEqual(logits.shape, [1, 10]);
 * assert.deepEqual(mid.shape, [1, 4, 4, model.stages[1].info.outChannels]);
 * tf.dispose([x, logits, mid]);
 * ```
 */
export class StagedModel implements Module {
  /** Maps images to the input of stage 0. */
  readonly stem: Module;
  /** Stages with their metadata. */
  readonly stages: ReadonlyArray<Stage>;
  /** Global average pool + linear classifier. */
  readonly head: Module;

  /**
   * Composes the parts; their variables are used as they are, not copied.
   *
   * @param parts Stem, stages and head.
   * @throws {RangeError} If a stage's `info.index` differs from its position, a size is not a
   *   positive integer, or consecutive stages' channels do not chain.
   */
  constructor(parts: StagedModelParts) {
    parts.stages.forEach((s, i) => {
      checkStage(s, i);
      const prev = parts.stages[i - 1];
      if (prev && prev.info.outChannels !== s.info.inChannels) {
        throw new RangeError(
          `Cannot build StagedModel: stage ${
            i - 1
          } outputs ${prev.info.outChannels} channels but stage ${i} expects ${s.info.inChannels}`,
        );
      }
    });
    this.stem = parts.stem;
    this.stages = Object.freeze(
      parts.stages.map((s) =>
        Object.freeze({ module: s.module, info: Object.freeze({ ...s.info }) })
      ),
    );
    this.head = parts.head;
  }

  /**
   * Runs the stem.
   *
   * @param images NHWC images.
   * @param options Training or inference mode.
   * @returns The input of stage 0.
   */
  stemForward(images: Tensor, options: ApplyOptions): Tensor {
    return this.stem.apply(images, options);
  }

  /**
   * Runs stages `from, ..., to - 1`.
   *
   * @param x The input of stage `from` (for `from = 0`: the stem's output).
   * @param from First stage, 0-based.
   * @param to One past the last stage; `from <= to <= stages.length` (`from === to` returns `x`).
   * @param options Training or inference mode.
   * @returns The output of stage `to - 1` (= the input of stage `to`).
   * @throws {RangeError} If the range is not within the stages.
   */
  runStages(x: Tensor, from: number, to: number, options: ApplyOptions): Tensor {
    const n = this.stages.length;
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > n || from > to) {
      throw new RangeError(
        `Cannot run stages ${from}..${to}: need integers with 0 <= from <= to <= ${n}`,
      );
    }
    let y = x;
    for (let i = from; i < to; i++) y = this.stages[i].module.apply(y, options);
    return y;
  }

  /**
   * Runs a contiguous range of the network, see {@linkcode FeaturesOptions}.
   *
   * @param x Images (when `from` is omitted) or the input of stage `from`.
   * @param options Range and mode.
   * @returns The output of stage `to - 1`.
   * @throws {RangeError} If the range is not within the stages.
   */
  features(x: Tensor, options: FeaturesOptions): Tensor {
    const to = options.to ?? this.stages.length;
    if (options.from === undefined) {
      return this.runStages(this.stemForward(x, options), 0, to, options);
    }
    return this.runStages(x, options.from, to, options);
  }

  /**
   * Runs the head.
   *
   * @param x The output of the last stage, NHWC.
   * @param options Training or inference mode.
   * @returns Logits, [batch, classes].
   */
  headForward(x: Tensor, options: ApplyOptions): Tensor {
    return this.head.apply(x, options);
  }

  /**
   * The whole network: stem, every stage, head.
   *
   * @param x NHWC images.
   * @param options Training or inference mode.
   * @returns Logits.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    return this.headForward(this.features(x, options), options);
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `stem.*`, then `stages.<i>.*` for each stage, then `head.*`.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("stem", this.stem.namedVariables()),
      ...this.stages.flatMap((s, i) => prefixed(`stages.${i}`, s.module.namedVariables())),
      ...prefixed("head", this.head.namedVariables()),
    ];
  }

  /**
   * The stages' metadata.
   *
   * @returns The metadata of every stage.
   */
  stageInfos(): StageInfo[] {
    return this.stages.map((s) => s.info);
  }

  /**
   * A new model with stage `index` replaced; the stem, the head and every other stage are the
   * same module objects (their variables are shared, not copied). The result is a plain
   * {@linkcode StagedModel}: subclass data such as a builder config no longer describes it.
   *
   * @param index The stage to replace, 0-based.
   * @param module The new stage (same input/output channels unless `info` says otherwise).
   * @param info Metadata overrides merged over the old stage's (e.g. `{ kind: "meanflow" }`);
   *   `index` always stays `index`.
   * @returns The hybrid model.
   * @throws {RangeError} If `index` is out of range or the channels no longer chain.
   */
  withStage(
    index: number,
    module: Module,
    info: Partial<Omit<StageInfo, "index">> = {},
  ): StagedModel {
    if (!Number.isInteger(index) || index < 0 || index >= this.stages.length) {
      throw new RangeError(
        `Cannot replace stage ${index}: the model has stages 0..${this.stages.length - 1}`,
      );
    }
    const stages = this.stages.map((s, i) =>
      i === index ? { module, info: { ...s.info, ...info, index } } : s
    );
    return new StagedModel({ stem: this.stem, stages, head: this.head });
  }
}
