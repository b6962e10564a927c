/**
 * `@mfi/serve`: inference and serving for MFI-ResNet models. The single-file model bundle
 * (`.mfi`: weights, architecture spec, labels, normalisation, checked by SHA-256), bundles made
 * from training checkpoints, a batching {@linkcode Classifier}, a `fetch`-style HTTP handler,
 * and PNG/JPEG decoding with resize and centre-crop.
 *
 * @module
 */
export * from "./bundle.ts";
export * from "./checkpoint_bundle.ts";
export * from "./classifier.ts";
export * from "./http_handler.ts";
export * from "./image.ts";
export * from "./http_server.ts";
