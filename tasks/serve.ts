/**
 * `deno task serve --model model.mfi [--port 8080]`: serves a bundle's classifier over HTTP
 * (`POST /classify`, `GET /healthz`, `GET /model`; see `createHandler` in `@mfi/serve`).
 *
 * Permissions: only `--allow-net` (to listen; and to fetch an `http(s):` bundle or WASM binaries)
 * and `--allow-read` of the bundle file (plus the WASM binaries when they are read from disk).
 * No write, env, run, ffi or sys permission is needed, e.g.
 * `deno run --allow-net=127.0.0.1 --allow-read=model.mfi,$WASM_DIR tasks/serve.ts --model model.mfi --backend wasm --threads 1 --wasm-dir $WASM_DIR`.
 *
 * Options:
 * - `--model PATH|URL` (required): the `.mfi` bundle (a path, a `file:` or an `http(s):` URL).
 * - `--port N` (default 8080; 0 picks a free port), `--hostname H` (default 127.0.0.1).
 * - `--max-body-bytes N` (default 5 MiB), `--max-pixels N` (default 25,000,000),
 *   `--max-batch N` (default 32), `--topk K` (default labels per answer, default 5).
 * - `--backend webgpu|wasm|cpu`, `--threads N`, `--wasm-dir DIR|URL` (passed to `selectBackend`).
 *
 * Prints one line `listening on http://HOST:PORT/ (...)` once the first request can be answered
 * (the model is loaded and warmed up); SIGINT/SIGTERM shut down gracefully.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BACKEND_ARG_HELP, BACKEND_ARG_OPTIONS, backendOptionsFromValues } from "@mfi/core";
import { createHandler, loadClassifier } from "@mfi/serve";

const USAGE = "usage: deno task serve --model model.mfi [--port 8080] [--hostname 127.0.0.1] " +
  "[--max-body-bytes N] [--max-pixels N] [--max-batch N] [--topk K] " +
  "[--backend webgpu|wasm|cpu] [--threads N] [--wasm-dir DIR|URL]";

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) {
    throw new RangeError(`--${name} must be a non-negative integer, got "${value}"\n${USAGE}`);
  }
  return Number(value);
}

function isUrl(value: string): boolean {
  return /^(https?|file):\/\//i.test(value);
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      port: { type: "string", default: "8080" },
      hostname: { type: "string", default: "127.0.0.1" },
      "max-body-bytes": { type: "string" },
      "max-pixels": { type: "string" },
      "max-batch": { type: "string" },
      topk: { type: "string" },
      ...BACKEND_ARG_OPTIONS,
      "wasm-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(`${USAGE}\n${BACKEND_ARG_HELP}`);
    return;
  }
  if (!values.model) throw new TypeError(`--model is required\n${USAGE}`);
  const { backend, threads } = backendOptionsFromValues(values);
  const wasmDir = values["wasm-dir"];
  // Paths are read here, not turned into file: URLs: resolving a relative path needs Deno.cwd(),
  // which needs read permission on the working directory.
  const source = isUrl(values.model) ? new URL(values.model) : await Deno.readFile(values.model);
  const classifier = await loadClassifier(source, {
    backend,
    threads,
    wasm: wasmDir === undefined ? undefined : { paths: wasmDir },
    maxBatch: int("max-batch", values["max-batch"]),
    env: {},
  });
  const handler = createHandler(classifier, {
    maxBodyBytes: int("max-body-bytes", values["max-body-bytes"]),
    maxPixels: int("max-pixels", values["max-pixels"]),
    defaultTopK: int("topk", values.topk) ??
      Math.min(5, classifier.info.classNames.length),
  });
  const controller = new AbortController();
  const server = Deno.serve({
    hostname: values.hostname,
    port: int("port", values.port),
    signal: controller.signal,
    onListen({ hostname, port }) {
      const b = classifier.backend;
      const t = classifier.loadTimings;
      console.log(
        `listening on http://${hostname}:${port}/ (model "${classifier.info.name}", ` +
          `${classifier.info.parameters} parameters, backend ${b.name}: ${b.reason}` +
          (b.wasmSource ? `, wasm binary from ${b.wasmSource}` : "") + "; " +
          `ready ${performance.now().toFixed(0)} ms after start; load ${
            t.totalMs.toFixed(0)
          } ms: ` +
          `bundle ${t.bundleMs.toFixed(0)} ms || backend ${t.backendMs.toFixed(0)} ms, ` +
          `model ${t.instantiateMs.toFixed(0)} ms, warm-up ${t.warmUpMs.toFixed(0)} ms)`,
      );
    },
  }, handler);
  const stop = () => controller.abort();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch {
      // Signals are unavailable on some platforms; the server still stops with the process.
    }
  }
  await server.finished;
  classifier.dispose();
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`serve: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
