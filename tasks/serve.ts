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
 * Options (`--help` lists each with its type, default and an example):
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
import {
  BACKEND_FLAGS,
  backendOptions,
  type CliSpec,
  type FlagSpec,
  type FlagValue,
  reportError,
  runCli,
  UsageError,
} from "./_cli.ts";
import { WASM_THREAD_LIMIT } from "@mfi/core";
import { createHandler, loadClassifier, startHttpServer } from "@mfi/serve";

function positive(doc: string, defaultText: string, example: string): FlagSpec {
  return { type: "integer", min: 1, defaultText, example, doc };
}

/** `deno task serve`'s command line. */
export const SERVE_CLI: CliSpec = {
  name: "serve",
  summary: "serve a bundle's classifier over HTTP: POST /classify, GET /healthz, GET /model",
  usage: "--model model.mfi [options]",
  flags: {
    model: {
      type: "string",
      placeholder: "PATH|URL",
      defaultText: "required",
      example: "model.mfi",
      doc: "the .mfi bundle: a path, a file: or an https: URL (http: only with --allow-http)",
    },
    port: {
      type: "integer",
      min: 0,
      max: 65535,
      default: 8080,
      example: "9000",
      doc: "port to listen on (0 picks a free one)",
    },
    hostname: {
      type: "string",
      placeholder: "HOST",
      default: "127.0.0.1",
      example: "0.0.0.0",
      doc: "address to listen on",
    },
    "max-body-bytes": positive("largest request body", "5 MiB", "1048576"),
    "max-pixels": positive("largest decoded image, in pixels", "25000000", "4000000"),
    "max-batch": positive("most images per forward pass (micro-batching)", "32", "8"),
    topk: positive("labels per answer when ?topk= is absent", "5, at most the classes", "3"),
    "allow-http": {
      type: "boolean",
      default: false,
      doc: "accept a plain http: --model URL (anyone on the path can replace it)",
    },
    "header-timeout-ms": positive("a request's head must arrive within this", "10000", "5000"),
    "body-timeout-ms": positive("a request's body must arrive within this", "30000", "10000"),
    "idle-timeout-ms": positive("close a kept-alive connection idle this long", "5000", "2000"),
    "max-connections": positive("open connections at most (more get 503)", "256", "64"),
    // The server reads no environment: its backend comes from these flags alone.
    backend: {
      ...BACKEND_FLAGS.backend,
      defaultText: "the best available: webgpu on a GPU, wasm, cpu",
    },
    threads: { ...BACKEND_FLAGS.threads, defaultText: `all cores, at most ${WASM_THREAD_LIMIT}` },
    "allow-software-adapter": { ...BACKEND_FLAGS["allow-software-adapter"], defaultText: "off" },
    "wasm-dir": {
      type: "string",
      placeholder: "DIR|URL",
      defaultText: "the installed tfjs-backend-wasm package's",
      example: "/srv/wasm",
      doc: "folder or URL prefix holding tfjs-backend-wasm's .wasm files; one that does not " +
        "work is an error, never a cpu fallback",
    },
  },
  notes: "Permissions: --allow-net for the listening address (and an https: bundle's host), " +
    "--allow-read of the bundle and the WASM binaries; nothing else. `deno task serve` grants " +
    "exactly --allow-net=127.0.0.1:8080 --allow-read=model.mfi,<WASM dir>.",
  examples: [
    "--model model.mfi",
    "--model model.mfi --port 9000 --backend wasm --threads 1",
  ],
};

function isUrl(value: string): boolean {
  return /^(https?|file):\/\//i.test(value);
}

function optional(values: Readonly<Record<string, FlagValue>>, name: string): number | undefined {
  return values[name] as number | undefined;
}

async function main(values: Readonly<Record<string, FlagValue>>): Promise<void> {
  const model = values.model as string | undefined;
  if (model === undefined) {
    throw new UsageError("--model is required, e.g. --model model.mfi");
  }
  const { backend, threads, allowSoftwareAdapter } = backendOptions(values);
  if (/^http:\/\//i.test(model) && values["allow-http"] !== true) {
    throw new UsageError(
      `--model ${model} is plain http:, which anyone on the path can replace; ` +
        `use https: or pass --allow-http`,
    );
  }
  const wasmDir = values["wasm-dir"] as string | undefined;
  // Paths are read here, not turned into file: URLs: resolving a relative path needs Deno.cwd(),
  // which needs read permission on the working directory.
  const source = isUrl(model) ? new URL(model) : await Deno.readFile(model);
  let classifier;
  try {
    classifier = await loadClassifier(source, {
      backend,
      threads,
      ...(allowSoftwareAdapter ? { allowSoftwareAdapter } : {}),
      wasm: wasmDir === undefined ? undefined : { paths: wasmDir },
      maxBatch: optional(values, "max-batch"),
      allowHttp: values["allow-http"] === true,
      env: {},
    });
  } catch (e) {
    // selectBackend names its option; the user gave a flag.
    const message = (e as Error).message;
    if (wasmDir !== undefined && message.includes("wasm.paths")) {
      throw new Error(`--wasm-dir ${wasmDir} does not work: ${message}`, { cause: e });
    }
    throw e;
  }
  const maxBodyBytes = optional(values, "max-body-bytes");
  // The server is started after the handler; its refusals are counted in /healthz.
  const front = { refused: () => 0 };
  const handler = createHandler(classifier, {
    serverRefusals: () => front.refused(),
    maxBodyBytes,
    maxPixels: optional(values, "max-pixels"),
    defaultTopK: optional(values, "topk") ??
      Math.min(5, classifier.info.classNames.length),
  });
  const controller = new AbortController();
  const running = startHttpServer(handler, {
    hostname: values.hostname as string,
    port: values.port as number,
    maxBodyBytes,
    headerTimeoutMs: optional(values, "header-timeout-ms"),
    bodyTimeoutMs: optional(values, "body-timeout-ms"),
    idleTimeoutMs: optional(values, "idle-timeout-ms"),
    maxConnections: optional(values, "max-connections"),
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
  await runCli(SERVE_CLI, async ({ values }) => {
    try {
      await main(values);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied)) {
        throw e;
      }
      reportError("serve", e);
      console.error(
        "serve: `deno task serve` may only read ./model.mfi (and the WASM binaries) and listen on " +
          "127.0.0.1:8080. For another bundle, address or model host, grant exactly those:\n" +
          "  deno run --allow-net=HOST:PORT[,MODEL_HOST] --allow-read=BUNDLE,$(deno run tasks/_wasm_dir.ts) " +
          "tasks/serve.ts --model BUNDLE --hostname HOST --port PORT",
      );
      return 1;
    }
  });
}
