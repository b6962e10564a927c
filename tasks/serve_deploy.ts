/**
 * The classifier server as a `deno serve` module (and for Deno Deploy-style hosts that run a
 * module's default `fetch` export): configuration comes from the environment, not from flags.
 *
 * - `MFI_MODEL_URL` (required): the bundle, as a `file:` or `https:` URL (plain `http:` only
 *   with `MFI_ALLOW_HTTP=1`).
 * - `MFI_WASM_URL` (optional): a folder URL (or path) holding tfjs-backend-wasm's `.wasm` files;
 *   default: the installed npm package.
 * - `MFI_MAX_BODY_BYTES` (optional): request body limit (default 5 MiB).
 * - `MFI_BACKEND` (optional): `wasm`, `cpu` or `webgpu` (default: the best available).
 * - `MFI_THREADS` (optional): WASM threads (default 1: a request-serving process shares its host,
 *   and one thread per process scales by running more processes).
 *
 * ```sh
 * MFI_MODEL_URL=file:///srv/model.mfi deno serve --port 8080 \
 *   --allow-env=MFI_MODEL_URL,MFI_WASM_URL,MFI_MAX_BODY_BYTES,MFI_BACKEND,MFI_THREADS,MFI_ALLOW_HTTP \
 *   --allow-read=/srv/model.mfi,$WASM_DIR tasks/serve_deploy.ts
 * ```
 *
 * With an `https:` bundle and `MFI_WASM_URL`, only `--allow-net=HOST` (the model's host) and
 * `--allow-env` are needed. A variable that `--allow-env` does not grant is treated as unset.
 * Header and body read timeouts are the host's job here (`deno serve` has none); use
 * `deno task serve` where the process faces clients directly.
 *
 * @module
 */
import { BACKEND_NAMES } from "@mfi/core";
import { createHandler, type Handler, loadClassifier } from "@mfi/serve";
import { type CliSpec, parseCliOrExit, reportError, UsageError } from "./_cli.ts";

/** The variables the deploy entry reads, in the order the help lists them. */
export const DEPLOY_ENV: readonly string[] = Object.freeze([
  "MFI_MODEL_URL",
  "MFI_WASM_URL",
  "MFI_MAX_BODY_BYTES",
  "MFI_BACKEND",
  "MFI_THREADS",
  "MFI_ALLOW_HTTP",
]);

/** `deno serve tasks/serve_deploy.ts`'s command line: no flags, configured by the environment. */
export const SERVE_DEPLOY_CLI: CliSpec = {
  name: "serve_deploy",
  command: "deno serve tasks/serve_deploy.ts",
  summary: "the classifier server as a `deno serve` module, configured by environment variables",
  usage: "(no options; configure it with the variables below)",
  flags: {},
  notes: [
    "Environment (a variable --allow-env does not grant reads as unset):",
    "  MFI_MODEL_URL       required: the .mfi bundle as a file: or https: URL (http: only with",
    "                      MFI_ALLOW_HTTP=1)",
    "  MFI_WASM_URL        folder (path or URL) holding tfjs-backend-wasm's .wasm files (default:",
    "                      the npm package's); one that does not work stops the start, never a",
    "                      silent cpu fallback",
    "  MFI_MAX_BODY_BYTES  request body limit (default 5 MiB)",
    `  MFI_BACKEND         ${BACKEND_NAMES.join(", ")} (default: the best available)`,
    "  MFI_THREADS         WASM threads (default 1 here: one thread per process, scale by processes)",
    "  MFI_ALLOW_HTTP      1 to accept a plain http: MFI_MODEL_URL (default 0)",
    "  MFI_ALLOW_SOFTWARE_ADAPTER",
    "                      testing only: 1 lets MFI_BACKEND=webgpu run on a software adapter",
    "                      (llvmpipe); the automatic choice never takes one (default 0); not",
    "                      in the permission line below: grant it only where you test",
    "",
    "Permissions, exactly:",
    "  deno serve --host 0.0.0.0 --port 8080 --allow-net=0.0.0.0:8080 \\",
    `    --allow-env=${DEPLOY_ENV.join(",")} \\`,
    "    --allow-read=/srv/model.mfi,/srv/wasm tasks/serve_deploy.ts",
  ].join("\n"),
  examples: [],
};

/** The deploy entry's settings, validated. */
export interface DeployConfig {
  /** The bundle. */
  readonly modelUrl: URL;
  /** Where the WASM binaries are, if not the npm package's. */
  readonly wasmUrl?: string;
  /** Request body limit. */
  readonly maxBodyBytes?: number;
  /** `MFI_BACKEND`. */
  readonly backend?: string;
  /** `MFI_THREADS` (default 1). */
  readonly threads: string;
  /** `MFI_ALLOW_HTTP=1`. */
  readonly allowHttp: boolean;
  /** `MFI_ALLOW_SOFTWARE_ADAPTER` as given (testing only; honoured with `MFI_BACKEND=webgpu`). */
  readonly allowSoftwareAdapter?: string;
}

function positiveInteger(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`${name} must be a whole number >= 1; got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/**
 * Reads and validates the deploy entry's environment.
 *
 * @param get A variable's value; unset, empty and not granted read as undefined.
 * @returns The settings.
 * @throws {UsageError} Naming the variable that is missing or malformed, and the fix.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deployConfig } from "./serve_deploy.ts";
 * const env: Record<string, string> = { MFI_MODEL_URL: "file:///srv/model.mfi" };
 * assert.equal(deployConfig((n) => env[n]).threads, "1");
 * env.MFI_MAX_BODY_BYTES = "-5";
 * assert.throws(() => deployConfig((n) => env[n]), /MFI_MAX_BODY_BYTES must be a whole number/);
 * ```
 */
export function deployConfig(get: (name: string) => string | undefined): DeployConfig {
  const model = get("MFI_MODEL_URL");
  if (model === undefined) {
    throw new UsageError(
      "set MFI_MODEL_URL to the bundle's file: or https: URL, e.g. file:///srv/model.mfi " +
        "(and grant --allow-env=MFI_MODEL_URL)",
    );
  }
  let modelUrl: URL;
  try {
    modelUrl = new URL(model);
  } catch {
    modelUrl = new URL("invalid:");
  }
  if (!/^(file|https?):$/.test(modelUrl.protocol)) {
    throw new UsageError(
      `MFI_MODEL_URL must be a file: or https: URL, e.g. file:///srv/model.mfi; got ${
        JSON.stringify(model)
      }`,
    );
  }
  const allow = get("MFI_ALLOW_HTTP") ?? "0";
  if (!/^(0|1|true|false)$/i.test(allow)) {
    throw new UsageError(`MFI_ALLOW_HTTP must be 1 or 0; got ${JSON.stringify(allow)}`);
  }
  const backend = get("MFI_BACKEND");
  if (backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backend)) {
    throw new UsageError(
      `MFI_BACKEND must be one of ${BACKEND_NAMES.join(", ")}; got ${JSON.stringify(backend)}`,
    );
  }
  const threads = get("MFI_THREADS") ?? "1";
  positiveInteger("MFI_THREADS", threads);
  const maxBody = get("MFI_MAX_BODY_BYTES");
  const wasmUrl = get("MFI_WASM_URL");
  const software = get("MFI_ALLOW_SOFTWARE_ADAPTER");
  if (software !== undefined && !/^(0|1|true|false)$/i.test(software)) {
    throw new UsageError(
      `MFI_ALLOW_SOFTWARE_ADAPTER must be 1 or 0; got ${JSON.stringify(software)}`,
    );
  }
  return {
    modelUrl,
    ...(wasmUrl !== undefined ? { wasmUrl } : {}),
    ...(maxBody !== undefined
      ? { maxBodyBytes: positiveInteger("MFI_MAX_BODY_BYTES", maxBody) }
      : {}),
    ...(backend !== undefined ? { backend } : {}),
    threads,
    allowHttp: /^(1|true)$/i.test(allow),
    ...(software !== undefined ? { allowSoftwareAdapter: software } : {}),
  };
}

/** A variable's value; unset, empty or not granted by `--allow-env` read as undefined. */
function env(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

async function load(config: DeployConfig): Promise<Handler> {
  let classifier;
  try {
    classifier = await loadClassifier(config.modelUrl, {
      wasm: config.wasmUrl === undefined ? undefined : { paths: config.wasmUrl },
      // Read here, not by selectBackend, so that the thread count defaults to 1 (selectBackend's
      // own default is every core).
      env: {
        MFI_BACKEND: config.backend,
        MFI_THREADS: config.threads,
        MFI_ALLOW_SOFTWARE_ADAPTER: config.allowSoftwareAdapter,
      },
      allowHttp: config.allowHttp,
    });
  } catch (e) {
    // selectBackend names its option; the operator set a variable.
    const message = (e as Error).message;
    if (config.wasmUrl !== undefined && message.includes("wasm.paths")) {
      throw new Error(`MFI_WASM_URL=${config.wasmUrl} does not work: ${message}`, { cause: e });
    }
    throw e;
  }
  return createHandler(classifier, { maxBodyBytes: config.maxBodyBytes });
}

// Loaded at start-up when this is the main module (`deno serve` sets it), so the first request
// does not pay the cold start; merely importing the module (tests, tools) loads nothing. A bad
// setting stops the process with one line (exit 2 for a variable, 1 otherwise).
let handler: Handler | undefined;
if (import.meta.main) {
  parseCliOrExit(SERVE_DEPLOY_CLI);
  try {
    handler = await load(deployConfig(env));
  } catch (e) {
    Deno.exit(reportError(SERVE_DEPLOY_CLI.name, e));
  }
}

/** The `deno serve` entry: `fetch` is the classifier's HTTP handler. */
export default {
  fetch(request: Request): Promise<Response> | Response {
    return handler
      ? handler(request)
      : Response.json({ error: { status: 503, message: "model not loaded" } }, { status: 503 });
  },
} satisfies Deno.ServeDefaultExport;
