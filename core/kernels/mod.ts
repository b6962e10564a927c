/**
 * Training kernels for tfjs-backend-wasm (convolution gradients from XNNPACK's forward
 * convolution, our own WASM SIMD convolution kernels, batched/transposed matmul on the fast path,
 * segment sums, large adds on the own-kernel pool), the wasm heap helpers, a per-kernel profiler, the machine's WASM SIMD roof (and
 * the tile loop: the kernels' register tile with its loads) and the own kernels' thread scaling
 * measured inside one process.
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
export * from "./kernel_profile.ts";
export * from "./pool_stats.ts";
export * from "./register.ts";
export * from "./simd_roof.ts";
export * from "./simd_tile.ts";
export * from "./thread_scaling.ts";
