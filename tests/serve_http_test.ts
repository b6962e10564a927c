/**
 * End-to-end tests of `tasks/serve.ts`: the server runs as a subprocess on 127.0.0.1 with only
 * `--allow-net=127.0.0.1` and `--allow-read` of the bundle and the WASM binaries, on the WASM
 * backend, and answers good and bad requests.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { Rng } from "@mfi/core";
import { CIFAR_CLASS_NAMES } from "@mfi/data";
import type { StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { imageToSquareRgb, loadClassifier, writeBundle } from "@mfi/serve";
import { startServer, wasmDir } from "../tasks/_serve_process.ts";

await tf.setBackend("cpu");

const CLASSES = CIFAR_CLASS_NAMES.cifar10;

async function tinyBundle(dir: string): Promise<{ path: string; bytes: Uint8Array }> {
  const spec = resnetSpec("resnet18", 10, 1 / 16);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 11 });
  });
  const bytes = await writeBundle(model, spec, {
    classNames: CLASSES,
    normalization: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
    accuracy: { top1: 0.1, dataset: "cifar10", split: "test", examples: 10000 },
  });
  for (const [, v] of model.namedVariables()) v.dispose();
  const path = `${dir}/tiny.mfi`;
  await Deno.writeFile(path, bytes);
  return { path, bytes };
}

function noisyRgba(width: number, height: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = i % 4 === 3 ? 255 : rng.int(256);
  return data;
}

async function post(
  url: string,
  body: BodyInit,
  contentType?: string,
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    body,
    headers: contentType ? { "content-type": contentType } : {},
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

async function get(url: string, method = "GET") {
  const res = await fetch(url, { method });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

Deno.test("serve: a sandboxed server classifies PNG, JPEG and raw bytes and rejects bad requests", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-serve-" });
  const { path, bytes } = await tinyBundle(dir);
  const server = await startServer({
    model: path,
    args: [
      "--backend",
      "wasm",
      "--threads",
      "1",
      "--wasm-dir",
      wasmDir(),
      "--max-body-bytes",
      "200000",
    ],
  });
  const reference = await loadClassifier(bytes, { backend: "cpu" });
  try {
    const base = server.base;
    const health0 = await get(`${base}/healthz`);
    assert.equal(health0.status, 200);
    assert.equal(health0.json.status, "ok");
    assert.equal(health0.json.backend, "wasm");
    const tensors0 = health0.json.numTensors as number;

    const model = await get(`${base}/model`);
    assert.equal(model.status, 200);
    assert.equal(model.json.parameters, reference.info.parameters);
    assert.deepEqual(model.json.classNames, CLASSES);
    assert.deepEqual(model.json.accuracy, reference.info.accuracy);
    assert.equal((model.json.spec as { arch: string }).arch, "resnet18");

    // PNG of another size and RGBA, sent with a misleading content type: sniffed by content.
    const png = new Uint8Array(
      encodePng({ width: 48, height: 40, data: noisyRgba(48, 40, 1), channels: 4 }),
    );
    const r1 = await post(`${base}/classify?topk=3`, png, "text/plain");
    assert.equal(r1.status, 200, JSON.stringify(r1.json));
    assert.equal(r1.json.input, "png");
    const preds = r1.json.predictions as Array<
      { label: string; index: number; probability: number }
    >;
    assert.equal(preds.length, 3);
    const [expected] = await reference.classify([imageToSquareRgb(png)], { topK: 3 });
    assert.deepEqual(preds.map((p) => p.label), expected.map((p) => p.label));
    for (let k = 0; k < 3; k++) {
      assert.ok(
        Math.abs(preds[k].probability - expected[k].probability) < 1e-4,
        "wasm matches cpu",
      );
      assert.equal(preds[k].label, CLASSES[preds[k].index]);
    }

    const jpg = jpeg.encode({ width: 64, height: 64, data: noisyRgba(64, 64, 2) }, 90).data;
    const r2 = await post(`${base}/classify`, new Uint8Array(jpg), "image/jpeg");
    assert.equal(r2.status, 200);
    assert.equal(r2.json.input, "jpeg");
    assert.equal((r2.json.predictions as unknown[]).length, 5, "default top-5");

    const raw = new Uint8Array(3072).fill(90);
    const r3 = await post(`${base}/classify?topk=10`, raw, "application/octet-stream");
    assert.equal(r3.status, 200);
    const probs = (r3.json.predictions as Array<{ probability: number }>).map((p) => p.probability);
    assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-4);

    // Bad requests: each a 4xx JSON error naming the problem.
    const bad: Array<[Promise<{ status: number; json: Record<string, unknown> }>, number, RegExp]> =
      [
        [
          post(`${base}/classify`, raw.subarray(0, 3071), "application/octet-stream"),
          400,
          /exactly 3072/,
        ],
        [post(`${base}/classify`, "hello", "text/plain"), 415, /PNG or JPEG/],
        [
          post(`${base}/classify`, new Uint8Array([71, 73, 70, 56, 57, 97]), "image/gif"),
          415,
          /image\/gif/,
        ],
        [
          post(`${base}/classify`, png.slice(0, png.length - 30), "image/png"),
          400,
          /Cannot decode png/,
        ],
        [
          post(`${base}/classify`, new Uint8Array([1, 2, 3, 4]), "image/png"),
          400,
          /not a PNG or JPEG/,
        ],
        [
          post(`${base}/classify`, new Uint8Array(0), "application/octet-stream"),
          400,
          /Empty body/,
        ],
        [post(`${base}/classify?topk=0`, raw, "application/octet-stream"), 400, /topk/],
        [post(`${base}/classify?topk=11`, raw, "application/octet-stream"), 400, /\[1, 10\]/],
        [post(`${base}/classify?topk=abc`, raw, "application/octet-stream"), 400, /topk/],
        [get(`${base}/classify`), 405, /POST/],
        [post(`${base}/healthz`, "x"), 405, /GET/],
        [get(`${base}/nope`), 404, /No route \/nope/],
        // Over the 200,000-byte limit: declared by Content-Length, and streamed without one.
        [
          post(`${base}/classify`, new Uint8Array(200_001), "application/octet-stream"),
          413,
          /limit of 200000/,
        ],
        [
          post(
            `${base}/classify`,
            new ReadableStream({
              start(c) {
                for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(50_000));
                c.close();
              },
            }),
            "application/octet-stream",
          ),
          413,
          /exceeds the limit/,
        ],
      ];
    for (const [request, status, message] of bad) {
      const r = await request;
      assert.equal(r.status, status, JSON.stringify(r.json));
      const err = r.json.error as { status: number; message: string };
      assert.equal(err.status, status);
      assert.match(err.message, message);
    }
    const allow = await fetch(`${base}/classify`, { method: "PUT", body: "x" });
    assert.equal(allow.headers.get("allow"), "POST");
    await allow.body?.cancel();

    // Concurrent requests, then the tensor count is what it was after warm-up.
    const answers = await Promise.all(
      Array.from({ length: 16 }, () => post(`${base}/classify`, png, "image/png")),
    );
    assert.ok(answers.every((a) => a.status === 200));
    const health1 = await get(`${base}/healthz`);
    assert.equal(health1.json.numTensors, tensors0, "no tensor leaks across requests");
    assert.ok((health1.json.images as number) >= 19);
    assert.ok((health1.json.errors as number) >= bad.length);
  } finally {
    reference.dispose();
    const code = await server.close();
    await Deno.remove(dir, { recursive: true });
    assert.doesNotMatch(server.output(), /NotCapable|PermissionDenied|Uncaught/);
    assert.equal(code, 0, `clean shutdown on SIGTERM; output:\n${server.output()}`);
  }
});

Deno.test("serve: without read permission for the bundle the server refuses to start, clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-serve-" });
  const { path } = await tinyBundle(dir);
  try {
    await assert.rejects(
      startServer({ model: path, permissions: ["--allow-net=127.0.0.1"] }),
      /exit 1[\s\S]*serve: .*(read|Requires)/i,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: with bundle and WASM binaries fetched over http, no read permission at all", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-serve-" });
  const { bytes } = await tinyBundle(dir);
  const wasm = await Deno.readFile(`${wasmDir()}/tfjs-backend-wasm-simd.wasm`);
  const files = new Map<string, Uint8Array>([
    ["/m.mfi", bytes],
    ["/wasm/tfjs-backend-wasm-simd.wasm", wasm],
  ]);
  const origin = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const body = files.get(new URL(req.url).pathname);
    return body
      ? new Response(body.slice(), { headers: { "content-type": "application/wasm" } })
      : new Response("not found", { status: 404 });
  });
  const base = `http://127.0.0.1:${origin.addr.port}`;
  const server = await startServer({
    model: `${base}/m.mfi`,
    permissions: ["--allow-net=127.0.0.1"],
    args: ["--backend", "wasm", "--threads", "1", "--wasm-dir", `${base}/wasm/`, "--allow-http"],
  });
  try {
    const health = await get(`${server.base}/healthz`);
    assert.equal(health.json.backend, "wasm");
    assert.match(server.output(), new RegExp(`wasm binary from ${base}/wasm/`));
    const r = await post(
      `${server.base}/classify`,
      new Uint8Array(3072),
      "application/octet-stream",
    );
    assert.equal(r.status, 200);
  } finally {
    await server.close();
    await origin.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Connects to the server, sends `text`, and returns what came back and when the socket closed. */
async function halfRequest(
  base: string,
  text: string,
  limitMs: number,
): Promise<{ received: string; closedAfterMs: number }> {
  const { hostname, port } = new URL(base);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const t0 = performance.now();
  if (text) await conn.write(new TextEncoder().encode(text));
  let received = "";
  const buf = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<null>((r) => (timer = setTimeout(() => r(null), limitMs)));
  for (;;) {
    const n = await Promise.race([conn.read(buf).catch(() => null), deadline]);
    if (n === null) break;
    received += new TextDecoder().decode(buf.subarray(0, n));
  }
  clearTimeout(timer);
  const closedAfterMs = performance.now() - t0;
  try {
    conn.close();
  } catch {
    // closed by the server
  }
  return { received, closedAfterMs };
}

Deno.test("serve: half-sent requests are answered 408 and their sockets closed (raw TCP)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-serve-" });
  const { path } = await tinyBundle(dir);
  const server = await startServer({
    model: path,
    args: [
      "--backend",
      "wasm",
      "--threads",
      "1",
      "--wasm-dir",
      wasmDir(),
      "--header-timeout-ms",
      "500",
      "--body-timeout-ms",
      "500",
    ],
  });
  try {
    const cases = [
      "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n",
      "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3072\r\n\r\n" +
      "x".repeat(100),
    ];
    for (const text of cases) {
      // 10 s is far past the 500 ms timeout and far below "forever" (the old server never closed).
      const { received, closedAfterMs } = await halfRequest(server.base, text, 10_000);
      assert.ok(closedAfterMs < 10_000, `socket still open after 10 s: ${JSON.stringify(text)}`);
      assert.match(received, /^HTTP\/1\.1 408 /);
    }
    // The server still answers normally afterwards.
    assert.equal((await get(`${server.base}/healthz`)).status, 200);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a plain http: model URL is refused without --allow-http", async () => {
  await assert.rejects(
    startServer({
      model: "http://127.0.0.1:9/m.mfi",
      permissions: ["--allow-net=127.0.0.1"],
      args: ["--backend", "cpu"],
      timeoutMs: 30_000,
    }),
    /plain http:.*use https: or pass --allow-http/,
  );
});

Deno.test("serve: a --wasm-dir that does not work is an error naming the flag, never a cpu fallback", async () => {
  const empty = await Deno.makeTempDir({ prefix: "mfi-no-wasm-" });
  const model = new URL("../model.mfi", import.meta.url).pathname;
  try {
    // No --backend: the automatic choice used to fall back to cpu when the binaries were missing.
    await assert.rejects(
      startServer({
        model,
        permissions: ["--allow-net=127.0.0.1", `--allow-read=${model},${empty}`],
        args: ["--wasm-dir", empty],
        timeoutMs: 60_000,
      }),
      new RegExp(`exit 1\\):\\nserve: --wasm-dir ${empty} does not work: .*tfjs-backend-wasm`),
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
