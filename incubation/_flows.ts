/**
 * The seam between model specs and `@mfi/flows` (temporary local shape until the flows package
 * exports its stage config, validator and counter).
 *
 * @module
 */
import type { Module } from "@mfi/core";

/** The config of a MeanFlow stage as stored in a spec. */
export interface MeanFlowConfig {
  /** Stage input channels. */
  readonly inChannels: number;
  /** Stage output channels. */
  readonly outChannels: number;
  /** Stride of the alignment convolution. */
  readonly stride: number;
  /** Hidden width of each velocity network. */
  readonly hidden: number;
  /** MeanFlow modules in sequence. */
  readonly modules: number;
}

const KEYS = ["inChannels", "outChannels", "stride", "hidden", "modules"] as const;

/** Validates a MeanFlow stage config, naming keys under `key`. */
export function validateMeanFlowConfig(raw: unknown, key: string): MeanFlowConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError(
      `Invalid model spec: "${key}" must be an object, got ${JSON.stringify(raw)}`,
    );
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!(KEYS as readonly string[]).includes(k)) {
      throw new TypeError(
        `Invalid model spec: unknown key "${key}.${k}"; allowed keys are ${KEYS.join(", ")}`,
      );
    }
  }
  for (const k of KEYS) {
    const v = r[k];
    if (typeof v !== "number") {
      throw new TypeError(
        `Invalid model spec: "${key}.${k}" must be a number, got ${JSON.stringify(v)}`,
      );
    }
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(
        `Invalid model spec: "${key}.${k}" must be a positive integer, got ${v}`,
      );
    }
  }
  return Object.freeze({ ...r }) as unknown as MeanFlowConfig;
}

/** Exact parameter count of a MeanFlow stage. */
export function countMeanFlowParameters(_config: MeanFlowConfig): number {
  throw new Error("MeanFlow stages need @mfi/flows, which has not landed yet");
}

/** Builds a MeanFlow stage. */
export function meanFlowStage(_config: MeanFlowConfig, _seed: number): Module {
  throw new Error("MeanFlow stages need @mfi/flows, which has not landed yet");
}
