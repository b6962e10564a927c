/**
 * Backend selection: the only place in the project that picks and initialises a tfjs backend.
 * (Foundation version: wasm or cpu on request; WebGPU adapter vetting and wasm threads follow.)
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";

/** Backends the project can run on. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** Options of {@linkcode selectBackend}. */
export interface SelectBackendOptions {
  /** Force a backend; default: `MFI_BACKEND`, else the best available. */
  readonly backend?: BackendName;
}

/** What {@linkcode selectBackend} chose and why. */
export interface BackendChoice {
  /** The active backend. */
  readonly name: BackendName;
  /** A human-readable reason. */
  readonly reason: string;
}

/**
 * Picks and initialises the backend.
 *
 * @param options Optional override.
 * @returns The choice and the reason for it.
 * @throws {Error} If the requested backend cannot be initialised.
 */
export async function selectBackend(options: SelectBackendOptions = {}): Promise<BackendChoice> {
  const requested = options.backend ?? (Deno.env.get("MFI_BACKEND") as BackendName | undefined);
  const name: BackendName = requested ?? "wasm";
  if (!(await tf.setBackend(name))) throw new Error(`Cannot initialise the ${name} backend`);
  await tf.ready();
  return { name, reason: requested ? `requested (${requested})` : "default" };
}
