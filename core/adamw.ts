/**
 * AdamW with PyTorch's semantics (`torch.optim.AdamW`): decoupled weight decay
 * (`p *= 1 - lr * wd` before the Adam step), bias-corrected moments, epsilon added outside the
 * square root.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Variable } from "./tf_types.ts";
import type { NamedVariables } from "./module.ts";
import type { Optimizer, OptimizerState, WeightDecayFilter } from "./optimizer.ts";
import {
  checkCommonOptions,
  checkGradientShape,
  checkHyper,
  decays,
  readOptimizerState,
  writeOptimizerState,
  zeroSlot,
} from "./_optimizer.ts";
import { ADAMW_STEP_KERNEL, adamWStep, fusedOptimizerAvailable } from "./kernels/optimizer_step.ts";

/** Options of {@linkcode AdamW}. */
export interface AdamWOptions {
  /** Coefficients of the running averages (default [0.9, 0.999]). */
  readonly betas?: readonly [number, number];
  /** Added to the denominator outside the square root (default 1e-8). */
  readonly epsilon?: number;
  /** Decoupled weight decay (default 0.01, PyTorch's default). */
  readonly weightDecay?: number;
  /** Which parameters are decayed (default `"all"`). */
  readonly weightDecayFilter?: WeightDecayFilter;
}

/**
 * AdamW, per parameter `p` with gradient `g` at step `t` (1-based):
 * `p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`. On the wasm backend (training
 * kernels registered) one kernel updates every parameter with the same float32 arithmetic.
 *
 * @example
 * ```ts
 * import { AdamW } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1]));
 * const adam = new AdamW([["w", w]], { weightDecay: 0 });
 * const g = tf.tensor1d([3]);
 * adam.applyGradients(new Map([["w", g]]), 0.1);
 * // The first Adam step moves each weight by about lr against the gradient's sign.
 * assert.ok(Math.abs((await w.data())[0] - 0.9) < 1e-6);
 * adam.dispose();
 * tf.dispose([w, g]);
 * ```
 */
export class AdamW implements Optimizer {
  /** `"adamw"`. */
  readonly kind = "adamw";
  /** The variables it updates. */
  readonly variables: NamedVariables;
  /** The resolved options. */
  readonly options: Readonly<Required<AdamWOptions>>;
  #iterations = 0;
  readonly #slots = new Map<string, Variable>();

  /**
   * Builds the optimizer and its zero-initialised state.
   *
   * @param variables The trainable variables to update, with names.
   * @param options Hyperparameters.
   * @throws {Error} On an empty or duplicate variable list or a non-trainable variable.
   * @throws {RangeError} On an out-of-range hyperparameter.
   */
  constructor(variables: NamedVariables, options: AdamWOptions = {}) {
    const { weightDecay, weightDecayFilter } = checkCommonOptions(
      "AdamW",
      variables,
      options,
      0.01,
    );
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) {
      throw new RangeError(`Cannot build AdamW: betas must be two numbers, got ${betas}`);
    }
    checkHyper("Cannot build AdamW", "betas[0]", betas[0], 0, 1, false);
    checkHyper("Cannot build AdamW", "betas[1]", betas[1], 0, 1, false);
    const epsilon = options.epsilon ?? 1e-8;
    checkHyper("Cannot build AdamW", "epsilon", epsilon, 0);
    this.options = Object.freeze({
      betas: [betas[0], betas[1]] as const,
      epsilon,
      weightDecay,
      weightDecayFilter,
    });
    this.variables = variables;
    for (const [name, v] of variables) {
      this.#slots.set(`exp_avg.${name}`, zeroSlot(v));
      this.#slots.set(`exp_avg_sq.${name}`, zeroSlot(v));
    }
  }

  /** Updates applied so far (the `t` of the bias correction). */
  get iterations(): number {
    return this.#iterations;
  }

  /**
   * Applies one update.
   *
   * @param grads Gradients by variable name; missing names are skipped.
   * @param lr Learning rate of this step.
   * @throws {RangeError} If `lr` is negative or not finite, or a gradient's shape is wrong.
   */
  applyGradients(grads: ReadonlyMap<string, Tensor>, lr: number): void {
    checkHyper("AdamW.applyGradients", "lr", lr, 0);
    const { betas: [b1, b2], epsilon, weightDecay, weightDecayFilter } = this.options;
    const t = this.#iterations + 1;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const present: [string, Variable, Tensor][] = [];
    for (const [name, v] of this.variables) {
      const g = grads.get(name);
      if (g === undefined) continue;
      checkGradientShape("AdamW", name, g, v);
      present.push([name, v, g]);
    }
    if (present.length > 0 && fusedOptimizerAvailable(ADAMW_STEP_KERNEL)) {
      // One kernel for every parameter (the wasm backend).
      tf.tidy(() => {
        const slots = present.map(([name]) => [
          this.#slots.get(`exp_avg.${name}`)!,
          this.#slots.get(`exp_avg_sq.${name}`)!,
        ]);
        const next = adamWStep(
          present.map(([, v, g], i) => ({ param: v, grad: g, slots: slots[i] })),
          {
            beta1: b1,
            beta2: b2,
            epsilon,
            stepSize,
            bc2Sqrt,
            decayFactors: present.map(([, v]) =>
              weightDecay !== 0 && decays(weightDecayFilter, v) ? 1 - lr * weightDecay : 1
            ),
          },
        );
        present.forEach(([, v], i) => {
          v.assign(next[i][0]);
          slots[i][0].assign(next[i][1]);
          slots[i][1].assign(next[i][2]);
        });
      });
      this.#iterations = t;
      return;
    }
    for (const [name, v, g] of present) {
      const m = this.#slots.get(`exp_avg.${name}`)!;
      const s = this.#slots.get(`exp_avg_sq.${name}`)!;
      tf.tidy(() => {
        const p: Tensor = weightDecay !== 0 && decays(weightDecayFilter, v)
          ? tf.mul(v, 1 - lr * weightDecay)
          : v;
        const mNext = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const sNext = tf.add(tf.mul(s, b2), tf.mul(tf.square(g), 1 - b2));
        m.assign(mNext);
        s.assign(sNext);
        const denom = tf.add(tf.div(tf.sqrt(sNext), bc2Sqrt), epsilon);
        v.assign(tf.sub(p, tf.mul(tf.div(mNext, denom), stepSize)));
      });
    }
    this.#iterations = t;
  }

  /**
   * Reads the state asynchronously (safe on WebGPU).
   *
   * @returns The step count and moments (`exp_avg.<name>`, `exp_avg_sq.<name>`).
   */
  getState(): Promise<OptimizerState> {
    return readOptimizerState(this.kind, this.#iterations, this.#slots);
  }

  /**
   * Restores a saved state.
   *
   * @param state A state from {@linkcode AdamW.getState} for the same variables.
   * @throws {Error} If kind, names or shapes differ.
   */
  setState(state: OptimizerState): void {
    writeOptimizerState(this.kind, state, this.#slots);
    this.#iterations = state.iterations;
  }

  /** Frees the moment estimates. */
  dispose(): void {
    for (const s of this.#slots.values()) s.dispose();
    this.#slots.clear();
  }
}
