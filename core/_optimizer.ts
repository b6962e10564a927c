/**
 * Private helpers of the optimizers: argument checks and state (de)serialisation.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Variable } from "./tf_types.ts";
import type { NamedVariables } from "./module.ts";
import type { OptimizerState, WeightDecayFilter } from "./optimizer.ts";
import type { SafetensorsTensor } from "./safetensors.ts";

/**
 * Checks the variable list of an optimizer: non-empty, unique names, trainable, float32.
 *
 * @param kind The optimizer's name, for messages.
 * @param variables The variables to optimise.
 * @throws {Error} If the list is empty, a name repeats or a variable is not trainable.
 */
export function checkOptimizerVariables(kind: string, variables: NamedVariables): void {
  if (variables.length === 0) {
    throw new Error(
      `Cannot build ${kind}: the variable list is empty; pass the variables to train`,
    );
  }
  const seen = new Set<string>();
  for (const [name, v] of variables) {
    if (seen.has(name)) throw new Error(`Cannot build ${kind}: variable "${name}" is listed twice`);
    seen.add(name);
    if (!v.trainable) {
      throw new Error(
        `Cannot build ${kind}: variable "${name}" is not trainable (a buffer such as a batch-norm ` +
          `running statistic); pass only trainable variables`,
      );
    }
  }
}

/** The options every optimizer shares, resolved. */
export interface CommonOptimizerOptions {
  /** Weight decay (>= 0). */
  readonly weightDecay: number;
  /** Which parameters are decayed. */
  readonly weightDecayFilter: WeightDecayFilter;
}

/**
 * The constructor checks every optimizer shares: the variable list (see
 * {@linkcode checkOptimizerVariables}), `weightDecay` and `weightDecayFilter`, with defaults.
 *
 * @param kind The optimizer's name, for messages (`Cannot build <kind>: ...`).
 * @param variables The variables to optimise.
 * @param options The caller's options (only the shared keys are read).
 * @param defaultWeightDecay The optimizer's default weight decay.
 * @returns The resolved shared options.
 * @throws {Error} On a bad variable list.
 * @throws {RangeError} On a negative or non-finite weight decay or an unknown filter.
 */
export function checkCommonOptions(
  kind: string,
  variables: NamedVariables,
  options: { readonly weightDecay?: number; readonly weightDecayFilter?: WeightDecayFilter },
  defaultWeightDecay: number,
): CommonOptimizerOptions {
  checkOptimizerVariables(kind, variables);
  const weightDecay = options.weightDecay ?? defaultWeightDecay;
  checkHyper(`Cannot build ${kind}`, "weightDecay", weightDecay, 0);
  const weightDecayFilter = options.weightDecayFilter ?? "all";
  if (weightDecayFilter !== "all" && weightDecayFilter !== "exclude-1d") {
    throw new RangeError(
      `Cannot build ${kind}: weightDecayFilter must be "all" or "exclude-1d", got ${weightDecayFilter}`,
    );
  }
  return { weightDecay, weightDecayFilter };
}

/**
 * A zero-initialised, non-trainable state variable shaped like `v` (momentum, moments).
 *
 * @param v The parameter.
 * @returns The new slot.
 */
export function zeroSlot(v: Variable): Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(v), false));
}

/**
 * Checks that a gradient has its parameter's shape.
 *
 * @param kind Optimizer name, for the message.
 * @param name Parameter name.
 * @param g The gradient.
 * @param v The parameter.
 * @throws {RangeError} If the shapes differ.
 */
export function checkGradientShape(kind: string, name: string, g: Tensor, v: Variable): void {
  if (!tf.util.arraysEqual(g.shape, v.shape)) {
    throw new RangeError(
      `${kind}: gradient of "${name}" has shape [${g.shape}], expected [${v.shape}]`,
    );
  }
}

/**
 * Reads state variables into a saved state (float32, asynchronous reads).
 *
 * @param kind Optimizer kind.
 * @param iterations Updates applied.
 * @param slots State variables by name.
 * @returns The saved state.
 */
export async function readOptimizerState(
  kind: string,
  iterations: number,
  slots: ReadonlyMap<string, Variable>,
): Promise<OptimizerState> {
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, v] of slots) {
    const data = await v.data() as Float32Array;
    tensors.set(name, { dtype: "F32", shape: [...v.shape], data: Float32Array.from(data) });
  }
  return { kind, iterations, tensors };
}

/**
 * Writes a saved state into state variables, checking kind, names and shapes first.
 *
 * @param kind Optimizer kind.
 * @param state Saved state.
 * @param slots State variables by name.
 * @throws {Error} On a different kind, a missing or extra name, or a shape mismatch.
 */
export function writeOptimizerState(
  kind: string,
  state: OptimizerState,
  slots: ReadonlyMap<string, Variable>,
): void {
  if (state.kind !== kind) {
    throw new Error(`Cannot restore ${kind} state: the saved state is for "${state.kind}"`);
  }
  if (!Number.isInteger(state.iterations) || state.iterations < 0) {
    throw new Error(
      `Cannot restore ${kind} state: iterations must be a non-negative integer, got ${state.iterations}`,
    );
  }
  const missing = [...slots.keys()].filter((n) => !state.tensors.has(n));
  const extra = [...state.tensors.keys()].filter((n) => !slots.has(n));
  if (missing.length > 0 || extra.length > 0) {
    throw new Error(
      `Cannot restore ${kind} state: missing [${missing.slice(0, 5).join(", ")}]${
        missing.length > 5 ? ` and ${missing.length - 5} more` : ""
      }, unexpected [${extra.slice(0, 5).join(", ")}]${
        extra.length > 5 ? ` and ${extra.length - 5} more` : ""
      }; was it saved for the same variables?`,
    );
  }
  for (const [name, v] of slots) {
    const t = state.tensors.get(name)!;
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new Error(
        `Cannot restore ${kind} state "${name}": saved shape [${t.shape}], variable shape [${v.shape}]`,
      );
    }
    if (t.dtype !== "F32") {
      throw new Error(`Cannot restore ${kind} state "${name}": dtype ${t.dtype}, expected F32`);
    }
  }
  for (const [name, v] of slots) {
    const t = state.tensors.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, [...t.shape], "float32")));
  }
}

/**
 * Whether a parameter receives weight decay under a filter.
 *
 * @param filter `"all"` (PyTorch's default) or `"exclude-1d"` (no decay for biases and batch-norm
 * weights, whose rank is 1).
 * @param variable The parameter.
 * @returns True if it is decayed.
 */
export function decays(filter: WeightDecayFilter, variable: Variable): boolean {
  return filter === "all" || variable.rank > 1;
}

/**
 * Checks a numeric hyperparameter.
 *
 * @param context Message prefix, e.g. `Cannot build Sgd` or `Sgd.applyGradients`.
 * @param key Option name.
 * @param value Its value.
 * @param min Inclusive lower bound.
 * @param max Upper bound.
 * @param maxInclusive Whether `max` itself is allowed.
 * @throws {RangeError} If the value is not a finite number in range.
 */
export function checkHyper(
  context: string,
  key: string,
  value: number,
  min: number,
  max = Infinity,
  maxInclusive = true,
): void {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min ||
    (maxInclusive ? value > max : value >= max)
  ) {
    throw new RangeError(
      `${context}: ${key} must be a number in [${min}, ${max}${
        maxInclusive ? "]" : ")"
      }, got ${value}`,
    );
  }
}
