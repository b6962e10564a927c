/**
 * The WASM SIMD roof of this machine: the float32 rate one WebAssembly thread reaches when it does
 * nothing but 128-bit fused multiply-adds. A tiny module, encoded here byte by byte (no toolchain),
 * runs {@linkcode SIMD_ROOF_CHAINS} independent `f32x4` chains `acc = acc * a + b` (enough to hide
 * the latency of the multiply-add units), with `f32x4.relaxed_madd` where the runtime validates
 * relaxed SIMD and `f32x4.mul` + `f32x4.add` otherwise. Each thread is a worker instantiating the
 * same module; they start together and the roof is their total flops over the wall time of the
 * slowest. Kernels and training steps are then reported as a fraction of this rate.
 *
 * @module
 */
import {
  BLOCK,
  BR_IF,
  EMPTY,
  END,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_RELAXED_MADD,
  I32_CONST,
  I32_EQZ,
  I32_SUB,
  laneSum,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  LOOP,
  measurementModule,
  SIMD,
  sleb,
  startValue,
  uleb,
  V128,
  v128Const,
  vec,
} from "./_wasm_encode.ts";
import { SIMD_TILE_FLOPS_PER_ITERATION, simdTileChecksum, simdTileModule } from "./simd_tile.ts";

/** Independent `f32x4` accumulator chains in the roof loop. */
export const SIMD_ROOF_CHAINS = 12;
/** Rounds of all chains per loop iteration (the loop body is unrolled this often). */
export const SIMD_ROOF_UNROLL = 8;
/** Floating-point operations per loop iteration: chains x 4 lanes x (multiply + add) x unroll. */
export const SIMD_ROOF_FLOPS_PER_ITERATION: number = SIMD_ROOF_CHAINS * 4 * 2 * SIMD_ROOF_UNROLL;

/** The multiplier and addend of every chain: `acc * 0.5` is exact, so fused = unfused. */
const A = 0.5;
const B = 1;

/**
 * The roof module's bytes: one export, `roof(iterations: i32) -> f32`, that runs `iterations`
 * loop iterations ({@linkcode SIMD_ROOF_FLOPS_PER_ITERATION} flops each) and returns the sum of
 * every lane of every chain (a checksum, see {@linkcode simdRoofChecksum}).
 *
 * @param options `relaxed`: use `f32x4.relaxed_madd` (true) or `f32x4.mul` + `f32x4.add`.
 * @returns The module's binary.
 * @example
 * ```ts
 * import { simdRoofModule } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.ok(WebAssembly.validate(simdRoofModule({ relaxed: false })));
 * ```
 */
export function simdRoofModule(options: { readonly relaxed: boolean }): Uint8Array<ArrayBuffer> {
  const n = 0; // the parameter: iterations left
  const acc = (k: number) => 1 + k;
  const a = 1 + SIMD_ROOF_CHAINS;
  const b = a + 1;
  const body: number[] = [];
  for (let k = 0; k < SIMD_ROOF_CHAINS; k++) {
    body.push(...v128Const([0, 1, 2, 3].map((l) => startValue(k, l))), LOCAL_SET, acc(k));
  }
  body.push(...v128Const([A, A, A, A]), LOCAL_SET, a, ...v128Const([B, B, B, B]), LOCAL_SET, b);
  body.push(BLOCK, EMPTY, LOCAL_GET, n, I32_EQZ, BR_IF, 0, LOOP, EMPTY);
  for (let u = 0; u < SIMD_ROOF_UNROLL; u++) {
    for (let k = 0; k < SIMD_ROOF_CHAINS; k++) {
      body.push(LOCAL_GET, acc(k), LOCAL_GET, a);
      if (options.relaxed) body.push(LOCAL_GET, b, SIMD, ...uleb(F32X4_RELAXED_MADD));
      else body.push(SIMD, ...uleb(F32X4_MUL), LOCAL_GET, b, SIMD, ...uleb(F32X4_ADD));
      body.push(LOCAL_SET, acc(k));
    }
  }
  body.push(LOCAL_GET, n, I32_CONST, ...sleb(1), I32_SUB, LOCAL_TEE, n, BR_IF, 0, END, END);
  body.push(...laneSum(Array.from({ length: SIMD_ROOF_CHAINS }, (_, k) => acc(k))), END);
  return measurementModule(vec([[...uleb(SIMD_ROOF_CHAINS + 2), V128]]), body);
}

/**
 * Whether this runtime validates relaxed SIMD (the roof module with `f32x4.relaxed_madd`).
 *
 * @returns True where `WebAssembly.validate` accepts it.
 * @example
 * ```ts
 * import { hasRelaxedSimd } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(typeof hasRelaxedSimd(), "boolean");
 * ```
 */
export function hasRelaxedSimd(): boolean {
  try {
    return WebAssembly.validate(simdRoofModule({ relaxed: true }));
  } catch {
    return false;
  }
}

/**
 * What `roof(iterations)` must return, computed in JavaScript with float32 rounding. After about
 * 25 rounds every lane has converged to `b / (1 - a) = 2`, so small counts are the telling ones.
 *
 * @param iterations Loop iterations (each one is {@linkcode SIMD_ROOF_UNROLL} rounds).
 * @returns The float32 sum of all lanes.
 * @example
 * ```ts
 * import { SIMD_ROOF_CHAINS, simdRoofChecksum } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(simdRoofChecksum(1000), SIMD_ROOF_CHAINS * 4 * 2);
 * ```
 */
export function simdRoofChecksum(iterations: number): number {
  const rounds = Math.min(iterations * SIMD_ROOF_UNROLL, 200); // fixed point long before 200
  let sum = Math.fround(0);
  for (let k = 0; k < SIMD_ROOF_CHAINS; k++) {
    for (let lane = 0; lane < 4; lane++) {
      let v = startValue(k, lane);
      for (let r = 0; r < rounds; r++) v = Math.fround(Math.fround(v * A) + B);
      sum = Math.fround(sum + v);
    }
  }
  return sum;
}

/**
 * Which loop {@linkcode measureSimdRoof} runs: `"chains"`, the roof (multiply-adds only), or
 * `"tile"`, the convolution kernels' register tile with its loads (see `simd_tile.ts`).
 */
export type SimdLoop = "chains" | "tile";

/** The roof measured on some number of threads. */
export interface SimdRoof {
  /** The loop that ran. */
  readonly loop: SimdLoop;
  /** Worker threads that ran the loop at the same time. */
  readonly threads: number;
  /** Whether the loop used `f32x4.relaxed_madd` (else `f32x4.mul` + `f32x4.add`). */
  readonly relaxed: boolean;
  /** Total rate of all threads, GFLOP/s (best of the repeats). */
  readonly gflops: number;
  /** `gflops / threads`. */
  readonly perThreadGflops: number;
}

/** Options of {@linkcode measureSimdRoof}. */
export interface SimdRoofOptions {
  /** Concurrent worker threads (default 1). */
  readonly threads?: number;
  /** Seconds each timed repeat should take, roughly (default 0.3). */
  readonly seconds?: number;
  /** Timed repeats; the best counts (default 3). */
  readonly repeats?: number;
  /** Force the plain mul+add loop even where relaxed SIMD validates (default: detect). */
  readonly relaxed?: boolean;
  /** The loop (default `"chains"`: the roof). */
  readonly loop?: SimdLoop;
}

// The worker: instantiates the module it is sent, then on each `run` message waits at the shared
// start line (so that all threads start together) and reports its own time and checksum.
const WORKER_SOURCE = `
let roof;
self.onmessage = async (e) => {
  const m = e.data;
  if (m.module) {
    roof = (await WebAssembly.instantiate(m.module)).exports.roof;
    self.postMessage({ ready: true });
    return;
  }
  const flag = new Int32Array(m.start);
  Atomics.add(flag, 1, 1);
  while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0, 5);
  const t0 = performance.now();
  const checksum = roof(m.iterations);
  self.postMessage({ ms: performance.now() - t0, checksum });
};
`;

class RoofWorker {
  readonly #worker: Worker;
  #pending: ((m: Record<string, number>) => void) | undefined;
  #failed: ((e: Error) => void) | undefined;

  constructor() {
    const url = `data:application/javascript,${encodeURIComponent(WORKER_SOURCE)}`;
    this.#worker = new Worker(url, { type: "module" });
    this.#worker.onmessage = (e) => this.#pending?.(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#failed?.(new Error(`SIMD roof worker failed: ${e.message}`));
    };
  }

  request(message: unknown): Promise<Record<string, number>> {
    return new Promise((resolve, reject) => {
      this.#pending = resolve;
      this.#failed = reject;
      this.#worker.postMessage(message);
    });
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/**
 * Measures the WASM SIMD roof: `threads` workers run the roof loop at the same time, and the rate
 * is their flops over the slowest one's time (best of `repeats`). Each result's checksum is checked
 * against {@linkcode simdRoofChecksum}. With `loop: "tile"` the workers run the tile loop instead
 * (the convolution kernels' 6 x 8 register tile with its 8 loads per 12 multiply-adds, checked
 * against {@linkcode simdTileChecksum}): its rate over the roof's says what loads and their bounds
 * checks cost on this machine.
 *
 * @param options Threads, seconds per repeat, repeats, relaxed SIMD or not, the loop.
 * @returns The roof in GFLOP/s, total and per thread.
 * @throws {RangeError} If `threads`, `seconds` or `repeats` is not a positive number (threads and
 *   repeats whole).
 * @throws {Error} If the runtime has no WASM SIMD, relaxed SIMD is asked for where it does not
 *   validate, or a worker returns a wrong checksum.
 * @example
 * ```ts
 * import { measureSimdRoof } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const roof = await measureSimdRoof({ threads: 1, seconds: 0.01, repeats: 1 });
 * assert.ok(roof.gflops > 0 && roof.perThreadGflops === roof.gflops);
 * const tile = await measureSimdRoof({ seconds: 0.01, repeats: 1, loop: "tile" });
 * assert.equal(tile.loop, "tile");
 * ```
 */
export async function measureSimdRoof(options: SimdRoofOptions = {}): Promise<SimdRoof> {
  const threads = options.threads ?? 1;
  const seconds = options.seconds ?? 0.3;
  const repeats = options.repeats ?? 3;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(
      `Cannot measure the SIMD roof: threads must be a whole number >= 1, got ${threads}`,
    );
  }
  if (!(seconds > 0 && Number.isFinite(seconds))) {
    throw new RangeError(`Cannot measure the SIMD roof: seconds must be > 0, got ${seconds}`);
  }
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(
      `Cannot measure the SIMD roof: repeats must be a whole number >= 1, got ${repeats}`,
    );
  }
  const loop = options.loop ?? "chains";
  if (loop !== "chains" && loop !== "tile") {
    throw new RangeError(
      `Cannot measure the SIMD roof: loop must be "chains" or "tile", got ${JSON.stringify(loop)}`,
    );
  }
  const relaxed = options.relaxed ?? hasRelaxedSimd();
  const bytes = loop === "tile" ? simdTileModule({ relaxed }) : simdRoofModule({ relaxed });
  const flopsPerIteration = loop === "tile"
    ? SIMD_TILE_FLOPS_PER_ITERATION
    : SIMD_ROOF_FLOPS_PER_ITERATION;
  if (!WebAssembly.validate(bytes)) {
    throw new Error(
      relaxed
        ? "Cannot measure the SIMD roof: this runtime does not validate relaxed SIMD; pass relaxed: false."
        : "Cannot measure the SIMD roof: this runtime has no WebAssembly SIMD.",
    );
  }
  const module = await WebAssembly.compile(bytes);
  const workers = Array.from({ length: threads }, () => new RoofWorker());
  try {
    await Promise.all(workers.map((w) => w.request({ module })));
    const run = async (iterations: number): Promise<number> => {
      const start = new SharedArrayBuffer(8);
      const flag = new Int32Array(start);
      const results = workers.map((w) => w.request({ start, iterations }));
      // Release the threads together once all are waiting at the line.
      while (Atomics.load(flag, 1) < threads) await new Promise((r) => setTimeout(r, 1));
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      const done = await Promise.all(results);
      const expected = loop === "tile" ? simdTileChecksum() : simdRoofChecksum(iterations);
      for (const d of done) {
        if (d.checksum !== expected) {
          throw new Error(
            `SIMD roof: checksum ${d.checksum} differs from the expected ${expected}`,
          );
        }
      }
      return Math.max(...done.map((d) => d.ms)) / 1000;
    };
    // Calibrate: grow the count until a run takes a tenth of the target, then scale to it.
    let iterations = 1000;
    let t = await run(iterations);
    while (t < seconds / 10 && iterations < 2 ** 30) {
      iterations *= 4;
      t = await run(iterations);
    }
    iterations = Math.max(1, Math.min(2 ** 31 - 1, Math.round(iterations * seconds / t)));
    let best = Infinity;
    for (let r = 0; r < repeats; r++) best = Math.min(best, await run(iterations));
    const gflops = (threads * iterations * flopsPerIteration) / best / 1e9;
    return { loop, threads, relaxed, gflops, perThreadGflops: gflops / threads };
  } finally {
    for (const w of workers) w.terminate();
  }
}
