/**
 * A pool of worker threads that runs the shares of our own WASM kernels (see `src/simd.h`: every
 * export ends with `(part, parts)` and computes only its share, with a result that does not depend
 * on `parts`). Each worker instantiates the same kernel module on the same shared
 * `WebAssembly.Memory` (tfjs-backend-wasm's heap), so a share reads and writes the tensors in place.
 *
 * One call is one synchronisation: the calling thread writes the export's index and arguments into
 * a small control block (a `SharedArrayBuffer` of int32), publishes a new generation and wakes the
 * workers (`Atomics.notify`); it runs share 0 itself, then every agent (the caller included) claims
 * the remaining shares one at a time from a single atomic word that holds the generation, the
 * share count and the next share, until none is left; the caller waits (a short spin, then
 * `Atomics.wait`) until all shares are done. A share never waits for a worker that has not started
 * yet: the caller claims what nobody else took, so a pool whose workers are still loading (or
 * asleep) only runs slower, never hangs.
 *
 * Between calls a worker polls the generation for {@linkcode KernelPool.spinMicros} (300
 * microseconds by default) before it sleeps in `Atomics.wait`: the own kernels of a training step come tens to
 * hundreds of microseconds apart, and a worker that polls across the gap starts the next call at
 * once, where a sleeping one would cost the call a wake-up (and leave a small kernel's shares to
 * the caller). The caller notifies only when a worker is asleep. An idle pool sleeps and burns no
 * CPU, and a worker that finds itself descheduled while polling (the cores are busy with other
 * work, where polling would only take time from the threads that have work) sleeps at once and
 * polls no more for a while. {@linkcode KernelPool.stats} counts calls, wake-ups, calls the caller ran alone and the
 * time it waited for workers. A trap in any share is caught where it happens, and the
 * call throws an `Error` naming the kernel after every share has finished; the pool stays usable.
 *
 * Workers are `node:worker_threads` workers started from source (`eval: true`; no permission) and
 * `unref`'d, so an idle pool never keeps the process alive; {@linkcode KernelPool.dispose} ends
 * them (the owner calls it when the backend is torn down).
 *
 * @module
 */
import { Worker } from "node:worker_threads";

// Control block layout (int32 slots; the arguments are float64, see ARGS).
/** Generation counter: workers wait on it for new work. */
const GEN = 0;
/** The claim word: `(generation & GEN_MASK) << 16 | parts << 8 | next share`. */
const CLAIM = 1;
/** Shares finished in this generation. */
const DONE = 2;
/** 0, or 1 + the first failed share of this generation (set by compareExchange). */
const ERROR = 3;
/** Index of the export to run. */
const FN = 4;
/** Argument count. */
const NARGS = 5;
/** Set to 1 when the pool is disposed. */
const QUIT = 6;
/** Workers that have instantiated the module. */
const READY = 7;
/** Length of the first error's message (UTF-16 code units, in the message area). */
const MESSAGE_LENGTH = 8;
/** Workers blocked in (or about to enter) `Atomics.wait` on GEN: the caller notifies only then. */
const SLEEPING = 9;
/** How long (microseconds) a worker keeps polling for the next call before it sleeps. */
const SPIN_MICROS = 10;
/** Times a polling worker found it had been descheduled (and slept at once, see PREEMPTED_MS). */
const PREEMPTIONS = 11;
/**
 * First argument, as a float64 index into the same buffer (int32 slots 16 to 16 + 2 x
 * MAX_KERNEL_ARGS): a JavaScript number carries an i32 pointer or size and an f32 or f64
 * parameter alike, and each agent's call converts it to the export's parameter type exactly as a
 * direct call would.
 */
const ARGS = 8;
/** Most arguments an export may take (besides `part, parts`). */
export const MAX_KERNEL_ARGS = 48;
/** First int32 slot of the message area, one UTF-16 unit per slot. */
const MESSAGE = 2 * (ARGS + MAX_KERNEL_ARGS);
/** Longest error message a worker reports (longer ones are cut). */
const MESSAGE_CAPACITY = 400;
const SLOTS = MESSAGE + MESSAGE_CAPACITY;

/**
 * Generations wrap at 2^15 in the claim word. (Even a collision would be harmless: a worker reads
 * the export and arguments only after its claim succeeded, and a successful claim is always of a
 * share of the call in progress.)
 */
const GEN_MASK = 0x7fff;
/** Most shares per call: share numbers live in 8 bits of the claim word. */
export const MAX_POOL_SHARES = 255;
/** Most agents (caller + workers). */
export const MAX_POOL_THREADS = 64;
/**
 * Shares per agent and call by default. Every agent claims the next unclaimed share until none is
 * left, so finer shares let a fast core take over work from a slow one: a worker that woke late,
 * or a core that runs slower for a while (a virtual CPU whose host core is busy with other work
 * or runs at a lower clock: on a shared 2-vCPU host the same share took 2.8 ms on one core and
 * 4.9 ms on the other). With one share per agent the call waits for the slower one; with 8, at most
 * an eighth of it. Measured on such a host, ResNet-18 x0.25 training steps on 2 threads (15 steps
 * each, alternating processes): the calling thread waited 25 ms per step for the workers' shares
 * with 1 share per agent, 7.6 with 8, and the median step took 14 % less. A share costs one atomic
 * claim and its kernel's set-up, and the results do not depend on the number of shares. The
 * kernels make the shares shrink from about twice the even size to a small fraction of it
 * (`share_begin` in src/simd.h), so the last share an agent waits for is a small one: in one
 * process alternating the two builds, the wait fell from 4.7-7.7 to 0.9-2.3 ms per ResNet-18
 * step (8.9 to 3.3 for ResNet-50).
 */
export const SHARES_PER_THREAD = 8;

/**
 * How long a worker keeps polling for the next call after its last share before it sleeps in
 * `Atomics.wait` (microseconds; {@linkcode KernelPool.spinMicros} changes it). In a ResNet-18
 * training step 95 % of the gaps between own-kernel calls are under 150 microseconds (tfjs
 * kernels run in between) and 99 % under a millisecond: a worker that polls across such a gap
 * starts the next call at once, one that sleeps costs the call a wake-up (a notify of some 10
 * microseconds on the caller, longer until the worker runs) and leaves a small kernel's shares to
 * the caller. Longer polling would only cover the few long gaps, where tfjs's own (XNNPACK)
 * threads then compete with the polling worker for the cores. An idle pool (no call for this
 * long) sleeps and burns no CPU.
 */
export const DEFAULT_WORKER_SPIN_MICROS = 300;
/**
 * A polling worker that sees this many milliseconds pass between two reads of the clock (256
 * polls, a microsecond or two) was descheduled: the machine's cores are busy with other work.
 */
const PREEMPTED_MS = 0.1;
/** After such a preemption a worker sleeps right after each call for this many milliseconds. */
const QUIET_MS = 100;
/** Most spin time {@linkcode KernelPool.spinMicros} accepts (one second). */
export const MAX_WORKER_SPIN_MICROS = 1_000_000;
/** Spins of the caller waiting for the last shares before it sleeps. */
const CALLER_SPINS = 20000;

/** Whether this thread may block in `Atomics.wait` (Deno's main thread may). */
let canWait = true;

/** The control block's slots, as the worker's source spells them. */
const LAYOUT = JSON.stringify({
  GEN,
  CLAIM,
  DONE,
  ERROR,
  FN,
  NARGS,
  QUIT,
  READY,
  MESSAGE_LENGTH,
  SLEEPING,
  SPIN_MICROS,
  PREEMPTIONS,
  ARGS,
  MESSAGE,
  CAPACITY: MESSAGE_CAPACITY,
});

/** The worker's program (CommonJS, run by `node:worker_threads` with `eval: true`). */
const WORKER_SOURCE = `"use strict";
// Generated by @mfi/core (core/kernels/_pool.ts): a worker of the own-kernel pool.
const { parentPort } = require("node:worker_threads");
const {
  GEN, CLAIM, DONE, ERROR, FN, NARGS, QUIT, READY, MESSAGE_LENGTH, SLEEPING, SPIN_MICROS,
  PREEMPTIONS, ARGS, MESSAGE, CAPACITY,
} = ${LAYOUT};
const GEN_MASK = ${GEN_MASK};
const now = () => performance.now();
const PREEMPTED_MS = ${PREEMPTED_MS};
const QUIET_MS = ${QUIET_MS};
parentPort.once("message", ({ module, memory, control, names }) => {
  const c = new Int32Array(control);
  const f64 = new Float64Array(control);
  let fns;
  let startError;
  try {
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    fns = names.map((name) => exports[name]);
  } catch (e) {
    startError = e;
  }
  Atomics.add(c, READY, 1);
  Atomics.notify(c, READY);
  const fail = (share, e) => {
    if (Atomics.compareExchange(c, ERROR, 0, share + 1) !== 0) return;
    let text = String(e);
    if (startError !== undefined) text = "the worker could not instantiate the kernels: " + text;
    const n = Math.min(text.length, CAPACITY);
    for (let i = 0; i < n; i++) c[MESSAGE + i] = text.charCodeAt(i);
    Atomics.store(c, MESSAGE_LENGTH, n);
  };
  const work = (gen) => {
    for (;;) {
      const word = Atomics.load(c, CLAIM);
      if ((word >>> 16) !== (gen & GEN_MASK)) return;
      const parts = (word >> 8) & 255;
      const share = word & 255;
      if (share >= parts) return;
      if (Atomics.compareExchange(c, CLAIM, word, word + 1) !== word) continue;
      try {
        if (startError !== undefined) throw startError;
        const args = [];
        for (let i = 0, n = c[NARGS]; i < n; i++) args.push(f64[ARGS + i]);
        args.push(share, parts);
        fns[c[FN]](...args);
      } catch (e) {
        fail(share, e);
      }
      if (Atomics.add(c, DONE, 1) + 1 === parts) Atomics.notify(c, DONE);
    }
  };
  let seen = 0;
  let quietUntil = 0;
  for (;;) {
    // Poll for the next call until SPIN_MICROS have passed (the clock is read every 256 polls),
    // then sleep. A gap of more than PREEMPTED_MS between two clock reads means the thread was
    // descheduled: the cores are busy with other work, where polling only takes time from the
    // threads that have work (the caller among them), so the worker sleeps at once and does not
    // poll again for QUIET_MS. SLEEPING is raised before the wait re-checks GEN, so a caller that
    // published a new generation either sees it raised (and notifies) or the wait returns at once.
    let gen = Atomics.load(c, GEN);
    if (gen === seen) {
      let last = now();
      const until = quietUntil > last ? last : last + Atomics.load(c, SPIN_MICROS) / 1000;
      for (let i = 1; gen === seen && last < until; i++) {
        gen = Atomics.load(c, GEN);
        if ((i & 255) !== 0) continue;
        const t = now();
        if (t - last > PREEMPTED_MS) {
          quietUntil = t + QUIET_MS;
          Atomics.add(c, PREEMPTIONS, 1);
          break;
        }
        last = t;
      }
    }
    if (gen === seen) {
      Atomics.add(c, SLEEPING, 1);
      Atomics.wait(c, GEN, seen);
      Atomics.sub(c, SLEEPING, 1);
      continue;
    }
    seen = gen;
    if (Atomics.load(c, QUIT) !== 0) break;
    work(gen);
  }
  process.exit(0);
});
`;

/** What a pool's calls cost in synchronisation, summed since it started (or the last reset). */
export interface KernelPoolStats {
  /** Calls ({@linkcode KernelPool.run}). */
  readonly calls: number;
  /** Calls that found a worker asleep and had to wake it (`Atomics.notify`). */
  readonly wakeups: number;
  /** Calls whose shares all ran on the caller (every worker was late or asleep). */
  readonly callerOnly: number;
  /** Milliseconds the caller spent, after its last share, waiting for workers to finish theirs. */
  readonly waitMs: number;
  /**
   * Times a polling worker found it had been descheduled (the cores busy with other work) and
   * went to sleep at once, polling no more for a while.
   */
  readonly preemptions: number;
}

/** Options of {@linkcode KernelPool}. */
export interface KernelPoolOptions {
  /**
   * Shares per call, from `threads` to {@linkcode MAX_POOL_SHARES} (default `threads` x
   * {@linkcode SHARES_PER_THREAD}): the caller runs share 0, then every agent claims the next
   * unclaimed one. The kernels size the shares to shrink (share 0 about twice the even size, see
   * src/simd.h), so with only one or two shares per thread a call is lopsided.
   */
  readonly shares?: number;
}

/**
 * Runs the exports of one kernel module over `threads` agents: the calling thread and
 * `threads - 1` workers.
 */
export class KernelPool {
  readonly #names: readonly string[];
  readonly #callerFns: readonly ((...args: number[]) => void)[];
  readonly #control: Int32Array<SharedArrayBuffer>;
  readonly #args: Float64Array<SharedArrayBuffer>;
  readonly #workers: Worker[];
  readonly #threads: number;
  readonly #shares: number;
  #gen = 0;
  #workerShares = 0;
  #running = false;
  #disposed = false;
  #workerFailed = false;
  #calls = 0;
  #wakeups = 0;
  #callerOnly = 0;
  #waitMs = 0;

  /**
   * Starts `threads - 1` workers, each instantiating `module` on `memory` (asynchronously: until
   * a worker is ready the other agents take its shares).
   *
   * @param module The kernel module (importing `env.memory`).
   * @param memory The shared memory it runs on.
   * @param threads Agents per call, the caller included (2 to {@linkcode MAX_POOL_THREADS}).
   * @param options Shares per call.
   * @throws {RangeError} If `threads` or `shares` is out of range or `memory` is not shared.
   */
  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    threads: number,
    options: KernelPoolOptions = {},
  ) {
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_POOL_THREADS) {
      throw new RangeError(
        `KernelPool: threads must be a whole number from 2 to ${MAX_POOL_THREADS}, got ${threads}` +
          " (run a single share directly instead of through a pool).",
      );
    }
    const shares = options.shares ?? Math.min(MAX_POOL_SHARES, threads * SHARES_PER_THREAD);
    if (!Number.isInteger(shares) || shares < threads || shares > MAX_POOL_SHARES) {
      throw new RangeError(
        `KernelPool: shares must be a whole number from threads (${threads}) to ` +
          `${MAX_POOL_SHARES}, got ${shares}.`,
      );
    }
    this.#shares = shares;
    if (!(memory.buffer instanceof SharedArrayBuffer)) {
      throw new RangeError(
        "KernelPool: the memory is not shared (workers can only run on a shared WebAssembly.Memory).",
      );
    }
    this.#threads = threads;
    this.#names = WebAssembly.Module.exports(module)
      .filter((e) => e.kind === "function")
      .map((e) => e.name);
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    this.#callerFns = this.#names.map((name) => exports[name] as (...args: number[]) => void);
    this.#control = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
    this.#args = new Float64Array(this.#control.buffer, 0, ARGS + MAX_KERNEL_ARGS);
    this.#control[SPIN_MICROS] = DEFAULT_WORKER_SPIN_MICROS;
    this.#workers = [];
    try {
      for (let i = 1; i < threads; i++) {
        const worker = new Worker(WORKER_SOURCE, { eval: true });
        this.#workers.push(worker);
        worker.unref();
        // A worker that dies takes no more shares (the others take them): say so once, never
        // crash the process with an unhandled "error" event.
        worker.on("error", (e: unknown) => {
          if (this.#disposed || this.#workerFailed) return;
          this.#workerFailed = true;
          console.warn(
            `Own WASM kernel pool: a worker stopped (${String(e)}); its shares run on the other ` +
              "threads from now on.",
          );
        });
        worker.postMessage({ module, memory, control: this.#control.buffer, names: this.#names });
      }
    } catch (e) {
      for (const worker of this.#workers) void worker.terminate();
      throw new Error(
        `Cannot start the own WASM kernel pool of ${threads} threads: ${String(e)}. Run the ` +
          "backend with threads: 1 (selectBackend's threads option, or MFI_THREADS=1).",
        { cause: e },
      );
    }
  }

  /** Agents per call, the caller included. */
  get threads(): number {
    return this.#threads;
  }

  /** Shares per call (`parts` of the kernels). */
  get shares(): number {
    return this.#shares;
  }

  /** Whether {@linkcode KernelPool.dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Workers that have instantiated the module so far. */
  get readyWorkers(): number {
    return Atomics.load(this.#control, READY);
  }

  /**
   * How long (microseconds) a worker polls for the next call after its last share before it
   * sleeps (default {@linkcode DEFAULT_WORKER_SPIN_MICROS}); takes effect from each worker's next
   * idle period.
   *
   * @throws {RangeError} On setting a value that is not a whole number from 0 to
   *   {@linkcode MAX_WORKER_SPIN_MICROS}.
   */
  get spinMicros(): number {
    return Atomics.load(this.#control, SPIN_MICROS);
  }

  set spinMicros(micros: number) {
    if (!Number.isInteger(micros) || micros < 0 || micros > MAX_WORKER_SPIN_MICROS) {
      throw new RangeError(
        `KernelPool: spinMicros must be a whole number from 0 to ${MAX_WORKER_SPIN_MICROS}, ` +
          `got ${micros}.`,
      );
    }
    Atomics.store(this.#control, SPIN_MICROS, micros);
  }

  /** Workers asleep in `Atomics.wait` (idle longer than {@linkcode KernelPool.spinMicros}). */
  get sleepingWorkers(): number {
    return Atomics.load(this.#control, SLEEPING);
  }

  /** Synchronisation counters since the pool started or {@linkcode KernelPool.resetStats}. */
  get stats(): KernelPoolStats {
    return {
      calls: this.#calls,
      wakeups: this.#wakeups,
      callerOnly: this.#callerOnly,
      waitMs: this.#waitMs,
      preemptions: Atomics.load(this.#control, PREEMPTIONS),
    };
  }

  /** Sets the {@linkcode KernelPool.stats} counters to zero. */
  resetStats(): void {
    this.#calls = 0;
    this.#wakeups = 0;
    this.#callerOnly = 0;
    this.#waitMs = 0;
    Atomics.store(this.#control, PREEMPTIONS, 0);
  }

  /** Shares the workers ran in the last call (the caller ran the others). */
  get lastWorkerShares(): number {
    return this.#workerShares;
  }

  /**
   * Waits (asynchronously) until every worker has instantiated the module, e.g. before timing.
   *
   * @param timeoutMs Give up after this long.
   * @throws {Error} If the workers are not ready in time.
   */
  async ready(timeoutMs = 30_000): Promise<void> {
    const start = performance.now();
    while (this.readyWorkers < this.#threads - 1) {
      if (performance.now() - start > timeoutMs) {
        throw new Error(
          `KernelPool: only ${this.readyWorkers} of ${this.#threads - 1} workers started within ` +
            `${timeoutMs} ms.`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /**
   * Runs export `name` over all shares `(part, shares)` and returns when every share is done.
   *
   * @param name The export.
   * @param args Its arguments without `(part, parts)` (pointers, sizes, floats).
   * @throws {Error} If a share traps (naming the kernel and the share; the pool stays usable), if
   *   `name` is not an export, or if the pool was disposed.
   */
  run(name: string, args: readonly number[]): void {
    const fn = this.#names.indexOf(name);
    if (fn < 0) {
      throw new Error(`KernelPool: the kernel module has no export ${JSON.stringify(name)}.`);
    }
    if (this.#disposed) {
      throw new Error(`KernelPool: cannot run ${name}, the pool was disposed with its backend.`);
    }
    if (args.length > MAX_KERNEL_ARGS) {
      throw new RangeError(
        `KernelPool: ${name} got ${args.length} arguments, at most ${MAX_KERNEL_ARGS} fit.`,
      );
    }
    if (this.#running) {
      throw new Error(`KernelPool: ${name} was called while another kernel call was running.`);
    }
    this.#running = true;
    try {
      this.#dispatch(fn, args);
    } finally {
      this.#running = false;
    }
  }

  #dispatch(fn: number, args: readonly number[]): void {
    const c = this.#control;
    const parts = this.#shares;
    const gen = this.#gen = (this.#gen % GEN_MASK) + 1;
    c[FN] = fn;
    c[NARGS] = args.length;
    for (let i = 0; i < args.length; i++) this.#args[ARGS + i] = args[i];
    Atomics.store(c, DONE, 0);
    Atomics.store(c, ERROR, 0);
    // Share 0 is the caller's: the claimable shares start at 1.
    Atomics.store(c, CLAIM, (gen << 16) | (parts << 8) | 1);
    Atomics.store(c, GEN, gen);
    // A worker raises SLEEPING before its wait re-checks GEN: notifying only when one is raised
    // misses none (and spares the notify's lock while the workers poll).
    if (Atomics.load(c, SLEEPING) !== 0) {
      Atomics.notify(c, GEN);
      this.#wakeups++;
    }
    this.#calls++;
    const call = this.#callerFns[fn];
    let callerError: { share: number; error: unknown } | undefined;
    let callerShares = 0;
    const runShare = (share: number) => {
      callerShares++;
      try {
        call(...args, share, parts);
      } catch (error) {
        callerError ??= { share, error };
      }
      Atomics.add(c, DONE, 1);
    };
    runShare(0);
    for (;;) {
      const word = Atomics.load(c, CLAIM);
      const share = word & 255;
      if (share >= parts) break;
      if (Atomics.compareExchange(c, CLAIM, word, word + 1) === word) runShare(share);
    }
    if (Atomics.load(c, DONE) !== parts) {
      const start = performance.now();
      this.#awaitDone(parts);
      this.#waitMs += performance.now() - start;
    }
    this.#workerShares = parts - callerShares;
    if (callerShares === parts) this.#callerOnly++;
    const name = this.#names[fn];
    if (callerError !== undefined) {
      const { share, error } = callerError;
      throw new Error(
        `Own WASM kernel ${name} failed in share ${share} of ${parts} (on the calling thread): ${
          String(error)
        }`,
        { cause: error },
      );
    }
    const failed = Atomics.load(c, ERROR);
    if (failed !== 0) {
      const n = Atomics.load(c, MESSAGE_LENGTH);
      let text = "";
      for (let i = 0; i < n; i++) text += String.fromCharCode(c[MESSAGE + i]);
      throw new Error(
        `Own WASM kernel ${name} failed in share ${
          failed - 1
        } of ${parts} (in a pool worker): ${text}`,
      );
    }
  }

  /** Spins, then sleeps, until all `parts` shares of the current call are done. */
  #awaitDone(parts: number): void {
    const c = this.#control;
    for (let spins = 0;;) {
      const done = Atomics.load(c, DONE);
      if (done === parts) return;
      if (spins < CALLER_SPINS || !canWait) spins++;
      else {
        try {
          Atomics.wait(c, DONE, done);
        } catch {
          canWait = false; // a thread that may not block (a browser's main thread): spin
        }
      }
    }
  }

  /**
   * Ends the workers (idempotent). Later {@linkcode KernelPool.run} calls throw.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const c = this.#control;
    Atomics.store(c, QUIT, 1);
    Atomics.store(c, GEN, (this.#gen % GEN_MASK) + 1);
    Atomics.notify(c, GEN);
    for (const worker of this.#workers) void worker.terminate();
    this.#workers.length = 0;
  }
}
