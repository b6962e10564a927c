// Run in a process of its own (no other threads busy): starts a pool of 3 threads for our own
// kernel binary and prints, as JSON, the CPU milliseconds the whole process spends over 400 ms of
// idling (a) with its workers asleep, (b) right after a call with spinMicros at one second (the
// workers poll, unless descheduled: then they sleep, and `preemptions` says so), (c) once they
// slept again after spinMicros went back to 0.
import process from "node:process";
import { KernelPool } from "../_pool.ts";
import { ownKernelBytes, ownKernelsRelaxed } from "../_own_kernels.ts";

const memory = new WebAssembly.Memory({ initial: 4, maximum: 65536, shared: true });
const module = new WebAssembly.Module(ownKernelBytes(true, ownKernelsRelaxed()));
const pool = new KernelPool(module, memory, 3);
await pool.ready();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const asleep = async () => {
  for (let i = 0; pool.sleepingWorkers < 2; i++) {
    if (i > 2000) throw new Error("the workers did not go to sleep within 10 s");
    await sleep(5);
  }
};
const idleCpuMs = async () => {
  const before = process.cpuUsage();
  await sleep(400);
  const { user, system } = process.cpuUsage(before);
  return Math.round((user + system) / 1000);
};
// Any call will do: the backward-filter partial sum with one group (no partials) loads and stores
// back 16 floats at byte 4096.
const call = () => pool.run("conv2d_backprop_filter_sum_f32", [4096, 8192, 16, 1]);
await asleep();
const a = await idleCpuMs();
pool.spinMicros = 1_000_000;
pool.resetStats();
call();
const b = await idleCpuMs();
const pollingAfter = 2 - pool.sleepingWorkers;
const { preemptions } = pool.stats;
pool.spinMicros = 0;
call();
await asleep();
const c = await idleCpuMs();
console.log(JSON.stringify({ asleep: a, polling: b, pollingAfter, preemptions, asleepAgain: c }));
pool.dispose();
