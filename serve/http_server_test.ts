import assert from "node:assert/strict";
import { type HttpServer, startHttpServer } from "./http_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Echoes method, path and body length; `/slow` waits 200 ms first. */
async function echo(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/slow") await new Promise((r) => setTimeout(r, 200));
  const body = new Uint8Array(await req.arrayBuffer());
  return Response.json({ method: req.method, path: url.pathname, bytes: body.length });
}

function start(options: Parameters<typeof startHttpServer>[1] = {}): HttpServer {
  return startHttpServer(echo, { port: 0, ...options });
}

/** A raw TCP client on 127.0.0.1 that can send half a request. */
async function raw(server: HttpServer) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  let received = "";
  let closedAt: number | undefined;
  const reading = (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        closedAt = performance.now();
        return;
      }
      received += decoder.decode(buf.subarray(0, n));
    }
  })();
  return {
    async send(text: string | Uint8Array) {
      await conn.write(typeof text === "string" ? encoder.encode(text) : text);
    },
    /** Waits until the server closes the socket (or `limitMs`); returns ms waited or Infinity. */
    async closed(limitMs: number): Promise<number> {
      const t0 = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        reading,
        new Promise((r) => (timer = setTimeout(r, limitMs))),
      ]);
      clearTimeout(timer);
      return closedAt === undefined ? Infinity : closedAt - t0;
    },
    get received() {
      return received;
    },
    close() {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
    reading,
  };
}

Deno.test("a half-sent request head is answered 408 and its socket closed within the timeout", async () => {
  const server = start({ headerTimeoutMs: 400 });
  try {
    for (
      const partial of [
        "", // connected, sent nothing
        "POST /classify HTTP/1.1\r\nHost: x\r\n", // headers never finished
      ]
    ) {
      const c = await raw(server);
      if (partial) await c.send(partial);
      const waited = await c.closed(5_000);
      assert.ok(waited < 5_000, `socket still open 5 s after sending ${JSON.stringify(partial)}`);
      assert.match(c.received, /^HTTP\/1\.1 408 /);
      c.close();
      await c.reading;
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("a slowloris (one header byte every 50 ms) is cut off at the header deadline", async () => {
  const server = start({ headerTimeoutMs: 500 });
  try {
    const c = await raw(server);
    const t0 = performance.now();
    let stop = false;
    const drip = (async () => {
      const text = "GET /x HTTP/1.1\r\nHost: x\r\nX-Long: " + "a".repeat(1000);
      for (const ch of text) {
        if (stop) return;
        try {
          await c.send(ch);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await c.closed(10_000);
    stop = true;
    await drip;
    const elapsed = performance.now() - t0;
    // Bytes kept arriving, but the deadline counts from the first byte: closed near 500 ms,
    // not after the 50 s the drip would take.
    assert.ok(elapsed < 5_000, `closed after ${elapsed} ms`);
    assert.match(c.received, /^HTTP\/1\.1 408 /);
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("a half-sent body is answered 408 and its socket closed within the body timeout", async () => {
  const server = start({ headerTimeoutMs: 5_000, bodyTimeoutMs: 400 });
  try {
    const c = await raw(server);
    await c.send("POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc");
    const waited = await c.closed(5_000);
    assert.ok(waited < 5_000, "socket still open 5 s after half a body");
    assert.match(c.received, /^HTTP\/1\.1 408 [\s\S]*Request body did not arrive within 400 ms/);
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("an idle kept-alive connection is closed after the idle timeout", async () => {
  const server = start({ idleTimeoutMs: 300, headerTimeoutMs: 5_000 });
  try {
    const c = await raw(server);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    const waited = await c.closed(5_000);
    assert.ok(waited < 5_000);
    assert.match(c.received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(c.received, /connection: keep-alive/);
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("keep-alive, pipelining, HEAD and Expect: 100-continue work", async () => {
  const server = start();
  try {
    const c = await raw(server);
    await c.send(
      "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
        "GET /two HTTP/1.1\r\nHost: x\r\n\r\n" +
        "HEAD /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    await c.closed(5_000);
    const answers = c.received.split("HTTP/1.1 200 OK").slice(1);
    assert.equal(answers.length, 3, c.received);
    assert.match(answers[0], /"path":"\/one","bytes":3/);
    assert.match(answers[1], /"path":"\/two","bytes":0/);
    assert.match(answers[2], /connection: close\r\n\r\n$/); // HEAD: no body
    c.close();

    const d = await raw(server);
    await d.send(
      "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    for (let i = 0; i < 100 && !d.received.includes("100 Continue"); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(d.received, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    await d.send("wxyz");
    for (let i = 0; i < 100 && !d.received.includes("bytes"); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(d.received, /"bytes":4/);
    d.close();
    await d.reading;

    // Chunked bodies, with an extension and a trailer.
    const e = await raw(server);
    await e.send(
      "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    await e.closed(5_000);
    assert.match(e.received, /"path":"\/chunked","bytes":5/);
    e.close();

    // An ordinary client (fetch, with keep-alive) gets the same answers, streamed bodies too.
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new Uint8Array(1000));
        c.close();
      },
    });
    const streamed = await fetch(`http://127.0.0.1:${server.addr.port}/s`, {
      method: "POST",
      body: stream,
    });
    assert.deepEqual(await streamed.json(), { method: "POST", path: "/s", bytes: 4000 });
    const large = await fetch(`http://127.0.0.1:${server.addr.port}/large`, {
      method: "POST",
      body: new Uint8Array(2_000_000).fill(7),
    });
    assert.deepEqual(await large.json(), { method: "POST", path: "/large", bytes: 2_000_000 });
    const base = `http://127.0.0.1:${server.addr.port}`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/f${i}`, { method: "POST", body: new Uint8Array(10 * i) });
      assert.deepEqual(await res.json(), { method: "POST", path: `/f${i}`, bytes: 10 * i });
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("malformed, oversized and unsupported requests are refused, not interpreted", async () => {
  const server = start({ maxHeaderBytes: 1024, maxBodyBytes: 100 });
  // A client that keeps sending an over-limit body still reads the 413 (no reset).
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/big`, {
      method: "POST",
      body: new Uint8Array(1_000_000),
    });
    assert.equal(res.status, 413);
    assert.match((await res.json()).error.message, /1000000 bytes exceeds the limit of 100/);
  }
  const cases: [string, RegExp][] = [
    ["GARBAGE\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*Malformed request line/],
    ["GET /a HTTP/2.0\r\n\r\n", /^HTTP\/1\.1 505 /],
    ["GET http://evil/ HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*must be a path/],
    ["GET /a HTTP/1.1\r\nBad Header: x\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*Malformed header/],
    ["GET /a HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*Malformed header/],
    ["POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", /^HTTP\/1\.1 501 /],
    [
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
      /^HTTP\/1\.1 400 [\s\S]*both Transfer-Encoding and Content-Length/,
    ],
    [
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      /^HTTP\/1\.1 400 [\s\S]*Malformed chunk size/,
    ],
    [
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
      /^HTTP\/1\.1 400 [\s\S]*not followed by CRLF/,
    ],
    [
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + "40\r\n" + "a".repeat(64) +
      "\r\n" +
      "40\r\n" + "a".repeat(64) + "\r\n",
      /^HTTP\/1\.1 413 [\s\S]*exceeds the limit of 100 bytes/,
    ],
    ["POST /a HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*Content-Length/],
    ["POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*Content-Length/],
    [
      "POST /a HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n",
      /^HTTP\/1\.1 413 [\s\S]*exceeds the limit of 100 bytes/,
    ],
    ["GET /a HTTP/1.1\r\nX: " + "a".repeat(2000) + "\r\n\r\n", /^HTTP\/1\.1 431 /],
    ["GET /a HTTP/1.1\r\nX: " + "a".repeat(2000), /^HTTP\/1\.1 431 /], // never ends
    ["GET /a HTTP/1.1\r\nExpect: teapot\r\n\r\n", /^HTTP\/1\.1 417 /],
    ["CONNECT /a HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /],
  ];
  try {
    for (const [text, expected] of cases) {
      const c = await raw(server);
      await c.send(text);
      const waited = await c.closed(5_000);
      assert.ok(waited < 5_000, `still open: ${JSON.stringify(text.slice(0, 40))}`);
      assert.match(c.received, expected, JSON.stringify(text.slice(0, 60)));
      c.close();
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("connections over the limit get 503; shutdown closes idle ones and finishes", async () => {
  const server = start({ maxConnections: 2, headerTimeoutMs: 60_000 });
  const a = await raw(server);
  const b = await raw(server);
  await a.send("GET /a HTTP/1.1\r\n"); // both hold a slot
  await b.send("GET /b HTTP/1.1\r\n");
  await new Promise((r) => setTimeout(r, 100));
  const c = await raw(server);
  assert.ok(await c.closed(5_000) < 5_000);
  assert.match(c.received, /^HTTP\/1\.1 503 [\s\S]*Too many connections \(limit 2\)/);
  c.close();
  // A request in flight during shutdown still gets its answer.
  const d = await raw(server).catch(() => undefined);
  d?.close();
  a.close();
  b.close();
  await new Promise((r) => setTimeout(r, 100));
  const e = await raw(server);
  await e.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await new Promise((r) => setTimeout(r, 50));
  await server.shutdown();
  await e.closed(5_000);
  assert.match(e.received, /^HTTP\/1\.1 200 OK[\s\S]*connection: close[\s\S]*"path":"\/slow"/);
  e.close();
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
});

Deno.test("a throwing handler is answered 500 and reported; bad options are refused", async () => {
  const errors: unknown[] = [];
  const server = startHttpServer(() => {
    throw new Error("boom");
  }, { port: 0, onError: (e) => errors.push(e) });
  try {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), {
      error: { status: 500, message: "Internal server error" },
    });
    assert.equal((errors[0] as Error).message, "boom");
  } finally {
    await server.shutdown();
  }
  assert.throws(
    () => startHttpServer(echo, { port: 0, headerTimeoutMs: 0 }),
    /headerTimeoutMs must be a positive integer, got 0/,
  );
});
