/**
 * Initialises tfjs-backend-wasm ourselves instead of through its built-in `init()`, so that it
 * works in Deno with and without file-system permissions and with threads.
 *
 * What tfjs 4.22.0 does on its own in Deno, and why each part is replaced here:
 * - It believes it runs in Node (`process` exists), so it reads the `.wasm` file with `fs` (needs
 *   `--allow-read` on Deno's npm cache) and disables threads (`WASM_HAS_MULTITHREAD_SUPPORT` is
 *   false under `IS_NODE`). Here the binary's bytes are read (or taken from the caller) up front and
 *   instantiated through emscripten's `instantiateWasm` hook, so bytes need no permission at all.
 * - Its threaded build starts pthread workers from `blob:` URLs, which Deno refuses. Here emscripten's
 *   Node code path (`node:worker_threads`) starts our own worker script (see `_wasm_worker.ts`)
 *   from source (`eval: true`), which needs no temporary file and no permission.
 * - Its C++ side caps the XNNPACK pool at `emscripten_num_logical_cores() / 2` (and at 8, the size
 *   of the prebuilt pthread pool). The `emscripten_num_logical_cores` import is overridden to report
 *   twice the requested count, so the request is honoured up to 8.
 * - Pool workers are `unref`'d after start-up, so a program exits when its own work is done.
 *
 * The emscripten glue (`wasm-out/*.js`) is `require`d from the package. The package is imported
 * and located with one full `npm:` specifier ({@linkcode WASM_PACKAGE}), never a bare one, so
 * neither depends on the importer's import map (a JSR consumer's, or a program that imports these
 * files by path); `import.meta.resolve` of that specifier, once the package is loaded, gives its
 * file URL in Deno's npm cache or in a `node_modules` folder alike. Loading modules from the cache
 * needs no read permission, reading the `.wasm` files there does. The threaded glue always starts
 * its full pool of 8 workers (a literal in the glue), so threaded start-up takes about 1 s.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker as NodeWorker } from "node:worker_threads";
import { wasmWorkerSource } from "./_wasm_worker.ts";
import { disposeOwnKernelPool, ownKernelPool } from "./kernels/_own_kernels.ts";

/** The three builds shipped by tfjs-backend-wasm. */
export type WasmFlavour = "plain" | "simd" | "threadedSimd";

/** File names of the builds in the package's `dist/` folder. */
export const WASM_FILE_NAMES: Readonly<Record<WasmFlavour, string>> = Object.freeze({
  plain: "tfjs-backend-wasm.wasm",
  simd: "tfjs-backend-wasm-simd.wasm",
  threadedSimd: "tfjs-backend-wasm-threaded-simd.wasm",
});

/** Largest XNNPACK pool: tfjs's C++ `max_num_threads` and the prebuilt emscripten pool size. */
export const MAX_WASM_THREADS = 8;

/** Where the binaries come from (see `WasmOptions` in backend.ts). */
export interface WasmSource {
  readonly paths?: string | URL;
  readonly binaries?: Readonly<Partial<Record<WasmFlavour, Uint8Array>>>;
}

/** What {@linkcode initWasmBackend} set up. */
export interface WasmInitResult {
  readonly threads: number;
  readonly simd: boolean;
  readonly flavour: WasmFlavour;
  /** Where the binary came from, for logs. */
  readonly source: string;
}

// deno-lint-ignore no-explicit-any
type EmscriptenModule = any;
// deno-lint-ignore no-explicit-any
type Factory = (config: Record<string, unknown>) => Promise<any>;

/**
 * The tfjs-backend-wasm package, by a full specifier (keep the version equal to
 * `@tensorflow/tfjs-core`'s in the import maps).
 */
export const WASM_PACKAGE = "npm:@tensorflow/tfjs-backend-wasm@4.22.0";

type WasmPackage = typeof import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
let wasmModule: Promise<WasmPackage> | undefined;

/** Imports tfjs-backend-wasm (once), by the literal full specifier of {@linkcode WASM_PACKAGE}. */
export function importWasmPackage(): Promise<WasmPackage> {
  return wasmModule ??= import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
}

/**
 * The tfjs-backend-wasm package root, as a file URL ending in "/". Loads the package first: the
 * specifier resolves to a file only once the package is part of the module graph.
 *
 * @returns The root URL.
 * @throws {Error} If the package does not resolve to a file (a runtime without npm support).
 */
export async function wasmPackageRoot(): Promise<URL> {
  await importWasmPackage();
  const main = new URL(import.meta.resolve("npm:@tensorflow/tfjs-backend-wasm@4.22.0"));
  if (main.protocol !== "file:") {
    throw new Error(
      `Cannot locate ${WASM_PACKAGE} on disk (it resolved to ${main.href}); pass the binaries ` +
        "as wasm.binaries, or choose --backend cpu.",
    );
  }
  return new URL("../", main); // main is <root>/dist/tf-backend-wasm.node.js
}

/** True if this runtime validates WebAssembly SIMD (the probe tfjs itself uses). */
export function hasWasmSimd(): boolean {
  try {
    return WebAssembly.validate(
      new Uint8Array([
        0,
        97,
        115,
        109,
        1,
        0,
        0,
        0,
        1,
        4,
        1,
        96,
        0,
        0,
        3,
        2,
        1,
        0,
        10,
        9,
        1,
        7,
        0,
        65,
        0,
        253,
        15,
        26,
        11,
      ]),
    );
  } catch {
    return false;
  }
}

/** True if this runtime has shared memory, atomics and `node:worker_threads`-style workers. */
export function hasWasmThreads(): boolean {
  try {
    const { port1, port2 } = new MessageChannel();
    try {
      port1.postMessage(new SharedArrayBuffer(1));
    } finally {
      port1.close();
      port2.close();
    }
    return WebAssembly.validate(
      new Uint8Array([
        0,
        97,
        115,
        109,
        1,
        0,
        0,
        0,
        1,
        4,
        1,
        96,
        0,
        0,
        3,
        2,
        1,
        0,
        5,
        4,
        1,
        3,
        1,
        1,
        10,
        11,
        1,
        9,
        0,
        65,
        0,
        254,
        16,
        2,
        0,
        26,
        11,
      ]),
    );
  } catch {
    return false;
  }
}

function isPermissionError(e: unknown): boolean {
  return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
}

/** Resolves `paths` (a directory or a URL prefix) to a URL ending in "/". */
function prefixUrl(paths: string | URL): URL {
  if (paths instanceof URL) return paths.href.endsWith("/") ? paths : new URL(paths.href + "/");
  if (/^[a-z][a-z0-9+.-]*:/i.test(paths) && !/^[a-z]:[\\/]/i.test(paths)) {
    return new URL(paths.endsWith("/") ? paths : paths + "/");
  }
  const url = pathToFileURL(paths);
  return url.href.endsWith("/") ? url : new URL(url.href + "/");
}

async function readUrl(url: URL, what: string): Promise<Uint8Array> {
  if (url.protocol === "file:") {
    try {
      return await Deno.readFile(url);
    } catch (e) {
      const path = fileURLToPath(url);
      if (isPermissionError(e)) {
        throw new Error(
          `Cannot read the ${what} at ${path}: no read permission. Run with ` +
            `--allow-read=${fileURLToPath(new URL("./", url))}, pass the bytes as ` +
            `wasm.binaries, or choose --backend cpu.`,
          { cause: e },
        );
      }
      throw new Error(`Cannot read the ${what} at ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(
      `Cannot fetch the ${what} from ${url.href}: ${(e as Error).message}. Serve it there, ` +
        `pass wasm.paths pointing elsewhere, or pass the bytes as wasm.binaries.`,
      { cause: e },
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(
      `Cannot fetch the ${what} from ${url.href}: HTTP ${response.status}. Serve it there, ` +
        `pass wasm.paths pointing elsewhere, or pass the bytes as wasm.binaries.`,
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function loadBinary(
  flavour: WasmFlavour,
  source: WasmSource,
): Promise<{ bytes: Uint8Array; source: string }> {
  const given = source.binaries?.[flavour];
  if (given !== undefined) return { bytes: given, source: `wasm.binaries.${flavour}` };
  const name = WASM_FILE_NAMES[flavour];
  const url = new URL(
    name,
    source.paths !== undefined
      ? prefixUrl(source.paths)
      : new URL("dist/", await wasmPackageRoot()),
  );
  const bytes = await readUrl(url, `tfjs-backend-wasm binary ${name}`);
  return { bytes, source: url.protocol === "file:" ? fileURLToPath(url) : url.href };
}

function requireGlue(path: string): Factory {
  return createRequire(import.meta.url)(path) as Factory;
}

/** Adds the cwrapped entry points tfjs's `BackendWasm` expects (as tfjs's own `init()` does). */
function attachTfjsApi(module: EmscriptenModule): void {
  module.tfjs = {
    init: module.cwrap("init", null, []),
    initWithThreadsCount: module.cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: module.cwrap("get_threads_count", "number", []),
    registerTensor: module.cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: module.cwrap("dispose_data", null, ["number"]),
    dispose: module.cwrap("dispose", null, []),
  };
}

function factoryConfig(
  bytes: Uint8Array,
  cores: number,
  extra: Record<string, unknown>,
  onAbort: (what: unknown) => void,
): Record<string, unknown> {
  return {
    ...extra,
    // Instantiate from bytes we hold: no fs, no fetch, no permission.
    instantiateWasm: (
      info: { env: Record<string, unknown> },
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) => {
      // tfjs's C++ caps the pool at emscripten_num_logical_cores() / 2.
      info.env.emscripten_num_logical_cores = () => 2 * cores;
      WebAssembly.instantiate(bytes as BufferSource, info as WebAssembly.Imports).then(
        (r) => receive(r.instance, r.module),
        onAbort,
      );
      return {};
    },
    onAbort,
    print: (text: string) => console.log(text),
    printErr: (text: string) => console.warn(text),
  };
}

async function createSingleThreaded(bytes: Uint8Array, root: URL): Promise<EmscriptenModule> {
  const factory = requireGlue(fileURLToPath(new URL("wasm-out/tfjs-backend-wasm.js", root)));
  return await new Promise((resolve, reject) => {
    const fail = (what: unknown) =>
      reject(new Error(`tfjs-backend-wasm failed to start: ${String(what)}`));
    factory(factoryConfig(bytes, 1, {}, fail)).then(resolve, fail);
  });
}

/** How long the threaded module may take to start its worker pool before we give up. */
const THREADED_START_TIMEOUT_MS = 120_000;

async function createThreaded(
  bytes: Uint8Array,
  root: URL,
  threads: number,
): Promise<EmscriptenModule> {
  const gluePath = fileURLToPath(new URL("wasm-out/tfjs-backend-wasm-threaded-simd.js", root));
  const factory = requireGlue(gluePath);
  const source = wasmWorkerSource(gluePath);
  const started: NodeWorker[] = [];
  // The worker runs from source (`eval: true`): no blob: URL (Deno refuses those), no temp file,
  // no permission. Emscripten's Node path does `new Worker(locateFile("...worker.js"))` with the
  // global Worker it set to node:worker_threads' one; locateFile runs just before that `new`, so it
  // swaps in this subclass, which ignores the path and starts our script instead.
  class EvalWorker extends NodeWorker {
    constructor(_path: string) {
      super(source, { eval: true });
      started.push(this);
    }
  }
  const savedWorker = globalThis.Worker;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise((resolve, reject) => {
      const fail = (what: unknown) => {
        for (const worker of started) worker.terminate();
        reject(new Error(`tfjs-backend-wasm (threaded) failed to start: ${String(what)}`));
      };
      timer = setTimeout(
        () =>
          fail(`its ${started.length} workers did not load within ${THREADED_START_TIMEOUT_MS} ms`),
        THREADED_START_TIMEOUT_MS,
      );
      const config = factoryConfig(bytes, threads, {
        locateFile: (path: string, prefix: string) => {
          if (!path.endsWith(".worker.js")) return prefix + path;
          (globalThis as { Worker: unknown }).Worker = EvalWorker;
          return path;
        },
      }, fail);
      factory(config).then(resolve, fail);
    });
  } finally {
    clearTimeout(timer);
    // Deno's own Worker back. The pool (8 workers) exists by now and no worker is started later,
    // because the thread count is capped at the pool size.
    globalThis.Worker = savedWorker;
  }
}

let generation = 0;
let current:
  | {
    threads: number;
    paths: string;
    binaries: unknown;
    backend: tf.KernelBackend;
    result: WasmInitResult;
  }
  | undefined;

/**
 * Creates the wasm module, registers it as tfjs's `wasm` backend (replacing any earlier one) and
 * makes it the active backend.
 *
 * @param threads Wanted XNNPACK threads (1 = single-threaded build); at most {@linkcode MAX_WASM_THREADS}.
 * @param source Binaries or where to find them.
 * @returns What was set up.
 * @throws {Error} If a binary cannot be read or the module fails to start.
 */
export async function initWasmBackend(
  threads: number,
  source: WasmSource,
): Promise<WasmInitResult> {
  // The same settings as the live module: switch back to it (its tensors stay valid).
  const paths = source.paths === undefined ? "" : String(source.paths);
  if (
    current !== undefined && current.threads === threads && current.paths === paths &&
    current.binaries === source.binaries && tf.findBackend("wasm") === current.backend
  ) {
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("tfjs-backend-wasm could not be re-activated.");
    }
    return current.result;
  }
  const wasmPkg = await importWasmPackage();
  const root = await wasmPackageRoot();
  const simd = hasWasmSimd();
  const flavour: WasmFlavour = threads > 1 ? "threadedSimd" : simd ? "simd" : "plain";
  const binary = await loadBinary(flavour, source);
  let module: EmscriptenModule;
  try {
    module = flavour === "threadedSimd"
      ? await createThreaded(binary.bytes, root, threads)
      : await createSingleThreaded(binary.bytes, root);
  } catch (e) {
    throw new Error(`${(e as Error).message} (binary from ${binary.source})`, { cause: e });
  }
  attachTfjsApi(module);
  wasmPkg.setThreadsCount(threads);
  if (tf.findBackendFactory("wasm") != null) tf.removeBackend("wasm");
  const id = ++generation;
  tf.registerBackend(
    "wasm",
    () => {
      if (id !== generation) throw new Error("This wasm module was replaced by a newer one.");
      const backend = new wasmPkg.BackendWasm(module);
      // Our own kernels' worker pool runs on this module's memory: end it with the backend
      // (tf.removeBackend, a re-initialisation with other settings).
      const dispose = backend.dispose.bind(backend);
      backend.dispose = () => {
        disposeOwnKernelPool(module);
        dispose();
      };
      return backend;
    },
    2,
  );
  if (!(await tf.setBackend("wasm"))) {
    throw new Error(`tfjs-backend-wasm could not be initialised from ${binary.source}.`);
  }
  // Pool threads are ref'd while they run a pthread (XNNPACK's pool runs for the whole program);
  // unref them so that they never keep the process alive.
  if (module.PThread) {
    for (const worker of module.PThread.runningWorkers) worker.unref?.();
  }
  // Our own kernels' worker pool (as many threads as XNNPACK's), started now rather than at the
  // first kernel call, so that no call pays for its start (until a worker is up, the calling
  // thread takes its shares; a pool that will not start only makes those kernels slower).
  if (flavour === "threadedSimd") {
    try {
      await ownKernelPool(module)?.ready();
    } catch (e) {
      console.warn(`tfjs-backend-wasm: our own kernels' worker pool: ${(e as Error).message}`);
    }
  }
  const result = {
    threads: wasmPkg.getThreadsCount(),
    simd: flavour !== "plain",
    flavour,
    source: binary.source,
  };
  current = { threads, paths, binaries: source.binaries, backend: tf.backend(), result };
  return result;
}
