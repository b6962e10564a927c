/**
 * `@mfi/data`: CIFAR-10 and CIFAR-100 from the official binary distributions (extracted folder or
 * `.tar.gz` archive), md5-verified download into a cache folder, torchvision-equivalent
 * normalisation and augmentation, and seeded, leak-free batching into `Batch`es of `@mfi/core`.
 *
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { batches, loadCifar } from "@mfi/data";
 * await tf.setBackend("cpu");
 * const dir = Deno.env.get("MFI_DATA_DIR") ?? "data-dir"; // holds cifar-10-batches-bin/ (unpacked)
 * if (await Deno.stat(`${dir}/cifar-10-batches-bin/test_batch.bin`).catch(() => null)) {
 *   const test = await loadCifar({ dataset: "cifar10", split: "test", dir });
 *   for (const { images, labels } of batches(test, { batchSize: 128 })) tf.dispose([images, labels]);
 * }
 * ```
 *
 * @module
 */
export * from "./archive.ts";
export * from "./assemble.ts";
export * from "./augment.ts";
export * from "./check.ts";
export * from "./batches.ts";
export * from "./class_names.ts";
export * from "./cache_dir.ts";
export * from "./download.ts";
export * from "./limits.ts";
export * from "./load.ts";
export * from "./md5.ts";
export * from "./normalize.ts";
export * from "./records.ts";
export * from "./spec.ts";
export * from "./stats.ts";
export * from "./subset.ts";
