/**
 * `@mfi/incubation`: the MFI-ResNet pipeline. Architectures as data ({@linkcode ModelSpec}),
 * the phase plan (baseline, MeanFlow compression, meta model, selective incubation, fine-tuning)
 * and its execution.
 *
 * @module
 */
export * from "./aggregate.ts";
export * from "./config.ts";
export * from "./errors.ts";
export * from "./estimate.ts";
export * from "./model_spec.ts";
export * from "./objective.ts";
export * from "./phase_output.ts";
export * from "./phase_runner.ts";
export * from "./pipeline_data.ts";
export * from "./pipeline_specs.ts";
export * from "./params_report.ts";
export * from "./plan.ts";
export * from "./report.ts";
export * from "./runner.ts";
export * from "./statistics.ts";
