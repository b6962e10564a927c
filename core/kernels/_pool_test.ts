import assert from "node:assert/strict";
import {
  DEFAULT_WORKER_SPIN_MICROS,
  KernelPool,
  MAX_KERNEL_ARGS,
  MAX_POOL_SHARES,
  MAX_POOL_THREADS,
  MAX_WORKER_SPIN_MICROS,
  SHARES_PER_THREAD,
} from "./_pool.ts";
import { ownKernelBytes, type OwnKernels, ownKernelsRelaxed } from "./_own_kernels.ts";
import { runWithoutPermission } from "./_test_util.ts";

const FILTER = "conv2d_backprop_filter_f32";

/** A shared memory like the threaded backend's (its maximum is what the kernel binaries import). */
function sharedMemory(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
}

function filterModule(): WebAssembly.Module {
  return new WebAssembly.Module(ownKernelBytes(true, ownKernelsRelaxed()));
}

// [n, h, w, cin, cout, k, stride, pad]: vector tiles, their tails, strides, more shares than units.
const shapes: number[][] = [
  [2, 7, 6, 5, 11, 3, 2, 1],
  [3, 9, 9, 16, 24, 3, 1, 1],
  [1, 8, 8, 6, 20, 1, 1, 0],
  [2, 11, 10, 3, 9, 7, 2, 3],
  [1, 5, 5, 2, 3, 1, 1, 0], // one (tap, block) unit: every share but one is empty
];

/**
 * Fills x and dy of each shape at float offset `base` of `memory`, runs the backward-filter kernel
 * as one share on the calling thread and through `pool`, and asserts the same bits (and nothing
 * written outside dw); returns how many shares the pool's workers ran.
 */
function assertPoolMatchesSingleShare(
  pool: KernelPool | undefined,
  memory: WebAssembly.Memory,
  base: number,
): number {
  let workerShares = 0;
  const single = (new WebAssembly.Instance(filterModule(), { env: { memory } })
    .exports as unknown as OwnKernels)[FILTER] as (...args: number[]) => void;
  for (const [n, h, w, cin, cout, k, s, p] of shapes) {
    const ho = Math.floor((h + 2 * p - k) / s) + 1;
    const wo = Math.floor((w + 2 * p - k) / s) + 1;
    const f32 = new Float32Array(memory.buffer);
    const xo = base, dyo = xo + n * h * w * cin, dwo = dyo + n * ho * wo * cout;
    const size = k * k * cin * cout;
    for (let i = 0; i < n * h * w * cin; i++) f32[xo + i] = Math.sin(i * 0.37);
    for (let i = 0; i < n * ho * wo * cout; i++) f32[dyo + i] = Math.cos(i * 0.21);
    const args = [4 * xo, 4 * dyo, 4 * dwo, n, h, w, cin, ho, wo, cout, k, k, s, s, p, p];
    f32.fill(123, dwo, dwo + size + 1);
    single(...args, 0, 1);
    const want = f32.slice(dwo, dwo + size);
    for (let repeat = 0; repeat < 3; repeat++) {
      f32.fill(-7, dwo, dwo + size);
      if (pool === undefined) single(...args, 0, 1);
      else pool.run(FILTER, args);
      workerShares += pool?.lastWorkerShares ?? 0;
      const got = f32.subarray(dwo, dwo + size);
      const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
      assert.equal(bad, -1, `shape ${[n, h, w, cin, cout, k, s, p]}: element ${bad} differs`);
      assert.equal(f32[dwo + size], 123, "wrote past dw");
    }
  }
  return workerShares;
}

Deno.test("a pool of 2 or 3 threads (2 or 3 shares, or 7) gives the bits of a single share, also after the memory grew", async () => {
  const memory = sharedMemory(40);
  assertPoolMatchesSingleShare(undefined, memory, 1024);
  const cases: [number, number | undefined][] = [[2, undefined], [3, undefined], [2, 7]];
  for (const [threads, shares] of cases) {
    const pool = new KernelPool(filterModule(), memory, threads, { shares });
    try {
      assert.equal(pool.threads, threads);
      assert.equal(pool.shares, shares ?? threads * SHARES_PER_THREAD);
      // Before the workers are up the caller takes their shares: same bits, no wait.
      assertPoolMatchesSingleShare(pool, memory, 1024);
      await pool.ready();
      assert.equal(pool.readyWorkers, threads - 1);
      // A worker that wakes late leaves its shares to the caller: repeat until workers took some.
      let workerShares = 0;
      for (let i = 0; i < 50 && workerShares === 0; i++) {
        workerShares += assertPoolMatchesSingleShare(pool, memory, 1024);
      }
      assert.ok(workerShares > 0, "the workers never ran a share");
      // The memory grows in place (as emscripten's heap does): the workers see the new pages.
      const end = memory.buffer.byteLength / 4;
      memory.grow(20);
      assertPoolMatchesSingleShare(pool, memory, end + 16);
    } finally {
      pool.dispose();
    }
  }
});

Deno.test("pool workers see pages the memory grew by after they started", async () => {
  const memory = sharedMemory(1);
  const pool = new KernelPool(testModule(), memory, 2, { shares: 2 });
  try {
    await pool.ready();
    memory.grow(3);
    // Share 1 always runs in the worker (share 0 waits for it), here on a page added after it
    // started; it would trap if the worker still saw one page.
    const p = 3 * 65536 + 64;
    new Int32Array(memory.buffer).fill(0, p / 4, p / 4 + 3);
    pool.run("wait_then_add", [p]);
    assert.equal(pool.lastWorkerShares, 1);
    assert.equal(new Int32Array(memory.buffer)[p / 4], 1);
  } finally {
    pool.dispose();
  }
});

// A module of five test kernels over a shared memory, each `(p, part, parts)`:
// - wait_then_trap: share 0 spins until another share has stored 1 at p, every other share stores
//   it and traps (so the trap happens in a worker: the caller always runs share 0);
// - trap_in_caller: share 0 traps;
// - count: adds 1 at p + 4 and sets bit `part` at p + 8;
// - wait_then_add: share 0 spins until another share has added 1 at p, every other share adds it;
// - fill_f32(p, value: f32, part, parts): stores value at p + 4 part; share 0 first waits until
//   share 1 (a worker's, then) has stored a value that is not +0.
function testModule(): WebAssembly.Module {
  const uleb = (n: number) => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const str = (t: string) => [t.length, ...new TextEncoder().encode(t)];
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
  const body = (code: number[]) => [...uleb(code.length + 1), 0, ...code];
  const [get, i32c, eqz, atomic, end] = [0x20, 0x41, 0x45, 0xfe, 0x0b];
  const waitThenTrap = [
    ...[get, 1, eqz, 0x04, 0x40], // if part == 0
    ...[0x03, 0x40, get, 0, atomic, 0x10, 2, 0, eqz, 0x0d, 0, end], // loop until load(p) != 0
    0x05, // else
    ...[get, 0, i32c, 1, atomic, 0x17, 2, 0, 0x00], // store(p, 1); unreachable
    end,
    end,
  ];
  const trapInCaller = [get, 1, eqz, 0x04, 0x40, 0x00, end, end];
  const count = [
    ...[get, 0, i32c, 1, atomic, 0x1e, 2, 4, 0x1a], // atomic add 1 at p + 4
    ...[get, 0, i32c, 1, get, 1, 0x74, atomic, 0x33, 2, 8, 0x1a], // atomic or (1 << part) at p + 8
    end,
  ];
  const waitThenAdd = [
    ...[get, 1, eqz, 0x04, 0x40], // if part == 0
    ...[0x03, 0x40, get, 0, atomic, 0x10, 2, 0, eqz, 0x0d, 0, end], // loop until load(p) != 0
    0x05, // else
    ...[get, 0, i32c, 1, atomic, 0x1e, 2, 0, 0x1a], // atomic add 1 at p
    end,
    end,
  ];
  const fillF32 = [
    ...[get, 2, eqz, 0x04, 0x40], // if part == 0
    ...[0x03, 0x40, get, 0, atomic, 0x10, 2, 4, eqz, 0x0d, 0, end], // loop until load(p + 4) != 0
    end,
    ...[get, 0, get, 2, i32c, 2, 0x74, 0x6a], // p + 4 part
    ...[get, 1, 0xbc, atomic, 0x17, 2, 0], // atomic store of the value's bits
    end,
  ];
  const names = ["wait_then_trap", "trap_in_caller", "count", "wait_then_add", "fill_f32"];
  const bytes = [
    ...[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, [2, 0x60, 3, 0x7f, 0x7f, 0x7f, 0, 0x60, 4, 0x7f, 0x7d, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...str("env"), ...str("memory"), 0x02, 0x03, 1, ...uleb(65536)]),
    ...section(3, [5, 0, 0, 0, 0, 1]),
    ...section(7, [5, ...names.flatMap((name, i) => [...str(name), 0x00, i])]),
    ...section(10, [
      5,
      ...body(waitThenTrap),
      ...body(trapInCaller),
      ...body(count),
      ...body(waitThenAdd),
      ...body(fillF32),
    ]),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

Deno.test("a trap in a worker or in the caller throws an Error naming the kernel; the pool stays usable", async () => {
  const memory = sharedMemory(1);
  const i32 = new Int32Array(memory.buffer);
  for (const threads of [2, 3]) {
    // One share per thread: the share numbers below are the agents'.
    const pool = new KernelPool(testModule(), memory, threads, { shares: threads });
    try {
      await pool.ready();
      const countOnce = () => {
        i32.fill(0, 0, 4);
        pool.run("count", [0]);
        assert.deepEqual([i32[1], i32[2]], [threads, (1 << threads) - 1]);
      };
      countOnce();
      const finer = new KernelPool(testModule(), memory, threads, { shares: 9 });
      try {
        i32.fill(0, 0, 4);
        finer.run("count", [0]);
        assert.deepEqual([i32[1], i32[2]], [9, (1 << 9) - 1]);
      } finally {
        finer.dispose();
      }
      i32[0] = 0;
      // With 2 threads share 1 can only run in the worker (the caller waits in share 0 until it
      // has started); with 3 the caller may take share 2 afterwards and trap as well.
      assert.throws(
        () => pool.run("wait_then_trap", [0]),
        new RegExp(
          `^Error: Own WASM kernel wait_then_trap failed in share [1-${
            threads - 1
          }] of ${threads} ` +
            `\\((in a pool worker${threads > 2 ? "|on the calling thread" : ""})\\): ` +
            "RuntimeError: unreachable$",
        ),
      );
      countOnce();
      assert.throws(
        () => pool.run("trap_in_caller", [0]),
        new RegExp(
          `^Error: Own WASM kernel trap_in_caller failed in share 0 of ${threads} \\(on the ` +
            `calling thread\\): RuntimeError: unreachable$`,
        ),
      );
      countOnce();
    } finally {
      pool.dispose();
    }
  }
});

Deno.test("KernelPool rejects bad thread counts, plain memories, unknown exports, too many arguments and use after dispose", () => {
  const memory = sharedMemory(1);
  for (const threads of [1, 0, 1.5, MAX_POOL_THREADS + 1, NaN]) {
    assert.throws(
      () => new KernelPool(testModule(), memory, threads),
      new RegExp(
        `RangeError: KernelPool: threads must be a whole number from 2 to ` +
          `${MAX_POOL_THREADS}, got ${threads}`,
      ),
    );
  }
  for (const shares of [1, 2.5, MAX_POOL_SHARES + 1]) {
    assert.throws(
      () => new KernelPool(testModule(), memory, 3, { shares }),
      new RegExp(
        `RangeError: KernelPool: shares must be a whole number from threads \\(3\\) to ` +
          `${MAX_POOL_SHARES}, got ${shares}`,
      ),
    );
  }
  assert.throws(
    () =>
      new KernelPool(
        new WebAssembly.Module(ownKernelBytes(false)),
        new WebAssembly.Memory({ initial: 1 }),
        2,
      ),
    /RangeError: KernelPool: the memory is not shared/,
  );
  const pool = new KernelPool(testModule(), memory, 2);
  try {
    assert.throws(() => pool.run("nope", [0]), /the kernel module has no export "nope"/);
    assert.throws(
      () => pool.run("count", new Array(MAX_KERNEL_ARGS + 1).fill(0)),
      new RegExp(`count got ${MAX_KERNEL_ARGS + 1} arguments, at most ${MAX_KERNEL_ARGS} fit`),
    );
  } finally {
    pool.dispose();
  }
  pool.dispose(); // idempotent
  assert.equal(pool.disposed, true);
  assert.throws(() => pool.run("count", [0]), /cannot run count, the pool was disposed/);
});

Deno.test("a pool needs no permission and does not keep the process alive", async () => {
  const text = await runWithoutPermission("pool_no_permission.ts");
  assert.equal(text, "ok 3 threads");
});

Deno.test("float arguments reach every share as the export's parameter type (f32 here)", async () => {
  const memory = sharedMemory(1);
  const f32 = new Float32Array(memory.buffer);
  for (const threads of [2, 3]) {
    const pool = new KernelPool(testModule(), memory, threads, { shares: 6 });
    try {
      await pool.ready();
      for (const value of [0.01, -3.75e-9, 1e30, 0.1]) {
        f32.fill(0, 16, 32);
        pool.run("fill_f32", [64, value]);
        // Share 1 at least ran in a worker (the caller was waiting in share 0).
        assert.ok(pool.lastWorkerShares >= 1, `${pool.lastWorkerShares} worker shares`);
        assert.deepEqual(Array.from(f32.subarray(16, 22)), new Array(6).fill(Math.fround(value)));
        assert.equal(f32[22], 0);
      }
    } finally {
      pool.dispose();
    }
  }
});

/** Waits (asynchronously, polling) until `test()` holds; throws after `timeoutMs`. */
async function until(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = performance.now();
  while (!test()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("workers poll for spinMicros after a call (no wake-up for the next one), then sleep; stats count the wake-ups", async () => {
  const memory = sharedMemory(1);
  const i32 = new Int32Array(memory.buffer);
  const pool = new KernelPool(testModule(), memory, 2, { shares: 2 });
  try {
    assert.equal(pool.spinMicros, DEFAULT_WORKER_SPIN_MICROS);
    await pool.ready();
    // With no call for longer than spinMicros the worker sleeps in Atomics.wait.
    await until(() => pool.sleepingWorkers === 1, "the worker to sleep");
    // A worker that was descheduled while it polled sleeps right after each call for a while
    // (QUIET_MS, 100 ms): let that pass.
    await new Promise((resolve) => setTimeout(resolve, 150));
    // A call wakes it (one notify); from then on it polls for a second between calls.
    pool.spinMicros = 1_000_000;
    pool.resetStats();
    i32.fill(0, 0, 4);
    pool.run("count", [0]);
    assert.equal(i32[1], 2, "both shares ran");
    // (A worker descheduled while it polls sleeps again at once: see below.)
    await until(
      () => pool.sleepingWorkers === 0 || pool.stats.preemptions > 0,
      "the worker to wake",
    );
    for (let i = 0; i < 5; i++) pool.run("count", [0]);
    assert.equal(i32[1], 12);
    const sleeping = pool.sleepingWorkers; // before the stats: a later preemption counts there
    const stats = pool.stats;
    assert.equal(stats.calls, 6);
    assert.ok(stats.callerOnly >= 0 && stats.callerOnly <= 6);
    assert.ok(stats.waitMs >= 0);
    // Only the first call found the worker asleep, unless the worker was descheduled while it
    // polled (a busy machine): then it sleeps at once, and a call may wake it again.
    if (stats.preemptions === 0) {
      assert.equal(stats.wakeups, 1, "only the first call found the worker asleep");
      assert.equal(sleeping, 0, "polling between calls");
    } else {
      assert.ok(stats.wakeups >= 1 && stats.wakeups <= 6, `${stats.wakeups} wake-ups`);
    }
    // It sleeps once spinMicros have passed without a call.
    pool.spinMicros = 0;
    pool.run("count", [0]); // the new spin time counts from the worker's next idle period
    await until(() => pool.sleepingWorkers === 1, "the worker to sleep again", 5_000);
    pool.resetStats();
    assert.deepEqual(pool.stats, {
      calls: 0,
      wakeups: 0,
      callerOnly: 0,
      waitMs: 0,
      preemptions: 0,
    });
  } finally {
    pool.dispose();
  }
});

Deno.test("KernelPool rejects a spin time that is not a whole number of microseconds up to a second", () => {
  const pool = new KernelPool(testModule(), sharedMemory(1), 2);
  try {
    for (const micros of [-1, 1.5, MAX_WORKER_SPIN_MICROS + 1, NaN]) {
      assert.throws(
        () => (pool.spinMicros = micros),
        new RegExp(
          `RangeError: KernelPool: spinMicros must be a whole number from 0 to ` +
            `${MAX_WORKER_SPIN_MICROS}, got ${micros}`,
        ),
      );
    }
    assert.equal(pool.spinMicros, DEFAULT_WORKER_SPIN_MICROS, "unchanged by a rejected value");
  } finally {
    pool.dispose();
  }
});

Deno.test("an idle pool's workers sleep and burn no CPU; polling ones do (in a process of its own)", async () => {
  const stdout = await runWithoutPermission("pool_idle_cpu.ts");
  const cpu = JSON.parse(stdout);
  // 400 ms of idling: asleep, next to nothing; two polling workers, up to 800 ms of CPU (less on
  // a busy machine, but far more than asleep).
  // A worker descheduled while it polls (a busy machine) sleeps at once: the polling figures
  // hold only where no worker was.
  assert.ok(cpu.asleep < 60, `asleep: ${cpu.asleep} ms of CPU`);
  if (cpu.preemptions === 0) {
    assert.equal(cpu.pollingAfter, 2, "both workers still polled 400 ms after a call");
    assert.ok(cpu.polling > 150, `polling: ${cpu.polling} ms of CPU`);
  } else {
    assert.ok(cpu.pollingAfter < 2, "a preempted worker sleeps");
  }
  assert.ok(cpu.asleepAgain < 60, `asleep again: ${cpu.asleepAgain} ms of CPU`);
});
