/**
 * Training kernels for tfjs-backend-wasm (convolution gradients, fast batched/transposed matmul,
 * segment sums) and the wasm heap helpers.
 *
 * @module
 */
export * from "./batch_mat_mul.ts";
export * from "./conv2d_backprop_filter.ts";
export * from "./conv2d_backprop_input.ts";
export * from "./heap.ts";
export * from "./register.ts";
export * from "./unsorted_segment_sum.ts";
