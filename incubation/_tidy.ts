/**
 * Construction in a tidy scope: layers and optimizers copy their initial values into variables;
 * the copies are freed, the variables (never disposed by `tf.tidy`) survive.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** Runs a constructor-like function in `tf.tidy` and returns its (non-tensor) result. */
export function tidyBuild<T>(build: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = build();
  });
  return out as T;
}
