/**
 * The one model interface every package shares. A {@linkcode Module} is a function of its input
 * and its named variables; names are stable, `.`-joined paths such as
 * `stages.2.blocks.0.conv1.weight`, and are what checkpoints store.
 *
 * tfjs variable names must be globally unique, so modules never pass their path to
 * `tf.variable`: the path lives in {@linkcode Module.namedVariables}.
 *
 * @module
 */
import type { Tensor, Variable } from "./tf_types.ts";

/** Options for a forward pass. */
export interface ApplyOptions {
  /** Training mode: batch norm uses batch statistics and updates its running statistics. */
  readonly training: boolean;
}

/** Named state of a module: trainable parameters and buffers (`variable.trainable === false`). */
export type NamedVariables = ReadonlyArray<readonly [name: string, variable: Variable]>;

/** A layer or a network: a forward function over explicit, named variables. */
export interface Module {
  /**
   * Runs the forward pass. Call inside `tf.tidy` (or a gradient function).
   *
   * @param x Input, NHWC for images or [batch, features] for vectors.
   * @param options Training or inference mode.
   * @returns The output tensor.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor;
  /**
   * The module's state.
   *
   * @returns Every variable of the module with its stable name, in a fixed order.
   */
  namedVariables(): NamedVariables;
}

/**
 * Prefixes the names of a child's variables: `prefixed("conv1", conv)` gives `conv1.weight`.
 *
 * @param prefix The child's name within its parent.
 * @param variables The child's named variables.
 * @returns The same variables under `prefix.`-joined names.
 * @example
 * ```ts
 * import { prefixed } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]));
 * assert.deepEqual(prefixed("fc", [["weight", w]])[0][0], "fc.weight");
 * w.dispose();
 * ```
 */
export function prefixed(prefix: string, variables: NamedVariables): NamedVariables {
  return variables.map(([name, v]) => [prefix === "" ? name : `${prefix}.${name}`, v] as const);
}

/**
 * The trainable variables among named ones, in order.
 *
 * @param variables Named variables, e.g. `model.namedVariables()`.
 * @returns The trainable variables.
 */
export function trainableVariables(variables: NamedVariables): Variable[] {
  return variables.filter(([, v]) => v.trainable).map(([, v]) => v);
}

/**
 * Counts parameters: elements of trainable variables (batch-norm running statistics are buffers,
 * not parameters, as in PyTorch's `sum(p.numel() for p in model.parameters())`).
 *
 * @param module The module or its named variables.
 * @returns The number of trainable scalars.
 * @example
 * ```ts
 * import { countParameters } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([3, 4]));
 * const running = tf.variable(tf.zeros([4]), false);
 * assert.deepEqual(countParameters([["w", w], ["running", running]]), 12);
 * w.dispose();
 * running.dispose();
 * ```
 */
export function countParameters(module: Module | NamedVariables): number {
  const vars = "namedVariables" in module ? module.namedVariables() : module;
  return vars.reduce((sum, [, v]) => sum + (v.trainable ? v.size : 0), 0);
}

/**
 * A name-to-variable map, rejecting duplicate names.
 *
 * @param variables Named variables.
 * @returns A map from name to variable.
 * @throws {Error} If two variables share a name.
 */
export function variableMap(variables: NamedVariables): Map<string, Variable> {
  const map = new Map<string, Variable>();
  for (const [name, v] of variables) {
    if (map.has(name)) {
      throw new Error(`Duplicate variable name "${name}": module names must be unique`);
    }
    map.set(name, v);
  }
  return map;
}

/**
 * Disposes every variable of a module.
 *
 * @param module The module to free.
 */
export function disposeModule(module: Module): void {
  for (const [, v] of module.namedVariables()) v.dispose();
}
