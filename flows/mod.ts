/**
 * `@mfi/flows`: MeanFlow stages for MFI-ResNet. A {@linkcode MeanFlowStage} replaces a residual
 * stage by a 1x1 alignment and one MeanFlow step per module; {@linkcode meanFlowLoss} trains an
 * average-velocity network with an exact forward-mode JVP target; {@linkcode widthForBudget}
 * sizes a stage to a parameter budget.
 *
 * @module
 */
export * from "./budget.ts";
export * from "./meanflow_loss.ts";
export * from "./meanflow_stage.ts";
export * from "./stage_config.ts";
export * from "./stage_loss.ts";
export * from "./stop_gradient.ts";
export * from "./time_embedding.ts";
export * from "./time_sampler.ts";
export * from "./velocity_network.ts";
export * from "./toy.ts";
