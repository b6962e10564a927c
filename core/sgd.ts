/**
 * Stochastic gradient descent with momentum and Nesterov momentum, with PyTorch's semantics
 * (`torch.optim.SGD`, dampening 0): weight decay is coupled L2, added to the gradient before the
 * momentum buffer.
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
import { fusedOptimizerAvailable, SGD_STEP_KERNEL, sgdStep } from "./kernels/optimizer_step.ts";

/** Options of {@linkcode Sgd}. */
export interface SgdOptions {
  /** Momentum factor in [0, 1) (default 0: plain SGD). */
  readonly momentum?: number;
  /** Nesterov momentum (default false; needs momentum > 0). */
  readonly nesterov?: boolean;
  /** L2 weight decay, added to the gradient (default 0). */
  readonly weightDecay?: number;
  /** Which parameters are decayed (default `"all"`, as PyTorch and kuangliu's CIFAR code). */
  readonly weightDecayFilter?: WeightDecayFilter;
}

/**
 * SGD as PyTorch computes it, per parameter `p` with gradient `g`:
 * `d = g + wd * p; buf = momentum * buf + d; d = nesterov ? d + momentum * buf : buf;
 * p = p - lr * d`. The momentum buffers start at zero, which with dampening 0 equals PyTorch's
 * `buf = d` on the first step. On the wasm backend (training kernels registered) one kernel
 * updates every parameter with the same float32 arithmetic.
 *
 * @example
 * ```ts
 * import { Sgd } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1]));
 * const sgd = new Sgd([["w", w]], { momentum: 0.9 });
 * const g = tf.tensor1d([2]);
 * sgd.applyGradients(new Map([["w", g]]), 0.1);
 * assert.ok(Math.abs((await w.data())[0] - 0.8) < 1e-6);
 * sgd.dispose();
 * tf.dispose([w, g]);
 * ```
 */
export class Sgd implements Optimizer {
  /** `"sgd"`. */
  readonly kind = "sgd";
  /** The variables it updates. */
  readonly variables: NamedVariables;
  /** The resolved options. */
  readonly options: Readonly<Required<SgdOptions>>;
  #iterations = 0;
  readonly #buffers = new Map<string, Variable>();

  /**
   * Builds the optimizer and its zero-initialised state.
   *
   * @param variables The trainable variables to update, with names.
   * @param options Hyperparameters.
   * @throws {Error} On an empty or duplicate variable list or a non-trainable variable.
   * @throws {RangeError} On an out-of-range hyperparameter or Nesterov without momentum.
   */
  constructor(variables: NamedVariables, options: SgdOptions = {}) {
    const { weightDecay, weightDecayFilter } = checkCommonOptions("Sgd", variables, options, 0);
    const momentum = options.momentum ?? 0;
    checkHyper("Cannot build Sgd", "momentum", momentum, 0, 1, false);
    const nesterov = options.nesterov ?? false;
    if (nesterov && momentum <= 0) {
      throw new RangeError("Cannot build Sgd: nesterov needs momentum > 0, got momentum 0");
    }
    this.options = Object.freeze({ momentum, nesterov, weightDecay, weightDecayFilter });
    this.variables = variables;
    if (momentum > 0) {
      for (const [name, v] of variables) {
        this.#buffers.set(`momentum_buffer.${name}`, zeroSlot(v));
      }
    }
  }

  /** Updates applied so far. */
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
    checkHyper("Sgd.applyGradients", "lr", lr, 0);
    const { momentum, nesterov, weightDecay, weightDecayFilter } = this.options;
    const present: [string, Variable, Tensor][] = [];
    for (const [name, v] of this.variables) {
      const g = grads.get(name);
      if (g === undefined) continue;
      checkGradientShape("Sgd", name, g, v);
      present.push([name, v, g]);
    }
    if (present.length > 0 && fusedOptimizerAvailable(SGD_STEP_KERNEL)) {
      // One kernel for every parameter (the wasm backend).
      tf.tidy(() => {
        const buffers = present.map(([name]) => this.#buffers.get(`momentum_buffer.${name}`));
        const next = sgdStep(
          present.map(([, v, g], i) => ({
            param: v,
            grad: g,
            slots: momentum > 0 ? [buffers[i]!] : [],
          })),
          {
            lr,
            momentum,
            nesterov,
            weightDecays: present.map(([, v]) =>
              weightDecay !== 0 && decays(weightDecayFilter, v) ? weightDecay : 0
            ),
          },
        );
        present.forEach(([, v], i) => {
          v.assign(next[i][0]);
          if (momentum > 0) buffers[i]!.assign(next[i][1]);
        });
      });
      this.#iterations++;
      return;
    }
    for (const [name, v, g] of present) {
      tf.tidy(() => {
        let d: Tensor = g;
        if (weightDecay !== 0 && decays(weightDecayFilter, v)) {
          d = tf.add(d, tf.mul(v, weightDecay));
        }
        if (momentum > 0) {
          const buf = this.#buffers.get(`momentum_buffer.${name}`)!;
          const next = tf.add(tf.mul(buf, momentum), d);
          buf.assign(next);
          d = nesterov ? tf.add(d, tf.mul(next, momentum)) : next;
        }
        v.assign(tf.sub(v, tf.mul(d, lr)));
      });
    }
    this.#iterations++;
  }

  /**
   * Reads the state asynchronously (safe on WebGPU).
   *
   * @returns The iteration count and momentum buffers (`momentum_buffer.<name>`).
   */
  getState(): Promise<OptimizerState> {
    return readOptimizerState(this.kind, this.#iterations, this.#buffers);
  }

  /**
   * Restores a saved state.
   *
   * @param state A state from {@linkcode Sgd.getState} for the same variables and momentum.
   * @throws {Error} If kind, names or shapes differ.
   */
  setState(state: OptimizerState): void {
    writeOptimizerState(this.kind, state, this.#buffers);
    this.#iterations = state.iterations;
  }

  /** Frees the momentum buffers. */
  dispose(): void {
    for (const b of this.#buffers.values()) b.dispose();
    this.#buffers.clear();
  }
}
