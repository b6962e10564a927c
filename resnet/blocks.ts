/**
 * Residual blocks of CIFAR ResNets (kuangliu / torchvision v1.5 layout): {@linkcode BasicBlock},
 * {@linkcode Bottleneck} (stride on the 3x3 conv, expansion 4) and the projection shortcut
 * (1x1 conv + batch norm where the shape changes).
 *
 * @module
 */
import type { Tensor } from "@mfi/core";
import {
  type ApplyOptions,
  BatchNorm,
  Conv2d,
  deriveSeed,
  type Module,
  type NamedVariables,
  prefixed,
} from "@mfi/core";

/** Options shared by the residual blocks. */
export interface BlockOptions {
  /** Input channels. */
  readonly inChannels: number;
  /** Block width: output channels of a basic block, inner width of a bottleneck. */
  readonly width: number;
  /** Stride of the block (on its 3x3 convolution and its shortcut). */
  readonly stride: number;
  /**
   * Seed of the block: each layer's seed is `deriveSeed(seed, layerName)` with names such as
   * `conv1` and `shortcut.conv`.
   */
  readonly seed: number;
}

/**
 * The projection shortcut: 1x1 convolution with the block's stride, then batch norm. Variables
 * `conv.weight`, `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var`.
 *
 * @example
 * ```ts
 * import { Projection } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const p = new Projection({ inChannels: 4, outChannels: 8, stride: 2, seed: 0 });
 * const y = tf.tidy(() => p.apply(tf.ones([1, 4, 4, 4]), { training: false }));
 * assert.deepEqual(y.shape, [1, 2, 2, 8]);
 * y.dispose();
 * ```
 */
export class Projection implements Module {
  /** The 1x1 convolution. */
  readonly conv: Conv2d;
  /** Its batch norm. */
  readonly bn: BatchNorm;

  /**
   * Builds the module and allocates its variables.
   *
   * @param options Channels, stride and seed (the conv's seed is `deriveSeed(seed, "conv")`).
   * @throws {RangeError} On invalid sizes.
   */
  constructor(
    options: { inChannels: number; outChannels: number; stride: number; seed: number },
  ) {
    this.conv = new Conv2d({
      inChannels: options.inChannels,
      outChannels: options.outChannels,
      kernelSize: 1,
      stride: options.stride,
      seed: deriveSeed(options.seed, "conv"),
    });
    this.bn = new BatchNorm({ channels: options.outChannels });
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC input.
   * @param options Training or inference mode (batch norm).
   * @returns The projected input.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    return this.bn.apply(this.conv.apply(x), { training: options.training });
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `conv.*` then `bn.*`.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv", this.conv.namedVariables()),
      ...prefixed("bn", this.bn.namedVariables()),
    ];
  }
}

function shortcutFor(inChannels: number, outChannels: number, stride: number, seed: number) {
  return stride !== 1 || inChannels !== outChannels
    ? new Projection({ inChannels, outChannels, stride, seed: deriveSeed(seed, "shortcut") })
    : undefined;
}

function conv(cin: number, cout: number, k: number, stride: number, seed: number, name: string) {
  return new Conv2d({
    inChannels: cin,
    outChannels: cout,
    kernelSize: k,
    stride,
    seed: deriveSeed(seed, name),
  });
}

/**
 * The basic block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, 3x3 convs, stride on
 * `conv1`. Output channels = `width`. Variables `conv1.weight`, `bn1.*`, `conv2.weight`, `bn2.*`
 * and, where the shape changes, `shortcut.conv.weight`, `shortcut.bn.*`.
 *
 * @example
 * ```ts
 * import { BasicBlock } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const block = new BasicBlock({ inChannels: 4, width: 8, stride: 2, seed: 0 });
 * const y = tf.tidy(() => block.apply(tf.ones([1, 8, 8, 4]), { training: false }));
 * assert.deepEqual(y.shape, [1, 4, 4, 8]);
 * assert.ok(block.shortcut !== undefined);
 * y.dispose();
 * ```
 */
export class BasicBlock implements Module {
  /** Output channels over width. */
  static readonly expansion = 1;
  /** First 3x3 convolution (carries the stride). */
  readonly conv1: Conv2d;
  /** First batch norm. */
  readonly bn1: BatchNorm;
  /** Second 3x3 convolution. */
  readonly conv2: Conv2d;
  /** Second batch norm. */
  readonly bn2: BatchNorm;
  /** Projection shortcut, or undefined for the identity. */
  readonly shortcut: Projection | undefined;
  /** Output channels. */
  readonly outChannels: number;

  /**
   * Builds the module and allocates its variables.
   *
   * @param options Channels, stride and seed.
   * @throws {RangeError} On invalid sizes.
   */
  constructor(options: BlockOptions) {
    const { inChannels, width, stride, seed } = options;
    this.conv1 = conv(inChannels, width, 3, stride, seed, "conv1");
    this.bn1 = new BatchNorm({ channels: width });
    this.conv2 = conv(width, width, 3, 1, seed, "conv2");
    this.bn2 = new BatchNorm({ channels: width });
    this.shortcut = shortcutFor(inChannels, width, stride, seed);
    this.outChannels = width;
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC input.
   * @param options Training or inference mode (batch norm).
   * @returns NHWC output.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    const { training } = options;
    const y = this.bn1.apply(this.conv1.apply(x), { training, relu: true });
    const s = this.shortcut ? this.shortcut.apply(x, options) : x;
    // relu(bn2(conv2(y)) + s) as one fused batch norm.
    return this.bn2.apply(this.conv2.apply(y), { training, residual: s, relu: true });
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `conv1`, `bn1`, `conv2`, `bn2`, `shortcut` variables, in PyTorch's order.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv1", this.conv1.namedVariables()),
      ...prefixed("bn1", this.bn1.namedVariables()),
      ...prefixed("conv2", this.conv2.namedVariables()),
      ...prefixed("bn2", this.bn2.namedVariables()),
      ...(this.shortcut ? prefixed("shortcut", this.shortcut.namedVariables()) : []),
    ];
  }
}

/**
 * The bottleneck block (torchvision v1.5): 1x1 conv to `width`, 3x3 conv with the stride, 1x1
 * conv to `4 * width`, each followed by batch norm, ReLU after the first two and after the
 * residual sum. Variables `conv1`..`conv3`, `bn1`..`bn3` and, where the shape changes,
 * `shortcut.conv`, `shortcut.bn`.
 *
 * @example
 * ```ts
 * import { Bottleneck } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const block = new Bottleneck({ inChannels: 16, width: 4, stride: 1, seed: 0 });
 * const y = tf.tidy(() => block.apply(tf.ones([1, 4, 4, 16]), { training: false }));
 * assert.deepEqual(y.shape, [1, 4, 4, 16]);
 * assert.equal(block.shortcut, undefined);
 * y.dispose();
 * ```
 */
export class Bottleneck implements Module {
  /** Output channels over width. */
  static readonly expansion = 4;
  /** 1x1 reduction. */
  readonly conv1: Conv2d;
  /** First batch norm. */
  readonly bn1: BatchNorm;
  /** 3x3 convolution (carries the stride). */
  readonly conv2: Conv2d;
  /** Second batch norm. */
  readonly bn2: BatchNorm;
  /** 1x1 expansion to `4 * width`. */
  readonly conv3: Conv2d;
  /** Third batch norm. */
  readonly bn3: BatchNorm;
  /** Projection shortcut, or undefined for the identity. */
  readonly shortcut: Projection | undefined;
  /** Output channels (`4 * width`). */
  readonly outChannels: number;

  /**
   * Builds the module and allocates its variables.
   *
   * @param options Channels, stride and seed.
   * @throws {RangeError} On invalid sizes.
   */
  constructor(options: BlockOptions) {
    const { inChannels, width, stride, seed } = options;
    const out = width * Bottleneck.expansion;
    this.conv1 = conv(inChannels, width, 1, 1, seed, "conv1");
    this.bn1 = new BatchNorm({ channels: width });
    this.conv2 = conv(width, width, 3, stride, seed, "conv2");
    this.bn2 = new BatchNorm({ channels: width });
    this.conv3 = conv(width, out, 1, 1, seed, "conv3");
    this.bn3 = new BatchNorm({ channels: out });
    this.shortcut = shortcutFor(inChannels, out, stride, seed);
    this.outChannels = out;
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC input.
   * @param options Training or inference mode (batch norm).
   * @returns NHWC output.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    const { training } = options;
    let y = this.bn1.apply(this.conv1.apply(x), { training, relu: true });
    y = this.bn2.apply(this.conv2.apply(y), { training, relu: true });
    const s = this.shortcut ? this.shortcut.apply(x, options) : x;
    // relu(bn3(conv3(y)) + s) as one fused batch norm.
    return this.bn3.apply(this.conv3.apply(y), { training, residual: s, relu: true });
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `conv1`..`bn3` then `shortcut` variables, in PyTorch's order.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv1", this.conv1.namedVariables()),
      ...prefixed("bn1", this.bn1.namedVariables()),
      ...prefixed("conv2", this.conv2.namedVariables()),
      ...prefixed("bn2", this.bn2.namedVariables()),
      ...prefixed("conv3", this.conv3.namedVariables()),
      ...prefixed("bn3", this.bn3.namedVariables()),
      ...(this.shortcut ? prefixed("shortcut", this.shortcut.namedVariables()) : []),
    ];
  }
}
