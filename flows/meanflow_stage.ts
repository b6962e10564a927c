/**
 * A MeanFlow stage: the replacement of a residual stage by dimension alignment and one MeanFlow
 * step per module (docs/method.md sections 4-5).
 *
 * ```
 * z_align = ReLU(BN(Conv1x1(down(X(l-1)))))                 (x1, at t = 1)
 * z_r     = z_t - (t - r) u_k(z_t, r, t)                      (one step per module)
 * ```
 * With `modules: 1` the one step is `z_align - u(z_align, 0, 1)`. With `modules: 2` and the
 * default `moduleSplit: "time"`, module 0 jumps from t = 1 to t = 1/2 and module 1 from 1/2 to 0,
 * both trained on the same straight path from z_align to X(l), each on its own sub-interval;
 * with `"cascade"` each module jumps over the whole [0, 1], module 1 starting from module 0's
 * output. Inference may take `steps` sub-steps per module (more steps trade speed for fidelity).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor4D } from "@mfi/core";
import {
  type ApplyOptions,
  BatchNorm,
  Conv2d,
  deriveSeed,
  type Module,
  type NamedVariables,
  prefixed,
} from "@mfi/core";
import {
  alignInChannels,
  type MeanFlowStageConfig,
  type ResolvedStageConfig,
  validateStageConfig,
} from "./stage_config.ts";
import { VelocityNetwork } from "./velocity_network.ts";

/** Forward options of a {@linkcode MeanFlowStage}. */
export interface StageApplyOptions extends ApplyOptions {
  /** MeanFlow steps per module (default 1, the paper's one-step inference). */
  readonly steps?: number;
}

function checkSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`MeanFlowStage: steps must be a positive integer, got ${steps}`);
  }
}

/** [B, H, W, C] -> [B, H/2, W/2, 4C]: each 2x2 block's pixels become channels. */
function spaceToDepth(x: Tensor4D): Tensor4D {
  const [b, h, w, c] = x.shape;
  if (h % 2 !== 0 || w % 2 !== 0) {
    throw new RangeError(
      `MeanFlowStage: space-to-depth needs even height and width, got ${h}x${w}`,
    );
  }
  return tf.tidy(() =>
    tf.reshape(
      tf.transpose(tf.reshape(x, [b, h / 2, 2, w / 2, 2, c]), [0, 1, 3, 2, 4, 5]),
      [b, h / 2, w / 2, 4 * c],
    )
  );
}

/**
 * A MeanFlow stage (a {@linkcode Module}). Variables: `align.conv.weight`, `align.bn.{weight,
 * bias,running_mean,running_var}`, then `flows.<k>.<velocity network names>` for each module
 * (see {@linkcode VelocityNetwork}). Untrained, the flow steps are the identity, so the stage
 * starts as its alignment layer.
 *
 * @example
 * ```ts
 * import { MeanFlowStage } from "@mfi/flows";
 * import { countParameters } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new MeanFlowStage({
 *   inChannels: 8, outChannels: 16, stride: 2, hidden: 32, modules: 2, seed: 0,
 * });
 * const y = tf.tidy(() => stage.apply(tf.ones([2, 8, 8, 8]), { training: false }));
 * assert.deepEqual(y.shape, [2, 4, 4, 16]);
 * assert.deepEqual(stage.namedVariables()[0][0], "align.conv.weight");
 * assert.ok(countParameters(stage) > 0);
 * y.dispose();
 * stage.dispose();
 * ```
 */
export class MeanFlowStage implements Module {
  /** The validated, frozen configuration (save it with checkpoints). */
  readonly config: ResolvedStageConfig;
  /** The 1x1 alignment convolution (stride = the stage's only with `downsample: "stride"`). */
  readonly conv: Conv2d;
  /** The alignment batch norm. */
  readonly bn: BatchNorm;
  /** One velocity network per module, in the order they are applied. */
  readonly flows: readonly VelocityNetwork[];

  /**
   * Builds the alignment and one velocity network per module.
   *
   * @param config Stage configuration, validated here.
   * @throws {TypeError|RangeError} On an invalid configuration, naming the key.
   */
  constructor(config: MeanFlowStageConfig) {
    const c = validateStageConfig(config);
    this.config = c;
    this.conv = new Conv2d({
      inChannels: alignInChannels(c),
      outChannels: c.outChannels,
      kernelSize: 1,
      stride: c.downsample === "stride" ? c.stride : 1,
      seed: deriveSeed(c.seed, "align"),
    });
    this.bn = new BatchNorm({ channels: c.outChannels });
    this.flows = Array.from({ length: c.modules }, (_, k) =>
      new VelocityNetwork({
        channels: c.outChannels,
        hidden: c.hidden,
        blocks: c.blocks,
        timeEmbedDim: c.timeEmbedDim,
        timeMaxFrequency: c.timeMaxFrequency,
        seed: deriveSeed(c.seed, "flows", k),
      }));
  }

  /**
   * The interval [r, t] that module `k` covers in one step: [(M-1-k)/M, (M-k)/M] for
   * `moduleSplit: "time"`, [0, 1] for `"cascade"`.
   *
   * @param k Module index, 0-based.
   * @returns `[r, t]`.
   * @throws {RangeError} If `k` is not a module index.
   */
  moduleInterval(k: number): [number, number] {
    const m = this.config.modules;
    if (!Number.isInteger(k) || k < 0 || k >= m) {
      throw new RangeError(`MeanFlowStage.moduleInterval: k must be in [0, ${m}), got ${k}`);
    }
    return this.config.moduleSplit === "cascade" ? [0, 1] : [(m - 1 - k) / m, (m - k) / m];
  }

  /**
   * Dimension alignment `z_align = ReLU(BN(Conv1x1(down(x))))`, where `down` is the stage's
   * `downsample` (2x2 average pool, space-to-depth, or nothing when the convolution strides).
   *
   * @param x Stage input X(l-1), NHWC with `inChannels`.
   * @param options Training mode (batch norm statistics).
   * @returns z_align, NHWC with `outChannels`, spatially divided by the stride.
   */
  align(x: Tensor, options: ApplyOptions): Tensor4D {
    return tf.tidy(() => {
      const down = this.config.stride === 1 || this.config.downsample === "stride"
        ? x
        : this.config.downsample === "avgpool"
        ? tf.avgPool(x as Tensor4D, 2, 2, "valid")
        : spaceToDepth(x as Tensor4D);
      const z = this.conv.apply(down);
      return this.bn.apply(z, { training: options.training, relu: true }) as Tensor4D;
    });
  }

  /**
   * Applies module `k`'s steps: from its interval's end t down to its start r in `steps` equal
   * sub-steps `z <- z - (t_i - t_{i+1}) u_k(z, t_{i+1}, t_i)`.
   *
   * @param k Module index.
   * @param z The point at the interval's end, NHWC.
   * @param steps Number of sub-steps (default 1).
   * @returns The point at the interval's start.
   * @throws {RangeError} On an invalid module index or step count.
   */
  step(k: number, z: Tensor, steps = 1): Tensor {
    checkSteps(steps);
    const [r, t] = this.moduleInterval(k);
    const net = this.flows[k];
    return tf.tidy(() => {
      let out = z;
      for (let i = 0; i < steps; i++) {
        const hi = t - (t - r) * (i / steps);
        const lo = i === steps - 1 ? r : t - (t - r) * ((i + 1) / steps);
        out = tf.sub(out, tf.mul(hi - lo, net.velocity(out, lo, hi)));
      }
      return out;
    });
  }

  /**
   * The flow part: every module's steps applied in order to an aligned map.
   *
   * @param zAlign The aligned input (x1), NHWC.
   * @param steps Sub-steps per module (default 1).
   * @returns The stage output estimate of X(l).
   * @throws {RangeError} On an invalid step count.
   */
  transport(zAlign: Tensor, steps = 1): Tensor {
    checkSteps(steps);
    return tf.tidy(() => {
      let z = zAlign;
      for (let k = 0; k < this.flows.length; k++) z = this.step(k, z, steps);
      return z;
    });
  }

  /**
   * Forward pass: alignment, then `steps` MeanFlow steps per module.
   *
   * @param x Stage input, NHWC.
   * @param options Training mode (affects batch norm only) and `steps` (default 1).
   * @returns The stage output, NHWC.
   * @throws {RangeError} On an invalid step count.
   */
  apply(x: Tensor, options: StageApplyOptions): Tensor {
    const steps = options.steps ?? 1;
    checkSteps(steps);
    return tf.tidy(() => this.transport(this.align(x, options), steps));
  }

  /**
   * The stage's variables with stable names.
   *
   * @returns `align.conv.*`, `align.bn.*`, then `flows.<k>.*`.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("align.conv", this.conv.namedVariables()),
      ...prefixed("align.bn", this.bn.namedVariables()),
      ...this.flows.flatMap((f, k) => prefixed(`flows.${k}`, f.namedVariables())),
    ];
  }

  /** Disposes every variable of the stage. */
  dispose(): void {
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}
