// Run with no permission at all (`deno run --no-prompt`): instantiates our own kernel binaries
// (plain and relaxed SIMD) from the bytes in the module graph on a fresh plain and a fresh shared
// memory, runs a small Conv2DBackpropFilter on each against a direct JavaScript sum, whole and as
// three shares (which must give the same bits), and prints "ok <max error>".
import { ownKernelBytes, type OwnKernels } from "../_own_kernels.ts";
import { filterGradReference } from "./_filter_grad_reference.ts";

const [n, h, w, cin, cout, k, s, p] = [2, 7, 6, 5, 11, 3, 2, 1];
const ho = Math.floor((h + 2 * p - k) / s) + 1;
const wo = Math.floor((w + 2 * p - k) / s) + 1;
const x = Float32Array.from({ length: n * h * w * cin }, (_, i) => Math.sin(i * 0.37));
const dy = Float32Array.from({ length: n * ho * wo * cout }, (_, i) => Math.cos(i * 0.21));
const want = filterGradReference(x, dy, [n, h, w, cin], [ho, wo, cout], k, s, p);
let worst = 0;
for (const [shared, relaxed] of [[false, false], [true, false], [false, true], [true, true]]) {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared });
  const module = new WebAssembly.Module(ownKernelBytes(shared, relaxed));
  const kernels = new WebAssembly.Instance(module, { env: { memory } })
    .exports as unknown as OwnKernels;
  // Tensors from byte 4096 on; the dw buffer starts dirty: the kernel must zero it.
  const f32 = new Float32Array(memory.buffer);
  const [xo, dyo] = [1024, 1024 + x.length];
  const dwo = dyo + dy.length;
  f32.set(x, xo);
  f32.set(dy, dyo);
  const run = (part: number, parts: number) =>
    kernels.conv2d_backprop_filter_f32(
      4 * xo,
      4 * dyo,
      4 * dwo,
      n,
      h,
      w,
      cin,
      ho,
      wo,
      cout,
      k,
      k,
      s,
      s,
      p,
      p,
      part,
      parts,
    );
  f32.fill(123, dwo, dwo + want.length);
  for (let part = 0; part < 3; part++) run(part, 3);
  const split = f32.slice(dwo, dwo + want.length);
  f32.fill(123, dwo, dwo + want.length);
  run(0, 1);
  const got = f32.subarray(dwo, dwo + want.length);
  if (got.some((v, i) => !Object.is(v, split[i]))) throw new Error("3 shares differ from 1");
  const scale = Math.max(...want.map(Math.abs));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
  if (f32[dwo + want.length] !== 0 || f32[xo - 1] !== 0) throw new Error("wrote outside dw");
}
console.log(`ok ${worst}`);
