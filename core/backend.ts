/**
 * Backend selection: the only place in the project that picks and initialises a tfjs backend.
 *
 * Order of preference: WebGPU on a real (hardware) adapter, else WASM with SIMD and threads, else
 * the pure-JS cpu backend. `--backend` (via {@linkcode SelectBackendOptions.backend}) or the
 * environment variable `MFI_BACKEND` force one.
 *
 * Software WebGPU adapters (Mesa's llvmpipe/lavapipe, SwiftShader, WARP) are refused: they run
 * our convolutions about 100x slower than WASM. For testing the WebGPU path on a machine without
 * a GPU, `--allow-software-adapter` ({@linkcode SelectBackendOptions.allowSoftwareAdapter}) or
 * `MFI_ALLOW_SOFTWARE_ADAPTER=1` lets an explicit `webgpu` request run on one; the choice then
 * says so in its label (`webgpu (software adapter: ...)`), which every phase result and report
 * records, and a warning is printed to stderr. The automatic choice never takes one.
 *
 * Permissions: WASM read from the installed npm package needs `--allow-read` on its `dist/` folder
 * (the error names it); binaries passed as bytes need none, and neither do WASM threads (their
 * workers run from source, see `_wasm_init.ts`). Without `--allow-env`, `MFI_BACKEND` and
 * `MFI_THREADS` are not read. On WebGPU read tensors with `await t.data()`: `dataSync()` crashes
 * in Deno.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
// The packages depend on tfjs-core, not on the umbrella `@tensorflow/tfjs` (which adds the webgl
// backend, converter, data and 140 MB of bundles). What the umbrella registered as side effects is
// registered here, once, by the module every entry point and package imports:
// - the cpu backend (`backend: "cpu"`, doc examples' `tf.setBackend("cpu")`, wasm's fallbacks);
// - every kernel's gradient. tfjs-core's own `dist/register_all_gradients` is ES modules with
//   extensionless imports, meant for bundlers, which Deno cannot load; tfjs-layers' bundle
//   registers the same set (into tfjs-core's global registry) and is the smallest package that
//   does. Chained ops (`x.add(y)`) are not registered: call the functions (`tf.add(x, y)`).
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-layers";
import { hasWasmSimd, hasWasmThreads, initWasmBackend, MAX_WASM_THREADS } from "./_wasm_init.ts";

/**
 * The most WASM threads a backend runs with (tfjs-backend-wasm's prebuilt pool size); larger
 * requests are capped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WASM_THREAD_LIMIT } from "@mfi/core";
 * assert.equal(WASM_THREAD_LIMIT, 8);
 * ```
 */
export const WASM_THREAD_LIMIT: number = MAX_WASM_THREADS;
import { registerWasmTrainingKernels } from "./kernels/register.ts";

/**
 * tfjs-backend-cpu prints a "looks like you are running TensorFlow.js in Node.js, install
 * tfjs-node" banner on its first tensor when it believes it runs in Node (Deno sets `process`).
 * tfjs-node is not an option in Deno, so the banner is noise; it is the only thing silenced here
 * (through the backend's own `firstUse` flag, so every other tfjs warning still prints). Runs once
 * when this module loads, which every entry point and `selectBackend` caller does first.
 */
function silenceCpuBanner(): void {
  try {
    // findBackend instantiates the registered cpu backend (no tensor is written, so no banner).
    const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
    if (cpu !== null && cpu !== undefined) cpu.firstUse = false;
  } catch {
    // No cpu backend registered: nothing to silence.
  }
}
silenceCpuBanner();

/** Backends the project can run on. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/**
 * The valid backend names, in order of preference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BACKEND_NAMES } from "@mfi/core";
 *
 * assert.deepEqual(BACKEND_NAMES, ["webgpu", "wasm", "cpu"]);
 * ```
 */
export const BACKEND_NAMES: readonly BackendName[] = Object.freeze(["webgpu", "wasm", "cpu"]);

/** The WebAssembly binaries of tfjs-backend-wasm, as bytes. */
export interface WasmBinaries {
  /** `tfjs-backend-wasm.wasm` (no SIMD, single thread). */
  readonly plain?: Uint8Array;
  /** `tfjs-backend-wasm-simd.wasm` (SIMD, single thread). */
  readonly simd?: Uint8Array;
  /** `tfjs-backend-wasm-threaded-simd.wasm` (SIMD and threads). */
  readonly threadedSimd?: Uint8Array;
}

/** Where the WASM backend finds its binaries. Default: the installed npm package. */
export interface WasmOptions {
  /**
   * A directory (file path or `file:` URL) or an `http(s):` URL prefix holding the `.wasm` files
   * under their original names (`tfjs-backend-wasm-simd.wasm`, ...).
   */
  readonly paths?: string | URL;
  /** The binaries themselves; a sandbox without `--allow-read` can pass these. */
  readonly binaries?: WasmBinaries;
}

/** Options of {@linkcode selectBackend}. */
export interface SelectBackendOptions {
  /** Force a backend; default: `MFI_BACKEND`, else the best available. */
  readonly backend?: BackendName;
  /**
   * WASM threads (XNNPACK pool size, 1 = single-threaded build); default: `MFI_THREADS`, else all
   * cores (`navigator.hardwareConcurrency`), at most 8 (the pool size tfjs-backend-wasm is built
   * with).
   */
  readonly threads?: number;
  /** Where the WASM binaries come from. */
  readonly wasm?: WasmOptions;
  /**
   * Environment to read `MFI_BACKEND` / `MFI_THREADS` / `MFI_ALLOW_SOFTWARE_ADAPTER` from;
   * default: `Deno.env` where `--allow-env` permits, else nothing.
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Let an explicit WebGPU request (`backend: "webgpu"` or `MFI_BACKEND=webgpu`) run on a software
   * adapter (llvmpipe, ...) instead of failing; for testing the WebGPU path on machines without a
   * GPU. Default: `MFI_ALLOW_SOFTWARE_ADAPTER` (`1`/`true`), else false. `true` here with any
   * other backend request, or none, is an error (the variable is then ignored, and the reason says
   * so); the automatic choice never takes a software adapter.
   */
  readonly allowSoftwareAdapter?: boolean;
}

/** The WebGPU adapter in use. */
export interface AdapterSummary {
  /** The adapter's vendor, e.g. `nvidia`. */
  readonly vendor: string;
  /** Its architecture, e.g. `hopper`. */
  readonly architecture: string;
  /** Its device id or name. */
  readonly device: string;
  /** A human-readable description. */
  readonly description: string;
}

/** What {@linkcode selectBackend} chose and why. */
export interface BackendChoice {
  /** The active backend. */
  readonly name: BackendName;
  /** A human-readable reason for the choice. */
  readonly reason: string;
  /** Threads the backend computes with (WASM's XNNPACK pool; 1 for cpu and webgpu). */
  readonly threads: number;
  /** True if the WASM SIMD build runs. */
  readonly simd: boolean;
  /** The WebGPU adapter, when `name` is `webgpu`. */
  readonly adapter?: AdapterSummary;
  /**
   * True when `name` is `webgpu` on a software adapter (allowed by
   * {@linkcode SelectBackendOptions.allowSoftwareAdapter}): results are for testing only, timings
   * mean nothing.
   */
  readonly softwareAdapter?: boolean;
  /** Where the WASM binary came from, when `name` is `wasm`. */
  readonly wasmSource?: string;
}

/** Adapter fields {@linkcode isSoftwareAdapter} looks at (a `GPUAdapterInfo` fits). */
export interface AdapterInfoLike {
  /** The adapter's vendor. */
  readonly vendor?: string;
  /** Its architecture. */
  readonly architecture?: string;
  /** Its device id or name. */
  readonly device?: string;
  /** A human-readable description. */
  readonly description?: string;
  /** True for the browser's or driver's fallback (software) adapter. */
  readonly isFallbackAdapter?: boolean;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe|basic render driver|\bwarp\b/i;
// VK_VENDOR_ID_MESA: Mesa's software Vulkan drivers report it instead of a PCI vendor id.
const SOFTWARE_VENDOR_IDS = new Set(["65541", "0x10005"]);

/**
 * Tells whether a WebGPU adapter is a software rasteriser (or a declared fallback adapter), which
 * runs our convolutions about 100x slower than WASM and must not be used.
 *
 * @param info The adapter's `info` (`GPUAdapterInfo`), or the same fields.
 * @returns True for `isFallbackAdapter`, llvmpipe, lavapipe, SwiftShader, softpipe, WARP, or Mesa's
 *   software vendor id; false for hardware adapters.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSoftwareAdapter } from "@mfi/core";
 *
 * assert.equal(isSoftwareAdapter({ vendor: "nvidia", architecture: "ampere" }), false);
 * assert.equal(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }), true);
 * assert.equal(isSoftwareAdapter({ vendor: "nvidia", isFallbackAdapter: true }), true);
 * ```
 */
export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  if (info.isFallbackAdapter === true) return true;
  const text = [info.vendor, info.architecture, info.device, info.description].join(" ");
  if (SOFTWARE_NAMES.test(text)) return true;
  return SOFTWARE_VENDOR_IDS.has((info.vendor ?? "").trim().toLowerCase());
}

/**
 * Parses a backend name (from a flag, an environment variable or a config).
 *
 * @param value The text to parse; surrounding spaces and case are ignored.
 * @param source What the text came from, for the error message (e.g. `"--backend"`).
 * @returns The backend name.
 * @throws {TypeError} If `value` is not one of {@linkcode BACKEND_NAMES}.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBackendName } from "@mfi/core";
 *
 * assert.equal(parseBackendName("WASM", "--backend"), "wasm");
 * assert.throws(() => parseBackendName("gpu", "--backend"), /webgpu, wasm, cpu/);
 * ```
 */
export function parseBackendName(value: string, source = "backend"): BackendName {
  const name = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new TypeError(
    `Unknown backend ${JSON.stringify(value)} in ${source}: expected one of ` +
      `${BACKEND_NAMES.join(", ")}.`,
  );
}

/**
 * Parses a yes/no switch from the environment (`MFI_ALLOW_SOFTWARE_ADAPTER`).
 *
 * @param value The variable's value; unset or blank is false.
 * @param source The variable's name, for the error message.
 * @returns True for `1`/`true`/`yes`, false for `0`/`false`/`no`/blank (case and spaces ignored).
 * @throws {TypeError} For any other value.
 */
function parseSwitch(value: string | undefined, source: string): boolean {
  const v = (value ?? "").trim().toLowerCase();
  if (v === "" || v === "0" || v === "false" || v === "no") return false;
  if (v === "1" || v === "true" || v === "yes") return true;
  throw new TypeError(
    `Invalid ${source} ${JSON.stringify(value)}: expected 1 or 0 (or true/false); unset it to ` +
      `refuse software WebGPU adapters.`,
  );
}

function parseThreads(value: unknown, source: string): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `Invalid ${source}: expected a whole number of threads >= 1, got ${JSON.stringify(value)}.`,
    );
  }
  return n;
}

const OPTION_KEYS = new Set(["backend", "threads", "wasm", "env", "allowSoftwareAdapter"]);
const WASM_KEYS = new Set(["paths", "binaries"]);
const BINARY_KEYS = new Set(["plain", "simd", "threadedSimd"]);

function checkKeys(object: object, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.has(key)) {
      throw new TypeError(
        `Unknown option ${where}${key}: expected one of ${[...allowed].join(", ")}.`,
      );
    }
  }
}

function validateOptions(options: SelectBackendOptions): void {
  if (options === null || typeof options !== "object") {
    throw new TypeError("selectBackend options must be an object.");
  }
  checkKeys(options, OPTION_KEYS, "");
  if (options.backend !== undefined) {
    if (typeof options.backend !== "string") {
      throw new TypeError(`Invalid option backend: expected one of ${BACKEND_NAMES.join(", ")}.`);
    }
    parseBackendName(options.backend, "option backend");
  }
  if (options.threads !== undefined) parseThreads(options.threads, "option threads");
  if (
    options.allowSoftwareAdapter !== undefined && typeof options.allowSoftwareAdapter !== "boolean"
  ) {
    throw new TypeError("Invalid option allowSoftwareAdapter: expected true or false.");
  }
  const wasm = options.wasm;
  if (wasm !== undefined) {
    if (wasm === null || typeof wasm !== "object") {
      throw new TypeError("Invalid option wasm: expected an object { paths?, binaries? }.");
    }
    checkKeys(wasm, WASM_KEYS, "wasm.");
    if (
      wasm.paths !== undefined && typeof wasm.paths !== "string" && !(wasm.paths instanceof URL)
    ) {
      throw new TypeError("Invalid option wasm.paths: expected a string or a URL.");
    }
    if (wasm.binaries !== undefined) {
      if (wasm.binaries === null || typeof wasm.binaries !== "object") {
        throw new TypeError("Invalid option wasm.binaries: expected an object of Uint8Arrays.");
      }
      checkKeys(wasm.binaries, BINARY_KEYS, "wasm.binaries.");
      for (const [key, value] of Object.entries(wasm.binaries)) {
        if (value !== undefined && !(value instanceof Uint8Array)) {
          throw new TypeError(`Invalid option wasm.binaries.${key}: expected a Uint8Array.`);
        }
      }
    }
  }
}

/** Reads the variables we use from Deno.env, skipping any `--allow-env` does not grant. */
function readEnv(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const variable of ["MFI_BACKEND", "MFI_THREADS", "MFI_ALLOW_SOFTWARE_ADAPTER"]) {
    try {
      if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") continue;
      out[variable] = Deno.env.get(variable);
    } catch {
      // No Deno, or no permission API: nothing to read.
    }
  }
  return out;
}

// deno-lint-ignore no-explicit-any
type GpuAdapter = any;

type WebGpuProbe =
  | { readonly ok: true; readonly adapter: GpuAdapter; readonly info: AdapterInfoLike }
  | {
    readonly ok: false;
    readonly why: string;
    /** Set when an adapter exists but is a software one. */
    readonly software?: { readonly adapter: GpuAdapter; readonly info: AdapterInfoLike };
  };

function summarise(info: AdapterInfoLike): AdapterSummary {
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
  };
}

function adapterName(info: AdapterInfoLike): string {
  const s = summarise(info);
  const parts = [
    s.description,
    s.vendor && `vendor ${s.vendor}`,
    s.architecture,
    s.device && `device ${s.device}`,
  ];
  return parts.filter((p) => p !== "").join(", ") || "unnamed adapter";
}

async function probeWebGpu(): Promise<WebGpuProbe> {
  // deno-lint-ignore no-explicit-any
  const gpu = (globalThis.navigator as any)?.gpu;
  if (gpu == null) return { ok: false, why: "this runtime has no WebGPU (navigator.gpu)" };
  let adapter: GpuAdapter;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { ok: false, why: `requesting a WebGPU adapter failed (${(e as Error).message})` };
  }
  if (adapter == null) return { ok: false, why: "no WebGPU adapter was found" };
  const raw = adapter.info ?? (await adapter.requestAdapterInfo?.()) ?? {};
  const info: AdapterInfoLike = {
    vendor: raw.vendor,
    architecture: raw.architecture,
    device: raw.device,
    description: raw.description,
    isFallbackAdapter: raw.isFallbackAdapter ?? adapter.isFallbackAdapter,
  };
  if (isSoftwareAdapter(info)) {
    return {
      ok: false,
      why: `the WebGPU adapter offered is a software rasteriser (${adapterName(info)})`,
      software: { adapter, info },
    };
  }
  return { ok: true, adapter, info };
}

async function initWebGpu(adapter: GpuAdapter, info: AdapterInfoLike): Promise<void> {
  const limits = adapter.limits;
  const requiredFeatures = ["timestamp-query", "bgra8unorm-storage"].filter((f) =>
    adapter.features.has(f)
  );
  // The same device request as tfjs-backend-webgpu's own registration (base.ts), on our adapter.
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  });
  // Imported only here, so wasm/cpu users and sandboxes never load it.
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu");
  if (tf.findBackendFactory("webgpu") != null) tf.removeBackend("webgpu");
  tf.registerBackend(
    "webgpu",
    // deno-lint-ignore no-explicit-any
    () => new WebGPUBackend(device, adapter.info ?? (info as any)),
    3,
  );
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error(`tfjs-backend-webgpu could not be initialised on ${adapterName(info)}.`);
  }
}

interface WasmPlan {
  readonly threads: number;
  readonly notes: string[];
  readonly explicit: boolean;
}

function planWasmThreads(
  requested: number | undefined,
  binaries: WasmBinaries | undefined,
): WasmPlan {
  const notes: string[] = [];
  const explicit = requested !== undefined;
  let threads = requested ?? Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
  if (threads > MAX_WASM_THREADS) {
    notes.push(
      `${threads} threads requested, capped at ${MAX_WASM_THREADS} (tfjs-backend-wasm's pool size)`,
    );
    threads = MAX_WASM_THREADS;
  }
  if (threads > 1 && !(hasWasmSimd() && hasWasmThreads())) {
    const why = "this runtime lacks WebAssembly SIMD or shared-memory threads";
    if (explicit) throw new Error(`Cannot run ${threads} wasm threads: ${why}. Use threads: 1.`);
    notes.push(`single-threaded: ${why}`);
    threads = 1;
  }
  if (threads > 1 && binaries !== undefined && binaries.threadedSimd === undefined) {
    const why = "wasm.binaries has no threadedSimd binary";
    if (explicit) {
      throw new Error(
        `Cannot run ${threads} wasm threads: ${why}. Pass tfjs-backend-wasm-threaded-simd.wasm ` +
          `as wasm.binaries.threadedSimd, or use threads: 1.`,
      );
    }
    notes.push(`single-threaded: ${why}`);
    threads = 1;
  }
  return { threads, notes, explicit };
}

async function startWasm(
  options: SelectBackendOptions,
  threadsRequested: number | undefined,
  why: string,
): Promise<BackendChoice> {
  const plan = planWasmThreads(threadsRequested, options.wasm?.binaries);
  const source = { paths: options.wasm?.paths, binaries: options.wasm?.binaries };
  let result;
  const notes = [...plan.notes];
  try {
    result = await initWasmBackend(plan.threads, source);
  } catch (e) {
    if (plan.threads === 1 || plan.explicit) throw e;
    notes.push(`single-threaded: threads failed to start (${(e as Error).message})`);
    result = await initWasmBackend(1, source);
  }
  // The project's fast Conv2DBackpropFilter/Input, BatchMatMul and UnsortedSegmentSum (core/kernels).
  registerWasmTrainingKernels();
  return {
    name: "wasm",
    reason: [why, ...notes].join("; "),
    threads: result.threads,
    simd: result.simd,
    wasmSource: result.source,
  };
}

async function startCpu(why: string): Promise<BackendChoice> {
  if (!(await tf.setBackend("cpu"))) throw new Error("The tfjs cpu backend failed to initialise.");
  silenceCpuBanner();
  return { name: "cpu", reason: why, threads: 1, simd: false };
}

let cache: { key: string; options: SelectBackendOptions; choice: BackendChoice } | undefined;

/**
 * Picks and initialises the tfjs backend, and says what it chose and why. It is the only place in
 * the project that calls `tf.setBackend` (tests and doc examples may pin `cpu`).
 *
 * Without a request it uses WebGPU on a hardware adapter (software adapters such as llvmpipe are
 * refused), else WASM (SIMD, threads), else cpu. Calling it again with the same settings returns
 * the same choice; different WASM settings start a new WASM module, which invalidates tensors
 * held on the old one.
 *
 * @param options Backend to force, WASM threads and binaries, environment.
 * @returns The choice, frozen.
 * @throws {TypeError} For an unknown backend name (option or `MFI_BACKEND`), an unknown option, an
 *   invalid `MFI_ALLOW_SOFTWARE_ADAPTER`, or the software-adapter switch without an explicit
 *   WebGPU request.
 * @throws {RangeError} For a thread count that is not a whole number >= 1.
 * @throws {Error} If WebGPU is requested but only a software adapter (or none) exists, if the
 *   requested backend fails to initialise (e.g. WASM binaries unreadable), or if `wasm` names
 *   binaries that do not work (never a silent fallback to cpu then).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeBackend, selectBackend } from "@mfi/core";
 *
 * const choice = await selectBackend({ backend: "cpu" });
 * assert.equal(choice.name, "cpu");
 * assert.match(describeBackend(choice), /^cpu/);
 * ```
 */
export async function selectBackend(options: SelectBackendOptions = {}): Promise<BackendChoice> {
  validateOptions(options);
  const env = options.env ?? readEnv();
  let requested: BackendName | undefined;
  let why: string;
  if (options.backend !== undefined) {
    requested = parseBackendName(options.backend, "option backend");
    why = `requested (backend=${requested})`;
  } else if (env.MFI_BACKEND !== undefined && env.MFI_BACKEND.trim() !== "") {
    requested = parseBackendName(env.MFI_BACKEND, "MFI_BACKEND");
    why = `requested (MFI_BACKEND=${requested})`;
  } else {
    why = "auto";
  }
  const threads = options.threads !== undefined
    ? parseThreads(options.threads, "option threads")
    : env.MFI_THREADS !== undefined && env.MFI_THREADS.trim() !== ""
    ? parseThreads(env.MFI_THREADS, "MFI_THREADS")
    : undefined;

  // The testing switch: only an explicit WebGPU request honours it. Given as an option (a flag of
  // this command) without one, it is a mistake; set in the environment, it is ignored.
  const fromEnv = parseSwitch(env.MFI_ALLOW_SOFTWARE_ADAPTER, "MFI_ALLOW_SOFTWARE_ADAPTER");
  const allowSource = options.allowSoftwareAdapter !== undefined
    ? "allowSoftwareAdapter (--allow-software-adapter)"
    : "MFI_ALLOW_SOFTWARE_ADAPTER=1";
  if (options.allowSoftwareAdapter === true && requested !== "webgpu") {
    throw new TypeError(
      `allowSoftwareAdapter (--allow-software-adapter) only applies to an explicit WebGPU ` +
        `request, but the backend was ` +
        `${requested === undefined ? "left to the automatic choice" : why}. Add --backend webgpu ` +
        `to test WebGPU on a software adapter, or drop --allow-software-adapter.`,
    );
  }
  const allowSoftware = requested === "webgpu" && (options.allowSoftwareAdapter ?? fromEnv);
  const ignoredNote = fromEnv && requested !== "webgpu"
    ? "; MFI_ALLOW_SOFTWARE_ADAPTER ignored (it needs an explicit webgpu request)"
    : "";
  const key = JSON.stringify({
    requested,
    threads,
    paths: String(options.wasm?.paths ?? ""),
    allowSoftwareAdapter: allowSoftware,
    ignoredNote,
  });
  if (
    cache !== undefined && cache.key === key && cache.options.wasm?.binaries ===
      options.wasm?.binaries &&
    tf.getBackend() === cache.choice.name
  ) {
    return cache.choice;
  }

  let choice: BackendChoice;
  if (requested === "cpu") {
    choice = await startCpu(why);
  } else if (requested === "wasm") {
    choice = await startWasm(options, threads, why);
  } else if (requested === "webgpu") {
    const probe = await probeWebGpu();
    let adapter: { readonly adapter: GpuAdapter; readonly info: AdapterInfoLike };
    let software = false;
    if (probe.ok) {
      adapter = probe;
    } else if (probe.software !== undefined && allowSoftware) {
      adapter = probe.software;
      software = true;
      why += `; SOFTWARE ADAPTER allowed by ${allowSource}: for testing only, about 100x ` +
        `slower than wasm, timings mean nothing`;
    } else {
      throw new Error(
        `WebGPU was ${why} but ${probe.why}. ` +
          (probe.software !== undefined
            ? "A software adapter is about 100x slower than wasm; use --backend wasm (or cpu), " +
              "or add --allow-software-adapter to test the WebGPU path on it."
            : "Use --backend wasm (or cpu), or run where a GPU is available."),
      );
    }
    await initWebGpu(adapter.adapter, adapter.info);
    choice = {
      name: "webgpu",
      reason: why,
      threads: 1,
      simd: false,
      adapter: summarise(adapter.info),
      ...(software ? { softwareAdapter: true } : {}),
    };
    if (software) {
      // Loud on purpose: every log of a run on a software adapter starts with this.
      console.warn(
        `WARNING: WebGPU runs on a SOFTWARE adapter (${adapterName(adapter.info)}), allowed by ` +
          `${allowSource}. For testing only: about 100x slower than wasm; timings mean nothing. ` +
          `Results record the backend as "${backendLabel(choice)}".`,
      );
    }
  } else {
    const probe = await probeWebGpu();
    if (probe.ok) {
      await initWebGpu(probe.adapter, probe.info);
      choice = {
        name: "webgpu",
        reason: `auto: hardware WebGPU adapter (${adapterName(probe.info)})`,
        threads: 1,
        simd: false,
        adapter: summarise(probe.info),
      };
    } else {
      const autoWhy = `auto: WebGPU refused, ${probe.why}`;
      try {
        choice = await startWasm(options, threads, autoWhy);
      } catch (e) {
        // Binaries the caller pointed at (e.g. `--wasm-dir`) that do not work are a mistake to
        // report, not a reason to serve on the (much slower) cpu backend without a word.
        if (options.wasm !== undefined) {
          throw new Error(
            `The WASM backend could not start from the binaries given (${
              options.wasm.paths !== undefined
                ? `wasm.paths ${String(options.wasm.paths)}`
                : "wasm.binaries"
            }): ${
              (e as Error).message
            } Fix the location, or drop it to use the installed package's binaries.`,
            { cause: e },
          );
        }
        choice = await startCpu(`${autoWhy}; wasm failed (${(e as Error).message})`);
      }
    }
  }
  if (ignoredNote !== "") choice = { ...choice, reason: choice.reason + ignoredNote };
  if (choice.adapter !== undefined) Object.freeze(choice.adapter);
  const frozen = Object.freeze(choice);
  cache = { key, options, choice: frozen };
  return frozen;
}

/**
 * One line for logs: backend, details, reason.
 *
 * @param choice What {@linkcode selectBackend} returned.
 * @returns E.g. `wasm (SIMD, 2 threads): auto: WebGPU refused, ...`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeBackend } from "@mfi/core";
 *
 * const line = describeBackend({ name: "wasm", reason: "requested (wasm)", threads: 2, simd: true });
 * assert.equal(line, "wasm (SIMD, 2 threads): requested (wasm)");
 * ```
 */
export function describeBackend(choice: BackendChoice): string {
  return `${backendLabel(choice)}: ${choice.reason}`;
}

/**
 * The backend and what it computes with, without the reason: what a result records to say
 * where it was computed.
 *
 * @param choice What {@linkcode selectBackend} returned.
 * @returns E.g. `wasm (SIMD, 2 threads)`, `cpu`, `webgpu (NVIDIA H100, vendor nvidia, hopper)`,
 *   `webgpu (software adapter: llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541, device 0)`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendLabel } from "@mfi/core";
 *
 * assert.equal(backendLabel({ name: "wasm", reason: "auto", threads: 1, simd: true }), "wasm (SIMD, 1 thread)");
 * assert.equal(backendLabel({ name: "cpu", reason: "auto", threads: 1, simd: false }), "cpu");
 * const adapter = { vendor: "65541", architecture: "", device: "0", description: "llvmpipe" };
 * assert.equal(
 *   backendLabel({ name: "webgpu", reason: "", threads: 1, simd: false, adapter, softwareAdapter: true }),
 *   "webgpu (software adapter: llvmpipe, vendor 65541, device 0)",
 * );
 * ```
 */
export function backendLabel(choice: BackendChoice): string {
  const details: string[] = [];
  if (choice.name === "wasm") {
    details.push(choice.simd ? "SIMD" : "no SIMD");
    details.push(`${choice.threads} thread${choice.threads === 1 ? "" : "s"}`);
  } else if (choice.name === "webgpu" && choice.adapter !== undefined) {
    const name = adapterName(choice.adapter);
    details.push(choice.softwareAdapter === true ? `software adapter: ${name}` : name);
  } else if (choice.name === "webgpu" && choice.softwareAdapter === true) {
    details.push("software adapter");
  }
  return details.length > 0 ? `${choice.name} (${details.join(", ")})` : choice.name;
}

/**
 * Whether a recorded backend label (from {@linkcode backendLabel}) says the work ran on a
 * software WebGPU adapter, for readers of results that kept only the label (phase results, bundle
 * metadata, reports).
 *
 * @param label A label as {@linkcode backendLabel} writes it.
 * @returns True for `webgpu (software adapter...)`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { labelSaysSoftwareAdapter } from "@mfi/core";
 *
 * assert.equal(labelSaysSoftwareAdapter("webgpu (software adapter: llvmpipe, vendor 65541)"), true);
 * assert.equal(labelSaysSoftwareAdapter("webgpu (NVIDIA H100, vendor nvidia, hopper)"), false);
 * assert.equal(labelSaysSoftwareAdapter("wasm (SIMD, 2 threads)"), false);
 * ```
 */
export function labelSaysSoftwareAdapter(label: string): boolean {
  return /^webgpu \(software adapter\b/.test(label);
}

/**
 * The backend {@linkcode selectBackend} chose last, if it is still tfjs's active backend.
 *
 * @returns The choice, or undefined (nothing selected yet, or the backend was changed since).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { activeBackend, selectBackend } from "@mfi/core";
 *
 * const choice = await selectBackend({ backend: "cpu" });
 * assert.equal(activeBackend(), choice);
 * ```
 */
export function activeBackend(): BackendChoice | undefined {
  return cache !== undefined && tf.getBackend() === cache.choice.name ? cache.choice : undefined;
}
