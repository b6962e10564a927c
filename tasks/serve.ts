/**
 * `deno task serve --model model.mfi [--port 8080]`: serves a bundle's classifier over HTTP
 * (`POST /classify`, `GET /healthz`, `GET /model`; see `createHandler` in `@mfi/serve`).
 *
 * Permissions: only `--allow-net` for the listening address (and the host of an `https:` bundle
 * or WASM binaries: `--allow-net=127.0.0.1,models.example.com`) and `--allow-read` of the bundle
 * file and the WASM binaries when they are read from disk. No write, env, run, ffi or sys
 * permission is needed. `deno task serve` grants exactly `--allow-net=127.0.0.1:8080` and
 * `--allow-read=model.mfi` plus the WASM binaries; other paths, ports or hosts need a
 * `deno run` line of their own, e.g.
 * `deno run --allow-net=127.0.0.1 --allow-read=model.mfi,$WASM_DIR tasks/serve.ts --model model.mfi --backend wasm --threads 1 --wasm-dir $WASM_DIR`.
 *
 * Options:
 * - `--model PATH|URL` (required): the `.mfi` bundle (a path, a `file:` or an `https:` URL;
 *   a plain `http:` URL only with `--allow-http`).
 * - `--port N` (default 8080; 0 picks a free port), `--hostname H` (default 127.0.0.1).
 * - `--max-body-bytes N` (default 5 MiB), `--max-pixels N` (default 25,000,000),
 *   `--max-batch N` (default 32), `--topk K` (default labels per answer, default 5).
 * - `--header-timeout-ms N` (default 10,000), `--body-timeout-ms N` (default 30,000),
 *   `--idle-timeout-ms N` (default 5,000), `--max-connections N` (default 256): see
 *   `startHttpServer` in `@mfi/serve`; a half-sent request is answered 408 and closed.
 * - `--backend webgpu|wasm|cpu`, `--threads N`, `--wasm-dir DIR|URL` (passed to `selectBackend`).
 *
 * Prints one line `listening on http://HOST:PORT/ (...)` once the first request can be answered
 * (the model is loaded and warmed up); SIGINT/SIGTERM shut down gracefully.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BACKEND_ARG_HELP, BACKEND_ARG_OPTIONS, backendOptionsFromValues } from "./_cli.ts";
import { createHandler, loadClassifier, startHttpServer } from "@mfi/serve";

const USAGE = "usage: deno task serve --model model.mfi [--port 8080] [--hostname 127.0.0.1] " +
  "[--max-body-bytes N] [--max-pixels N] [--max-batch N] [--topk K] [--allow-http] " +
  "[--header-timeout-ms N] [--body-timeout-ms N] [--idle-timeout-ms N] [--max-connections N] " +
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
      "allow-http": { type: "boolean", default: false },
      "header-timeout-ms": { type: "string" },
      "body-timeout-ms": { type: "string" },
      "idle-timeout-ms": { type: "string" },
      "max-connections": { type: "string" },
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
  const { backend, threads, allowSoftwareAdapter } = backendOptionsFromValues(values);
  if (/^http:\/\//i.test(values.model) && !values["allow-http"]) {
    throw new TypeError(
      `--model ${values.model} is plain http:, which anyone on the path can replace; ` +
        `use https: or pass --allow-http`,
    );
  }
  const wasmDir = values["wasm-dir"];
  // Paths are read here, not turned into file: URLs: resolving a relative path needs Deno.cwd(),
  // which needs read permission on the working directory.
  const source = isUrl(values.model) ? new URL(values.model) : await Deno.readFile(values.model);
  const classifier = await loadClassifier(source, {
    backend,
    threads,
    ...(allowSoftwareAdapter ? { allowSoftwareAdapter } : {}),
    wasm: wasmDir === undefined ? undefined : { paths: wasmDir },
    maxBatch: int("max-batch", values["max-batch"]),
    allowHttp: values["allow-http"],
    env: {},
  });
  const maxBodyBytes = int("max-body-bytes", values["max-body-bytes"]);
  // The server is started after the handler; its refusals are counted in /healthz.
  const front = { refused: () => 0 };
  const handler = createHandler(classifier, {
    serverRefusals: () => front.refused(),
    maxBodyBytes,
    maxPixels: int("max-pixels", values["max-pixels"]),
    defaultTopK: int("topk", values.topk) ??
      Math.min(5, classifier.info.classNames.length),
  });
  const controller = new AbortController();
  const running = startHttpServer(handler, {
    hostname: values.hostname,
    port: int("port", values.port),
    maxBodyBytes,
    headerTimeoutMs: int("header-timeout-ms", values["header-timeout-ms"]),
    bodyTimeoutMs: int("body-timeout-ms", values["body-timeout-ms"]),
    idleTimeoutMs: int("idle-timeout-ms", values["idle-timeout-ms"]),
    maxConnections: int("max-connections", values["max-connections"]),
    signal: controller.signal,
    onError: (e) => console.error("serve:", e),
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
  });
  const stop = () => controller.abort();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch {
      // Signals are unavailable on some platforms; the server still stops with the process.
    }
  }
  front.refused = () => running.refused;
  await running.finished;
  classifier.dispose();
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`serve: ${(e as Error).message}`);
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      console.error(
        "serve: `deno task serve` may only read ./model.mfi (and the WASM binaries) and listen on " +
          "127.0.0.1:8080. For another bundle, address or model host, grant exactly those:\n" +
          "  deno run --allow-net=HOST:PORT[,MODEL_HOST] --allow-read=BUNDLE,$(deno run tasks/_wasm_dir.ts) " +
          "tasks/serve.ts --model BUNDLE --hostname HOST --port PORT",
      );
    }
    Deno.exit(1);
  }
}
