// Run with no permission at all (`deno run --no-prompt`): starts a pool of 3 threads for our own
// kernel binary on a fresh shared memory, runs the backward-filter kernel through it once its
// workers are up, checks the bits against a single share, prints "ok 3 threads" and ends without
// disposing the pool: its idle workers must not keep the process alive.
import { KernelPool } from "../_pool.ts";
import { ownKernelBytes, type OwnKernels, ownKernelsRelaxed } from "../_own_kernels.ts";

const memory = new WebAssembly.Memory({ initial: 4, maximum: 65536, shared: true });
const module = new WebAssembly.Module(ownKernelBytes(true, ownKernelsRelaxed()));
const pool = new KernelPool(module, memory, 3);
await pool.ready();
const single = (new WebAssembly.Instance(module, { env: { memory } })
  .exports as unknown as OwnKernels).conv2d_backprop_filter_f32;
const [n, h, w, cin, cout, k] = [2, 6, 6, 8, 16, 3];
const f32 = new Float32Array(memory.buffer);
const xo = 256, dyo = xo + n * h * w * cin, dwo = dyo + n * h * w * cout;
const size = k * k * cin * cout;
for (let i = 0; i < n * h * w * cin; i++) f32[xo + i] = Math.sin(i);
for (let i = 0; i < n * h * w * cout; i++) f32[dyo + i] = Math.cos(i);
const args = [4 * xo, 4 * dyo, 4 * dwo, n, h, w, cin, h, w, cout, k, k, 1, 1, 1, 1] as const;
single(...args, 0, 1);
const want = f32.slice(dwo, dwo + size);
f32.fill(0, dwo, dwo + size);
pool.run("conv2d_backprop_filter_f32", [...args]);
if (f32.subarray(dwo, dwo + size).some((v, i) => !Object.is(v, want[i]))) {
  throw new Error("the pool's result differs from a single share");
}
if (want.every((v) => v === 0)) throw new Error("the kernel computed nothing");
console.log(`ok ${pool.threads} threads`);
