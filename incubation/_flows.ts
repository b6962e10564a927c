/**
 * The seam between model specs and `@mfi/flows`: a spec stores a MeanFlow stage's resolved
 * config without its seed (the seed is an initialisation choice, not architecture).
 *
 * @module
 */
import {
  countStageParameters,
  MeanFlowStage,
  type MeanFlowStageConfig,
  type ResolvedStageConfig,
  validateStageConfig,
} from "@mfi/flows";
import { tidyBuild } from "./_tidy.ts";

/**
 * The config of a MeanFlow stage as stored in a {@linkcode ModelSpec}: the flows package's
 * `ResolvedStageConfig` without its seed (every key resolved).
 */
export type MeanFlowStageSpecConfig = Omit<ResolvedStageConfig, "seed">;

/**
 * Validates a spec's MeanFlow config with the flows package's rules and fills its defaults.
 *
 * @param raw Candidate config (without `seed`).
 * @param key Its path in the spec, for error messages.
 * @returns The resolved, frozen config without seed.
 * @throws {TypeError | RangeError} Naming `key` and the flows package's reason.
 */
export function validateMeanFlowConfig(raw: unknown, key: string): MeanFlowStageSpecConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError(
      `Invalid model spec: "${key}" must be an object, got ${JSON.stringify(raw)}`,
    );
  }
  if ("seed" in raw) {
    throw new TypeError(
      `Invalid model spec: unknown key "${key}.seed"; seeds come from buildModel's options`,
    );
  }
  let resolved: ResolvedStageConfig;
  try {
    resolved = validateStageConfig({ ...raw, seed: 0 } as MeanFlowStageConfig);
  } catch (e) {
    const Err = e instanceof RangeError ? RangeError : TypeError;
    throw new Err(`Invalid model spec: "${key}": ${(e as Error).message}`);
  }
  const { seed: _seed, ...config } = resolved;
  return Object.freeze(config);
}

/**
 * Exact parameter count of a MeanFlow stage, without allocating it.
 *
 * @param config A validated config.
 * @returns The number of trainable scalars.
 */
export function countMeanFlowParameters(config: MeanFlowStageSpecConfig): number {
  return countStageParameters({ ...config, seed: 0 });
}

/**
 * Builds a MeanFlow stage.
 *
 * @param config A validated config.
 * @param seed Seed of its initialisation.
 * @returns The stage module.
 */
export function meanFlowStage(config: MeanFlowStageSpecConfig, seed: number): MeanFlowStage {
  // Layers copy their initial values into variables; tidy frees the copies (variables survive).
  return tidyBuild(() => new MeanFlowStage({ ...config, seed }));
}
