/**
 * The optimizer interface shared by `Sgd` and `AdamW`: an optimizer updates an
 * explicit list of named variables and keeps its state as named tensors that a checkpoint can
 * save and restore exactly.
 *
 * @module
 */
import type { Tensor } from "./tf_types.ts";
import type { NamedVariables } from "./module.ts";
import type { SafetensorsTensor } from "./safetensors.ts";

/** Which parameters receive weight decay. */
export type WeightDecayFilter = "all" | "exclude-1d";

/** A saved optimizer state: its kind, the number of updates applied and its named tensors. */
export interface OptimizerState {
  /** The optimizer kind, e.g. `"sgd"` or `"adamw"`. */
  readonly kind: string;
  /** Updates applied so far (PyTorch's `state["step"]`). */
  readonly iterations: number;
  /** State tensors by name, e.g. `momentum_buffer.fc.weight`, as float32 values. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>;
}

/** An optimizer over an explicit list of named variables. */
export interface Optimizer {
  /** The optimizer kind, e.g. `"sgd"`. */
  readonly kind: string;
  /** The variables it updates, with their names. */
  readonly variables: NamedVariables;
  /** Updates applied so far. */
  readonly iterations: number;
  /**
   * Applies one update. Variables without a gradient are skipped (as PyTorch skips `grad is None`).
   *
   * @param grads Gradients by variable name (the caller keeps ownership).
   * @param lr The learning rate of this step.
   */
  applyGradients(grads: ReadonlyMap<string, Tensor>, lr: number): void;
  /**
   * Reads the state.
   *
   * @returns A copy of the state, read asynchronously (safe on WebGPU).
   */
  getState(): Promise<OptimizerState>;
  /**
   * Restores a state saved with {@linkcode Optimizer.getState}.
   *
   * @param state The saved state.
   */
  setState(state: OptimizerState): void;
  /** Frees the state tensors. */
  dispose(): void;
}
