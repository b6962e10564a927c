/**
 * The tfjs types.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** A tfjs tensor. */
export type Tensor = tf.Tensor;
/** A tfjs variable. */
export type Variable = tf.Variable;
/** A rank-0 tensor. */
export type Scalar = tf.Scalar;
/** A rank-1 tensor. */
export type Tensor1D = tf.Tensor1D;
/** A rank-2 tensor. */
export type Tensor2D = tf.Tensor2D;
/** A rank-4 tensor. */
export type Tensor4D = tf.Tensor4D;
/** A tfjs optimizer (`tf.train.adam(...)` and the like). */
export type TfjsOptimizer = tf.Optimizer;
