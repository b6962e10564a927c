/**
 * Command-line flags every task shares: `--backend webgpu|wasm|cpu`, `--threads N` and the testing
 * switch `--allow-software-adapter` (WebGPU on a software adapter; only with `--backend webgpu`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BackendName, parseBackendName } from "./backend.ts";

/** The backend part of {@linkcode SelectBackendOptions}, as parsed from flags. */
export interface BackendCliOptions {
  /** `--backend`; absent when the flag is not given. */
  backend?: BackendName;
  /** `--threads`; absent when the flag is not given. */
  threads?: number;
  /**
   * `--allow-software-adapter`: true when given, absent otherwise (so `MFI_ALLOW_SOFTWARE_ADAPTER`
   * still applies). `selectBackend` refuses it without an explicit WebGPU request.
   */
  allowSoftwareAdapter?: boolean;
}

/**
 * `node:util` `parseArgs` option specs of the shared flags, to spread into a task's own specs,
 * followed by {@linkcode backendOptionsFromValues}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseArgs } from "node:util";
 * import { BACKEND_ARG_OPTIONS } from "@mfi/core";
 *
 * const { values } = parseArgs({
 *   args: ["--threads", "2", "--steps", "10"],
 *   options: { ...BACKEND_ARG_OPTIONS, steps: { type: "string" } },
 * });
 * assert.equal(values.threads, "2");
 * ```
 */
export const BACKEND_ARG_OPTIONS: {
  readonly backend: { readonly type: "string" };
  readonly threads: { readonly type: "string" };
  readonly "allow-software-adapter": { readonly type: "boolean" };
} = Object.freeze({
  backend: Object.freeze({ type: "string" as const }),
  threads: Object.freeze({ type: "string" as const }),
  "allow-software-adapter": Object.freeze({ type: "boolean" as const }),
});

/**
 * The flags' help text, for a task's `--help`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BACKEND_ARG_HELP } from "@mfi/core";
 *
 * assert.match(BACKEND_ARG_HELP, /--backend webgpu\|wasm\|cpu/);
 * ```
 */
export const BACKEND_ARG_HELP: string = [
  "  --backend webgpu|wasm|cpu  force a backend (default: MFI_BACKEND, else best available)",
  "  --threads N                WASM threads (default: MFI_THREADS, else all cores, max 8)",
  "  --allow-software-adapter   testing only: with --backend webgpu, run on a software adapter",
  "                             (Mesa llvmpipe, ...; about 100x slower than wasm; recorded in",
  "                             every result). Also MFI_ALLOW_SOFTWARE_ADAPTER=1",
].join("\n");

/**
 * Validates the shared flags' values as `parseArgs` returned them.
 *
 * @param values `parseArgs(...).values` (other keys are ignored).
 * @returns `{ backend?, threads?, allowSoftwareAdapter? }`, ready for `selectBackend`.
 * @throws {TypeError} If `--backend` is not one of webgpu, wasm, cpu, or has no value, or if
 *   `--allow-software-adapter` was given a value.
 * @throws {RangeError} If `--threads` is not a whole number >= 1.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseArgs } from "node:util";
 * import { BACKEND_ARG_OPTIONS, backendOptionsFromValues } from "@mfi/core";
 *
 * const { values } = parseArgs({
 *   args: ["--backend", "cpu", "--steps", "3"],
 *   options: { ...BACKEND_ARG_OPTIONS, steps: { type: "string" } },
 * });
 * assert.deepEqual(backendOptionsFromValues(values), { backend: "cpu" });
 * ```
 */
export function backendOptionsFromValues(
  values: Readonly<Record<string, unknown>>,
): BackendCliOptions {
  const out: BackendCliOptions = {};
  const backend = values.backend;
  if (backend !== undefined) {
    if (typeof backend !== "string") {
      throw new TypeError("Flag --backend needs a value: one of webgpu, wasm, cpu.");
    }
    out.backend = parseBackendName(backend, "--backend");
  }
  const threads = values.threads;
  if (threads !== undefined) {
    const n = typeof threads === "string" && /^\s*\d+\s*$/.test(threads) ? Number(threads) : NaN;
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(
        `Invalid --threads ${JSON.stringify(threads)}: expected a whole number >= 1.`,
      );
    }
    out.threads = n;
  }
  const allow = values["allow-software-adapter"];
  if (allow !== undefined) {
    if (allow !== true) {
      throw new TypeError(
        `Flag --allow-software-adapter takes no value, got ${JSON.stringify(allow)}; ` +
          `write just --allow-software-adapter next to --backend webgpu.`,
      );
    }
    out.allowSoftwareAdapter = true;
  }
  return out;
}

/**
 * Reads `--backend`, `--threads` and `--allow-software-adapter` from a task's arguments, ignoring
 * every other flag.
 *
 * @param args Command-line arguments, e.g. `Deno.args`.
 * @returns `{ backend?, threads?, allowSoftwareAdapter? }`, ready for `selectBackend`.
 * @throws {TypeError} If `--backend` is not one of webgpu, wasm, cpu, or has no value.
 * @throws {RangeError} If `--threads` is not a whole number >= 1.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendOptionsFromArgs, selectBackend } from "@mfi/core";
 *
 * const flags = backendOptionsFromArgs(["--backend=cpu", "--threads", "2", "--epochs", "1"]);
 * assert.deepEqual(flags, { backend: "cpu", threads: 2 });
 * const choice = await selectBackend(flags);
 * assert.equal(choice.name, "cpu");
 * ```
 */
export function backendOptionsFromArgs(args: readonly string[]): BackendCliOptions {
  const { values } = parseArgs({
    args: [...args],
    options: BACKEND_ARG_OPTIONS,
    strict: false,
    allowPositionals: true,
  });
  return backendOptionsFromValues(values);
}
