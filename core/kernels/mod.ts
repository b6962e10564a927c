/**
 * Training kernels for tfjs-backend-wasm (convolution gradients from XNNPACK's forward
 * convolution, batched/transposed matmul on the fast path, segment sums) and the wasm heap helpers.
 *
 * @module
 */
export {
  CHANNEL_GRAD_SUMS_KERNEL,
  CHANNEL_MOMENTS_KERNEL,
  channelGradSums,
  channelMoments,
} from "./channel_stats.ts";
export * from "./heap.ts";
export * from "./register.ts";
