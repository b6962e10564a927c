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
 * - `MFI_ALLOW_SOFTWARE_ADAPTER` (optional, testing only): `1` lets `MFI_BACKEND=webgpu` run on a
 *   software adapter (Mesa's llvmpipe), as `--allow-software-adapter` does for `deno task serve`.
 *
 * ```sh
 * MFI_MODEL_URL=file:///srv/model.mfi deno serve --port 8080 \
 *   --allow-env=MFI_MODEL_URL,MFI_WASM_URL,MFI_MAX_BODY_BYTES,MFI_BACKEND,MFI_THREADS,MFI_ALLOW_HTTP,MFI_ALLOW_SOFTWARE_ADAPTER \
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
import { createHandler, type Handler, loadClassifier } from "@mfi/serve";

/** A variable's value; unset, empty or not granted by `--allow-env` read as undefined. */
function env(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

async function load(): Promise<Handler> {
  const modelUrl = env("MFI_MODEL_URL");
  if (modelUrl === undefined) {
    throw new Error(
      "serve_deploy: set MFI_MODEL_URL to the bundle's file: or https: URL " +
        "(and grant --allow-env=MFI_MODEL_URL)",
    );
  }
  const wasmUrl = env("MFI_WASM_URL");
  const maxBody = env("MFI_MAX_BODY_BYTES");
  const classifier = await loadClassifier(new URL(modelUrl), {
    wasm: wasmUrl === undefined ? undefined : { paths: wasmUrl },
    // Read here, not by selectBackend, so that the thread count defaults to 1 (selectBackend's
    // own default is every core).
    env: {
      MFI_BACKEND: env("MFI_BACKEND"),
      MFI_THREADS: env("MFI_THREADS") ?? "1",
      MFI_ALLOW_SOFTWARE_ADAPTER: env("MFI_ALLOW_SOFTWARE_ADAPTER"),
    },
    allowHttp: env("MFI_ALLOW_HTTP") === "1",
  });
  return createHandler(classifier, {
    maxBodyBytes: maxBody === undefined ? undefined : Number(maxBody),
  });
}

// Loaded at start-up when this is the main module (`deno serve` sets it), so the first request
// does not pay the cold start; merely importing the module (tests, tools) loads nothing.
const handler: Handler | undefined = import.meta.main ? await load() : undefined;

/** The `deno serve` entry: `fetch` is the classifier's HTTP handler. */
export default {
  fetch(request: Request): Promise<Response> | Response {
    return handler
      ? handler(request)
      : Response.json({ error: { status: 503, message: "model not loaded" } }, { status: 503 });
  },
} satisfies Deno.ServeDefaultExport;
