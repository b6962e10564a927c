/**
 * An HTTP front end for a {@linkcode Classifier}: a `(Request) => Promise<Response>` handler for
 * `Deno.serve`, `deno serve` (`export default { fetch: createHandler(classifier) }`) or any
 * fetch-style runtime. It needs no permission itself.
 *
 * Routes:
 * - `POST /classify[?topk=K]`: body = a PNG or JPEG of any size (recognised by its bytes, whatever
 *   the `Content-Type`), or exactly 3072 raw bytes (32x32 RGB, HWC) sent as
 *   `application/octet-stream`. Answers `{ "predictions": [{ "label", "index", "probability" }],
 *   "input": "png" | "jpeg" | "raw" }`, most probable first.
 * - `GET /healthz`: `{ "status": "ok", "backend", "threads", "numTensors", "numBytes", "batches", "images",
 *   "requests", "errors", "rssBytes", "heapUsedBytes", "uptimeSeconds", "loadTimings" }`.
 * - `GET /model`: the bundle's name, spec, parameter count, recorded accuracy, labels,
 *   normalisation and tensor SHA-256, plus the backend.
 *
 * Every error is a JSON `{ "error": { "status", "message" } }` with a 4xx status for bad
 * requests (404 unknown path, 405 wrong method, 413 body over the limit, 415 not an image, 400
 * corrupt image, bad size or bad `topk`) and 500 for anything unexpected; the handler never
 * throws. The body limit is enforced while the body streams in (a declared `Content-Length` over
 * the limit is refused before reading). Inference is serialised by the classifier's queue, which
 * merges requests that arrive during a forward pass into one micro-batch; image decoding runs on
 * the request's own turn of the event loop, synchronously: a large photo holds up the requests
 * behind it (a 12-megapixel JPEG took 3.1 s to decode and resize on a busy 2-core machine), so
 * `maxPixels` bounds the time one request can take as well as its memory.
 *
 * @module
 */
import { ImageDecodeError, imageToSquareRgb, sniffImageFormat } from "./image.ts";
import { type Classifier, INPUT_BYTES, INPUT_SIZE } from "./classifier.ts";

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  /** Largest accepted request body in bytes (default 5 MiB = 5,242,880). */
  readonly maxBodyBytes?: number;
  /** Largest accepted decoded image, `width * height` (default 25,000,000). */
  readonly maxPixels?: number;
  /** Labels returned when the request has no `topk` (default `min(5, classes)`). */
  readonly defaultTopK?: number;
  /** Called with unexpected errors (status 500); default `console.error`. */
  readonly onError?: (error: unknown, request: Request) => void;
  /**
   * Requests a server in front refused before they reached the handler (e.g. `refused` of
   * `startHttpServer`'s server: timeouts, oversized or malformed requests); counted in
   * `/healthz`'s `requests` and `errors`. Default: none.
   */
  readonly serverRefusals?: () => number;
}

/** A request handler, as `Deno.serve` takes. */
export type Handler = (request: Request) => Promise<Response>;

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: HeadersInit = {}) {
    super(message);
  }
}

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await request.body?.cancel().catch(() => {});
    throw new HttpError(
      413,
      `Request body of ${declared} bytes exceeds the limit of ${limit} bytes`,
    );
  }
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (e) {
      throw new HttpError(400, `Cannot read the request body: ${(e as Error).message}`);
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new HttpError(413, `Request body exceeds the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    body.set(c, pos);
    pos += c.length;
  }
  return body;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`Cannot create handler: ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

/**
 * Creates the HTTP handler of a classifier (routes and errors in the module doc).
 *
 * @param classifier A loaded classifier; the handler never disposes it.
 * @param options Body limit, pixel limit, default top-k, error hook.
 * @returns The handler.
 * @throws {RangeError} On a non-positive limit or an invalid `defaultTopK`.
 * @example
 * ```ts
 * import { buildModel, resnetSpec } from "@mfi/incubation";
 * import { createHandler, loadClassifier, writeBundle } from "@mfi/serve";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 2, 1 / 32);
 * const model = buildModel(spec, { seed: 1 });
 * const bundle = await writeBundle(model, spec, {
 *   classNames: ["cat", "dog"],
 *   normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
 * });
 * disposeModule(model);
 * const classifier = await loadClassifier(bundle, { backend: "cpu" });
 * const handler = createHandler(classifier);
 * // With Deno.serve: Deno.serve({ port: 8080 }, handler)
 * const res = await handler(new Request("http://x/classify?topk=1", {
 *   method: "POST",
 *   headers: { "content-type": "application/octet-stream" },
 *   body: new Uint8Array(32 * 32 * 3),
 * }));
 * assert.equal(res.status, 200);
 * const { predictions } = await res.json();
 * assert.equal(predictions.length, 1);
 * assert.equal((await handler(new Request("http://x/nope"))).status, 404);
 * classifier.dispose();
 * ```
 */
export function createHandler(classifier: Classifier, options: HandlerOptions = {}): Handler {
  const maxBody = positiveInt("maxBodyBytes", options.maxBodyBytes, 5 * 1024 * 1024);
  const maxPixels = positiveInt("maxPixels", options.maxPixels, 25_000_000);
  const classes = classifier.info.classNames.length;
  const defaultTopK = positiveInt("defaultTopK", options.defaultTopK, Math.min(5, classes));
  if (defaultTopK > classes) {
    throw new RangeError(
      `Cannot create handler: defaultTopK ${defaultTopK} exceeds the ${classes} classes`,
    );
  }
  const onError = options.onError ?? ((e: unknown) => console.error("classify server:", e));
  const started = performance.now();
  const refusedByServer = options.serverRefusals ?? (() => 0);
  let requests = 0;
  let errors = 0;

  const info = classifier.info;
  const modelBody = JSON.stringify({
    name: info.name,
    format: info.format,
    spec: info.spec,
    parameters: info.parameters,
    accuracy: info.accuracy,
    classNames: info.classNames,
    normalization: info.normalization,
    tensorSha256: info.tensorSha256,
    input: { width: INPUT_SIZE, height: INPUT_SIZE, channels: 3, accepts: ["png", "jpeg", "raw"] },
    backend: classifier.backend.name,
  });

  function methods(request: Request, allowed: readonly string[]): void {
    if (!allowed.includes(request.method)) {
      throw new HttpError(
        405,
        `Method ${request.method} is not allowed on ${new URL(request.url).pathname}; use ${
          allowed.join(" or ")
        }`,
        { allow: allowed.join(", ") },
      );
    }
  }

  async function classify(request: Request, url: URL): Promise<Response> {
    methods(request, ["POST"]);
    const topkParam = url.searchParams.get("topk");
    let topK = defaultTopK;
    if (topkParam !== null) {
      if (!/^\d+$/.test(topkParam) || Number(topkParam) < 1 || Number(topkParam) > classes) {
        throw new HttpError(400, `topk must be an integer in [1, ${classes}], got "${topkParam}"`);
      }
      topK = Number(topkParam);
    }
    const contentType = (request.headers.get("content-type") ?? "").split(";")[0].trim()
      .toLowerCase();
    const body = await readLimited(request, maxBody);
    if (body.length === 0) {
      throw new HttpError(400, "Empty body: send a PNG or JPEG, or 3072 raw RGB bytes");
    }
    const format = sniffImageFormat(body);
    let pixels: Uint8Array;
    if (format !== undefined) {
      try {
        pixels = imageToSquareRgb(body, { size: INPUT_SIZE, maxPixels });
      } catch (e) {
        if (e instanceof ImageDecodeError) throw new HttpError(400, e.message);
        throw e;
      }
    } else if (contentType === "application/octet-stream") {
      if (body.length !== INPUT_BYTES) {
        throw new HttpError(
          400,
          `Raw input must be exactly ${INPUT_BYTES} bytes (32x32 RGB, row-major, channels last), ` +
            `got ${body.length}`,
        );
      }
      pixels = body;
    } else if (contentType === "image/png" || contentType === "image/jpeg") {
      throw new HttpError(
        400,
        `Body declared as ${contentType} is not a PNG or JPEG (wrong signature): corrupt upload?`,
      );
    } else {
      throw new HttpError(
        415,
        `Unsupported body${contentType ? ` (${contentType})` : ""}: send a PNG or JPEG image, ` +
          `or exactly ${INPUT_BYTES} raw RGB bytes as application/octet-stream`,
      );
    }
    const [predictions] = await classifier.classify([pixels], { topK });
    return json(200, { predictions, input: format ?? "raw" });
  }

  return async (request: Request): Promise<Response> => {
    requests++;
    let url: URL;
    try {
      url = new URL(request.url);
      switch (url.pathname) {
        case "/classify":
          return await classify(request, url);
        case "/healthz": {
          methods(request, ["GET", "HEAD"]);
          const stats = classifier.stats();
          // Deno.memoryUsage needs no permission; other fetch runtimes may lack it.
          const mem = typeof Deno !== "undefined" && Deno.memoryUsage
            ? Deno.memoryUsage()
            : { rss: null, heapUsed: null };
          return json(200, {
            status: "ok",
            backend: classifier.backend.name,
            threads: classifier.backend.threads,
            ...stats,
            requests: requests + refusedByServer(),
            errors: errors + refusedByServer(),
            rssBytes: mem.rss,
            heapUsedBytes: mem.heapUsed,
            uptimeSeconds: (performance.now() - started) / 1000,
            loadTimings: classifier.loadTimings,
          });
        }
        case "/model":
          methods(request, ["GET", "HEAD"]);
          return new Response(modelBody, {
            headers: { "content-type": "application/json; charset=utf-8" },
          });
        default:
          throw new HttpError(
            404,
            `No route ${url.pathname}; use POST /classify, GET /healthz or GET /model`,
          );
      }
    } catch (e) {
      errors++;
      if (e instanceof HttpError) {
        await request.body?.cancel().catch(() => {});
        return json(e.status, { error: { status: e.status, message: e.message } }, e.headers);
      }
      onError(e, request);
      return json(500, { error: { status: 500, message: "Internal error while classifying" } });
    }
  };
}
