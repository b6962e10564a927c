/**
 * MFI-ResNet: MeanFlow compression and selective incubation of CIFAR ResNets, in TypeScript on
 * tfjs (WebGPU on a real GPU, WASM SIMD otherwise). This module re-exports the public API of the
 * workspace packages.
 *
 * @module
 */
export * from "@mfi/core";
export * from "@mfi/data";
export * from "@mfi/flows";
export * from "@mfi/resnet";
export * from "@mfi/incubation";
export * from "@mfi/serve";
