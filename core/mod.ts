/**
 * `@mfi/core`: backend selection, WASM training kernels, shared layers, seeded randomness,
 * safetensors, and the training engine of MFI-ResNet.
 *
 * @module
 */
export * from "./adamw.ts";
export * from "./atomic_file.ts";
export * from "./backend.ts";
export * from "./batch.ts";
export * from "./batch_norm.ts";
export * from "./checkpoint.ts";
export * from "./conv2d.ts";
export * from "./evaluate.ts";
export * from "./kernels/mod.ts";
export * from "./linear.ts";
export * from "./loss.ts";
export * from "./module.ts";
export * from "./optimizer.ts";
export * from "./plot_svg.ts";
export * from "./progress.ts";
export * from "./random.ts";
export * from "./run_lock.ts";
export * from "./safetensors.ts";
export * from "./schedule.ts";
export * from "./sha256.ts";
export * from "./sgd.ts";
export * from "./tf_types.ts";
export * from "./train_loop.ts";
