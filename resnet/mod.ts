/**
 * `@mfi/resnet`: CIFAR ResNet-18/34/50/101 built from architecture data by one builder, exposed
 * as a {@linkcode StagedModel} (stem, stages with metadata, head) so that stages can be swapped
 * (MeanFlow stages, incubation hybrids); parameter counting without allocation; PyTorch
 * `state_dict` interop through safetensors.
 *
 * @module
 */
export * from "./arch.ts";
export * from "./blocks.ts";
export * from "./head.ts";
export * from "./resnet.ts";
export * from "./stage.ts";
export * from "./staged_model.ts";
export * from "./stem.ts";
export * from "./count.ts";
export * from "./state_dict.ts";
export * from "./torch.ts";
