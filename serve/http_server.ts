/**
 * A small HTTP/1.1 server for a fetch-style handler that holds no socket longer than its
 * deadlines allow. `Deno.serve` has no header or body read timeout: a client that sends half a
 * request keeps its socket (and a file descriptor) forever, and a few thousand such clients
 * exhaust the process. This server reads each request itself, under deadlines:
 *
 * - **header timeout**: the request line and headers must arrive within `headerTimeoutMs` of the
 *   request's first byte (of the connection, for the first request), however slowly they trickle;
 * - **body timeout**: a `Content-Length` body must arrive within `bodyTimeoutMs` of the headers;
 * - **idle timeout**: a kept-alive connection with no new request for `idleTimeoutMs` is closed.
 *
 * A request that misses its deadline gets `408` and its connection is closed. Requests are
 * parsed strictly and anything unusual is refused rather than interpreted: heads over
 * `maxHeaderBytes` (`431`), transfer codings other than `chunked` (`501`), both
 * `Transfer-Encoding` and `Content-Length`, conflicting or malformed `Content-Length`, malformed
 * chunks and folded or malformed header lines (`400`), bodies over `maxBodyBytes` (`413`: a
 * declared length before reading, a chunked body as soon as it passes the limit), HTTP versions
 * other than 1.0/1.1 (`505`). After an error answer the server stops writing, discards what the
 * client still sends for up to a second (so the client reads the answer instead of a reset),
 * then closes.
 * Connections beyond `maxConnections` get `503`. Keep-alive, pipelining and
 * `Expect: 100-continue` (as `curl` sends for large uploads) are supported. Responses are
 * buffered and sent with `Content-Length` (the classifier's answers are small JSON).
 *
 * It is meant for serving a model on a host or behind a proxy (`deno task serve`); platforms
 * that run `deno serve` (`tasks/serve_deploy.ts`) apply their own front-end limits.
 *
 * @module
 */

/** A fetch-style request handler. */
export type FetchHandler = (request: Request) => Promise<Response> | Response;

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  /** Interface to listen on (default `"127.0.0.1"`). */
  readonly hostname?: string;
  /** Port (default 8080; 0 picks a free one). */
  readonly port?: number;
  /** Deadline for a request's line and headers, from its first byte (default 10,000 ms). */
  readonly headerTimeoutMs?: number;
  /** Deadline for a request's body, from the end of its headers (default 30,000 ms). */
  readonly bodyTimeoutMs?: number;
  /** How long a kept-alive connection may wait for its next request (default 5,000 ms). */
  readonly idleTimeoutMs?: number;
  /** Largest request line plus headers in bytes (default 16,384). */
  readonly maxHeaderBytes?: number;
  /** Largest request body in bytes (default 5 MiB = 5,242,880). */
  readonly maxBodyBytes?: number;
  /** Most simultaneous connections (default 256). */
  readonly maxConnections?: number;
  /** Aborting it stops accepting, closes idle connections and lets in-flight requests finish. */
  readonly signal?: AbortSignal;
  /** Called once listening, with the bound address. */
  readonly onListen?: (addr: { hostname: string; port: number }) => void;
  /** Called with errors of the handler (answered 500) or of a connection; default none. */
  readonly onError?: (error: unknown) => void;
}

/** A running server. */
export interface HttpServer {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Requests the server answered itself with an error (408, 4xx, 503) so far. */
  readonly refused: number;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes idle connections, lets in-flight requests finish.
   *
   * @returns Resolves as `finished` does.
   */
  shutdown(): Promise<void>;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOP_BY_HOP = new Set(["connection", "content-length", "keep-alive", "transfer-encoding"]);
const encoder = new TextEncoder();

/** A request the connection loop refuses itself; `close` says whether to drop the connection. */
class ProtocolError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`Cannot start server: ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

function errorBytes(status: number, message: string, keepAlive = false): Uint8Array {
  const body = encoder.encode(JSON.stringify({ error: { status, message } }));
  const head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ""}\r\n` +
    `content-type: application/json; charset=utf-8\r\ncontent-length: ${body.length}\r\n` +
    `connection: ${keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
  return concat(encoder.encode(head), body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Index of the blank line ending a request head, or -1. */
function headEnd(buf: Uint8Array): number {
  for (let i = 3; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

interface Head {
  readonly method: string;
  readonly target: string;
  readonly minor: number;
  readonly headers: Headers;
  /** The declared `Content-Length` (0 when absent); ignored when `chunked`. */
  readonly length: number;
  /** True for `Transfer-Encoding: chunked`. */
  readonly chunked: boolean;
}

/** Bytes as a string of one code unit per byte (Latin-1), in slices to bound argument counts. */
function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

/** True if a header value holds a control character other than tab. */
function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return true;
  }
  return false;
}

function parseHead(bytes: Uint8Array): Head {
  // Latin-1: every byte maps to one code unit, so nothing is lost or merged.
  const lines = latin1(bytes).split("\r\n").slice(0, -2);
  const m = /^([A-Z]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(lines[0] ?? "");
  if (!m) throw new ProtocolError(400, `Malformed request line ${JSON.stringify(lines[0])}`);
  const [, method, target, major, minor] = m;
  if (major !== "1" || (minor !== "0" && minor !== "1")) {
    throw new ProtocolError(505, `HTTP/${major}.${minor} is not supported; use HTTP/1.1`);
  }
  if (!target.startsWith("/")) {
    throw new ProtocolError(400, `Request target must be a path starting with "/"`);
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (colon < 1 || !TOKEN.test(name) || hasControl(value)) {
      throw new ProtocolError(400, `Malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    }
    headers.append(name, value);
  }
  const encoding = headers.get("transfer-encoding");
  const declared = headers.get("content-length");
  if (encoding !== null) {
    if (encoding.toLowerCase() !== "chunked") {
      throw new ProtocolError(
        501,
        `Transfer-Encoding ${JSON.stringify(encoding)} is not supported; send chunked or ` +
          "Content-Length",
      );
    }
    if (declared !== null) {
      // Both framings at once is how request smuggling starts: refuse rather than pick one.
      throw new ProtocolError(400, "Request has both Transfer-Encoding and Content-Length");
    }
    if (minor !== "1") throw new ProtocolError(400, "Chunked bodies need HTTP/1.1");
  }
  let length = 0;
  if (declared !== null) {
    const values = new Set(declared.split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(only)) {
      throw new ProtocolError(400, `Malformed Content-Length ${JSON.stringify(declared)}`);
    }
    length = Number(only);
  }
  return { method, target, minor: Number(minor), headers, length, chunked: encoding !== null };
}

function keepAliveOf(head: Head): boolean {
  const tokens = (head.headers.get("connection") ?? "").toLowerCase().split(",").map((t) =>
    t.trim()
  );
  return head.minor === 1 ? !tokens.includes("close") : tokens.includes("keep-alive");
}

async function responseBytes(res: Response, head: Head, keepAlive: boolean): Promise<Uint8Array> {
  const body = new Uint8Array(await res.arrayBuffer());
  let text = `HTTP/1.1 ${res.status} ${res.statusText || STATUS_TEXT[res.status] || ""}\r\n`;
  for (const [k, v] of res.headers) {
    if (!HOP_BY_HOP.has(k)) text += `${k}: ${v}\r\n`;
  }
  text += `content-length: ${body.length}\r\nconnection: ${keepAlive ? "keep-alive" : "close"}` +
    "\r\n\r\n";
  return head.method === "HEAD" ? encoder.encode(text) : concat(encoder.encode(text), body);
}

/**
 * Starts the server (see the module doc for its deadlines and limits).
 *
 * @param handler Answers each request; a throw or rejection is answered 500.
 * @param options Address, deadlines, limits, stop signal.
 * @returns The running server.
 * @throws {RangeError} On a non-positive deadline or limit.
 * @throws {Deno.errors.AddrInUse | Deno.errors.PermissionDenied} If it cannot listen.
 * @example
 * ```ts
 * import { startHttpServer } from "@mfi/serve";
 * import assert from "node:assert/strict";
 * const server = startHttpServer(() => new Response("hi"), { port: 0, headerTimeoutMs: 2_000 });
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assert.equal(await res.text(), "hi");
 * await server.shutdown();
 * ```
 */
export function startHttpServer(
  handler: FetchHandler,
  options: HttpServerOptions = {},
): HttpServer {
  const headerTimeout = positive("headerTimeoutMs", options.headerTimeoutMs, 10_000);
  const bodyTimeout = positive("bodyTimeoutMs", options.bodyTimeoutMs, 30_000);
  const idleTimeout = positive("idleTimeoutMs", options.idleTimeoutMs, 5_000);
  const maxHeader = positive("maxHeaderBytes", options.maxHeaderBytes, 16_384);
  const maxBody = positive("maxBodyBytes", options.maxBodyBytes, 5 * 1024 * 1024);
  const maxConnections = positive("maxConnections", options.maxConnections, 256);
  const onError = options.onError ?? (() => {});
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8080,
    transport: "tcp",
  });
  const addr = listener.addr as Deno.NetAddr;
  const origin = `http://${
    addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
  }:${addr.port}`;
  /** Open connections and whether each is waiting for a request (safe to close on shutdown). */
  const open = new Map<Deno.Conn, { idle: boolean; close: () => void }>();
  let stopping = false;
  let refused = 0;

  async function serveConn(conn: Deno.Conn): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // already closed by the peer
      }
    };
    const state = { idle: true, close };
    open.set(conn, state);
    const send = async (bytes: Uint8Array): Promise<boolean> => {
      try {
        for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
        return true;
      } catch {
        return false;
      }
    };
    /** Arms the one deadline of this connection: on expiry, answer 408 (if asked) and close. */
    const deadline = (ms: number, message: string | null) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (message === null) return close();
        refused++;
        void send(errorBytes(408, message)).finally(close);
      }, ms);
    };
    const fill = async (): Promise<boolean> => {
      const chunk = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        return false;
      }
      if (n === null || closed) return false;
      buf = concat(buf, chunk.slice(0, n));
      return true;
    };
    /** The next CRLF-terminated line of the buffer (Latin-1), or null if the peer is gone. */
    const readLine = async (limit: number): Promise<string | null> => {
      for (;;) {
        const i = buf.findIndex((b, k) => b === 13 && buf[k + 1] === 10);
        if (i >= 0) {
          const line = latin1(buf.subarray(0, i));
          buf = buf.slice(i + 2);
          return line;
        }
        if (buf.length > limit) {
          throw new ProtocolError(400, "Malformed chunked body: line too long");
        }
        if (!await fill()) return null;
      }
    };
    /** A `chunked` body, refused with 413 as soon as it passes the limit. */
    const readChunked = async (): Promise<Uint8Array<ArrayBuffer> | null> => {
      const parts: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const line = await readLine(1024);
        if (line === null) return null;
        const m = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?$/.exec(line);
        if (!m) {
          throw new ProtocolError(400, `Malformed chunk size ${JSON.stringify(line.slice(0, 40))}`);
        }
        const size = parseInt(m[1], 16);
        if (size === 0) break;
        total += size;
        if (total > maxBody) {
          throw new ProtocolError(413, `Request body exceeds the limit of ${maxBody} bytes`);
        }
        while (buf.length < size + 2) if (!await fill()) return null;
        if (buf[size] !== 13 || buf[size + 1] !== 10) {
          throw new ProtocolError(400, "Malformed chunked body: chunk data not followed by CRLF");
        }
        parts.push(buf.slice(0, size));
        buf = buf.slice(size + 2);
      }
      // Trailer fields, up to the blank line (read and dropped).
      let trailers = 0;
      for (;;) {
        const line = await readLine(maxHeader);
        if (line === null) return null;
        if (line === "") break;
        trailers += line.length + 2;
        if (trailers > maxHeader) throw new ProtocolError(431, "Chunked trailers too large");
      }
      const body = new Uint8Array(total);
      let pos = 0;
      for (const p of parts) {
        body.set(p, pos);
        pos += p.length;
      }
      return body;
    };
    /** Answers an error, stops writing, discards input for up to a second, then closes. */
    const refuse = async (status: number, message: string) => {
      refused++;
      if (!await send(errorBytes(status, message))) return;
      try {
        await conn.closeWrite();
      } catch {
        return;
      }
      deadline(1_000, null);
      let drained = 0;
      const chunk = new Uint8Array(64 * 1024);
      while (!closed && drained < 4 * maxBody) {
        let n: number | null;
        try {
          n = await conn.read(chunk);
        } catch {
          break;
        }
        if (n === null) break;
        drained += n;
      }
    };
    let first = true;
    try {
      while (!closed && !stopping) {
        // 1. The head: idle deadline until a byte arrives (header deadline for the first
        //    request), then the header deadline from that byte.
        state.idle = buf.length === 0;
        if (buf.length === 0) {
          deadline(first ? headerTimeout : idleTimeout, first ? "Request headers too slow" : null);
          if (!await fill()) break;
          state.idle = false;
        }
        deadline(
          headerTimeout,
          `Request line and headers did not arrive within ${headerTimeout} ms`,
        );
        let end = headEnd(buf);
        while (end < 0) {
          if (buf.length > maxHeader) {
            throw new ProtocolError(431, `Request head exceeds ${maxHeader} bytes`);
          }
          if (!await fill()) return;
          end = headEnd(buf);
        }
        if (end > maxHeader) {
          throw new ProtocolError(431, `Request head exceeds ${maxHeader} bytes`);
        }
        const head = parseHead(buf.subarray(0, end));
        buf = buf.slice(end);
        // 2. The body, after the limit check (nothing over the limit is read).
        if (head.length > maxBody) {
          throw new ProtocolError(
            413,
            `Request body of ${head.length} bytes exceeds the limit of ${maxBody} bytes`,
          );
        }
        const expect = head.headers.get("expect");
        if (expect !== null) {
          if (expect.toLowerCase() !== "100-continue") {
            throw new ProtocolError(417, `Unsupported Expect ${JSON.stringify(expect)}`);
          }
          const waiting = head.chunked || head.length > buf.length;
          if (waiting && !await send(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"))) return;
        }
        deadline(bodyTimeout, `Request body did not arrive within ${bodyTimeout} ms`);
        let body: Uint8Array<ArrayBuffer>;
        if (head.chunked) {
          const read = await readChunked();
          if (read === null) return;
          body = read;
        } else {
          // Read straight into the body's buffer (no re-copying per read).
          body = new Uint8Array(head.length);
          const have = Math.min(buf.length, head.length);
          body.set(buf.subarray(0, have));
          buf = buf.slice(have);
          for (let pos = have; pos < head.length;) {
            let n: number | null;
            try {
              n = await conn.read(body.subarray(pos));
            } catch {
              n = null;
            }
            if (n === null || closed) return;
            pos += n;
          }
        }
        clearTimeout(timer);
        // 3. The handler (no deadline: inference takes what it takes), then the answer.
        let res: Response;
        try {
          const hasBody = head.method !== "GET" && head.method !== "HEAD" && body.length > 0;
          const request = new Request(origin + head.target, {
            method: head.method,
            headers: head.headers,
            body: hasBody ? body : undefined,
          });
          res = await handler(request);
        } catch (e) {
          if (e instanceof TypeError && /method|Request/i.test(e.message)) {
            throw new ProtocolError(400, `Cannot accept request: ${e.message}`);
          }
          onError(e);
          res = new Response(
            JSON.stringify({ error: { status: 500, message: "Internal server error" } }),
            { status: 500, headers: { "content-type": "application/json; charset=utf-8" } },
          );
        }
        const keepAlive = keepAliveOf(head) && !stopping;
        if (!await send(await responseBytes(res, head, keepAlive)) || !keepAlive) break;
        first = false;
      }
    } catch (e) {
      if (e instanceof ProtocolError) await refuse(e.status, e.message);
      else onError(e);
    } finally {
      close();
      open.delete(conn);
    }
  }

  const connections = new Set<Promise<void>>();
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        break; // listener closed
      }
      if (open.size >= maxConnections) {
        refused++;
        void (async () => {
          try {
            await conn.write(errorBytes(503, `Too many connections (limit ${maxConnections})`));
          } catch {
            // the peer is gone
          }
          conn.close();
        })();
        continue;
      }
      const p = serveConn(conn);
      connections.add(p);
      void p.finally(() => connections.delete(p));
    }
  })();

  const finished = (async () => {
    await accepting;
    while (connections.size > 0) await Promise.allSettled([...connections]);
  })();

  const stop = () => {
    if (stopping) return;
    stopping = true;
    try {
      listener.close();
    } catch {
      // already closed
    }
    for (const s of open.values()) if (s.idle) s.close();
  };
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener("abort", stop, { once: true });
  options.onListen?.({ hostname: addr.hostname, port: addr.port });

  return {
    addr,
    get refused() {
      return refused;
    },
    finished,
    shutdown() {
      stop();
      return finished;
    },
  };
}
