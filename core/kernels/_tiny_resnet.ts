/**
 * A small ResNet-like network built from core's layers, for the kernel tests: 3x3 stem, basic
 * blocks with stride-2 stages and 1x1 projection shortcuts, global mean pooling, linear head.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BatchNorm } from "../batch_norm.ts";
import { Conv2d } from "../conv2d.ts";
import { Linear } from "../linear.ts";
import { type ApplyOptions, type Module, type NamedVariables, prefixed } from "../module.ts";

class Block implements Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm;
  readonly shortcut?: { conv: Conv2d; bn: BatchNorm };

  constructor(cin: number, cout: number, stride: number, seed: number) {
    this.conv1 = new Conv2d({
      inChannels: cin,
      outChannels: cout,
      kernelSize: 3,
      stride,
      seed: seed + 1,
    });
    this.bn1 = new BatchNorm({ channels: cout });
    this.conv2 = new Conv2d({ inChannels: cout, outChannels: cout, kernelSize: 3, seed: seed + 2 });
    this.bn2 = new BatchNorm({ channels: cout });
    if (stride !== 1 || cin !== cout) {
      this.shortcut = {
        conv: new Conv2d({
          inChannels: cin,
          outChannels: cout,
          kernelSize: 1,
          stride,
          seed: seed + 3,
        }),
        bn: new BatchNorm({ channels: cout }),
      };
    }
  }

  apply(x: tf.Tensor, o: ApplyOptions): tf.Tensor {
    const h = tf.relu(this.bn1.apply(this.conv1.apply(x), o));
    const y = this.bn2.apply(this.conv2.apply(h), o);
    const s = this.shortcut ? this.shortcut.bn.apply(this.shortcut.conv.apply(x), o) : x;
    return tf.relu(tf.add(y, s));
  }

  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv1", this.conv1.namedVariables()),
      ...prefixed("bn1", this.bn1.namedVariables()),
      ...prefixed("conv2", this.conv2.namedVariables()),
      ...prefixed("bn2", this.bn2.namedVariables()),
      ...(this.shortcut
        ? [
          ...prefixed("shortcut.0", this.shortcut.conv.namedVariables()),
          ...prefixed("shortcut.1", this.shortcut.bn.namedVariables()),
        ]
        : []),
    ];
  }
}

/** Tiny ResNet: widths per stage, stride 1 then 2 for every later stage. */
export class TinyResNet implements Module {
  readonly stem: Conv2d;
  readonly bn: BatchNorm;
  readonly blocks: Block[] = [];
  readonly head: Linear;

  constructor(widths: readonly number[], classes: number, seed: number) {
    this.stem = new Conv2d({ inChannels: 3, outChannels: widths[0], kernelSize: 3, seed });
    this.bn = new BatchNorm({ channels: widths[0] });
    let cin = widths[0];
    widths.forEach((w, i) => {
      this.blocks.push(new Block(cin, w, i === 0 ? 1 : 2, seed + 10 * (i + 1)));
      cin = w;
    });
    this.head = new Linear({ inFeatures: cin, outFeatures: classes, seed: seed + 99 });
  }

  apply(x: tf.Tensor, o: ApplyOptions): tf.Tensor {
    let h = tf.relu(this.bn.apply(this.stem.apply(x), o));
    for (const b of this.blocks) h = b.apply(h, o);
    return this.head.apply(tf.mean(h, [1, 2]));
  }

  namedVariables(): NamedVariables {
    return [
      ...prefixed("stem", this.stem.namedVariables()),
      ...prefixed("bn", this.bn.namedVariables()),
      ...this.blocks.flatMap((b, i) => prefixed(`blocks.${i}`, b.namedVariables())),
      ...prefixed("head", this.head.namedVariables()),
    ];
  }
}

/** Softmax cross-entropy loss of a model on a batch, with one-hot labels. */
export function lossOf(model: Module, x: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: true })) as tf.Scalar;
}
