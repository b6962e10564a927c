/**
 * Starts `tasks/serve.ts` as a subprocess with restricted permissions and waits until it
 * answers; used by the serve tests and `tasks/bench_serve.ts`.
 *
 * @module
 */

/** A running server subprocess. */
export interface ServerProcess {
  /** `http://127.0.0.1:PORT`. */
  readonly base: string;
  /** Milliseconds from spawning the process to its `listening on` line. */
  readonly listenMs: number;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM, waits for exit, returns the exit code. */
  close(): Promise<number>;
}

/** Options of {@linkcode startServer}. */
export interface StartServerOptions {
  /** Bundle path. */
  readonly model: string;
  /** Deno permission flags (default: net to 127.0.0.1, read of the bundle and WASM dir only). */
  readonly permissions?: readonly string[];
  /** Extra `tasks/serve.ts` arguments. */
  readonly args?: readonly string[];
  /** Give up after this many milliseconds (default 60,000). */
  readonly timeoutMs?: number;
  /**
   * `"cli"` (default): `deno run tasks/serve.ts --model ...`; `"deploy"`: `deno serve
   * tasks/serve_deploy.ts` with `MFI_MODEL_URL` (and `--allow-env` for its variables).
   */
  readonly entry?: "cli" | "deploy";
  /** Extra environment of a `"deploy"` server (e.g. `MFI_THREADS`). */
  readonly env?: Readonly<Record<string, string>>;
}

/** The directory holding tfjs-backend-wasm's `.wasm` files (Deno's npm cache). */
export function wasmDir(): string {
  const main = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
  return decodeURIComponent(new URL("./", main).pathname).replace(/\/$/, "");
}

/** The restricted permission set the server runs with. */
export function restrictedPermissions(model: string): string[] {
  return ["--allow-net=127.0.0.1", `--allow-read=${model},${wasmDir()}`];
}

/**
 * Spawns the server on 127.0.0.1 and a free port (`--port 0`).
 *
 * @param options Bundle, permissions, arguments, timeout.
 * @returns The running server.
 * @throws {Error} If the process exits or stays silent before listening; the message has its output.
 */
export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const config = new URL("../deno.json", import.meta.url).pathname;
  const permissions = options.permissions ?? restrictedPermissions(options.model);
  const deploy = options.entry === "deploy";
  const args = deploy
    ? [
      "serve",
      `--config=${config}`,
      "--no-prompt",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--allow-env=MFI_MODEL_URL,MFI_WASM_URL,MFI_MAX_BODY_BYTES,MFI_BACKEND,MFI_THREADS," +
      "MFI_ALLOW_HTTP,MFI_ALLOW_SOFTWARE_ADAPTER",
      ...permissions,
      new URL("./serve_deploy.ts", import.meta.url).pathname,
    ]
    : [
      "run",
      "--quiet",
      "--no-prompt",
      `--config=${config}`,
      ...permissions,
      new URL("./serve.ts", import.meta.url).pathname,
      "--model",
      options.model,
      "--hostname",
      "127.0.0.1",
      "--port",
      "0",
      ...(options.args ?? ["--backend", "wasm", "--threads", "1", "--wasm-dir", wasmDir()]),
    ];
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: deploy
      ? {
        MFI_MODEL_URL: new URL(`file://${options.model}`).href,
        MFI_WASM_URL: wasmDir(),
        MFI_MAX_BODY_BYTES: "",
        MFI_BACKEND: "",
        MFI_THREADS: "",
        MFI_ALLOW_SOFTWARE_ADAPTER: "",
        ...options.env,
      }
      : {},
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  let resolveListen: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveListen = r));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      const m = text.match(/listening on (http:\/\/[^/\s]+)\//i);
      if (m) resolveListen(m[1]);
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    listening.then((base) => ({ base })),
    child.status.then((s) => ({ exited: s.code })),
    new Promise<{ timeout: true }>((
      r,
    ) => (timer = setTimeout(() => r({ timeout: true }), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (!("base" in outcome)) {
    if ("timeout" in outcome) child.kill("SIGKILL");
    await child.status;
    await pumps;
    throw new Error(
      `Server did not start (${
        "timeout" in outcome ? "timeout" : `exit ${outcome.exited}`
      }):\n${text}`,
    );
  }
  const listenMs = performance.now() - t0;
  return {
    base: outcome.base,
    listenMs,
    output: () => text,
    async close() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      const status = await child.status;
      await pumps;
      return status.code;
    },
  };
}
