/**
 * Child process of backend_test.ts and the threads benchmark: selects a backend, runs a 3x3 conv
 * forward (NHWC, "same" padding) on seeded inputs and prints one JSON line, then returns without
 * any explicit exit, so the process ends only if nothing (e.g. a wasm worker) keeps it alive.
 *
 *   deno run -A core/testdata/backend_conv.ts --backend wasm --threads 2 \
 *     --shape 64,16,16,128,128 --repeat 5
 *
 * With `--stdin-binary simd|threadedSimd` the wasm binary is read from stdin and passed as bytes.
 */
import * as tf from "@tensorflow/tfjs-core";
import { parseArgs } from "node:util";
import { backendLabel, type BackendName, parseBackendName, selectBackend } from "../backend.ts";
import { Rng } from "../random.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string" },
    threads: { type: "string" },
    shape: { type: "string", default: "2,8,8,16,16" },
    repeat: { type: "string", default: "1" },
    "stdin-binary": { type: "string" },
    "allow-software-adapter": { type: "boolean" },
  },
});
const [n, h, w, cin, cout] = values.shape.split(",").map(Number);
const repeat = Number(values.repeat);

let binaries: Record<string, Uint8Array> | undefined;
if (values["stdin-binary"] !== undefined) {
  const bytes = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
  binaries = { [values["stdin-binary"]]: bytes };
}
const tInit = performance.now();
const choice = await selectBackend({
  ...(values.backend !== undefined
    ? { backend: parseBackendName(values.backend, "--backend") as BackendName }
    : {}),
  ...(values.threads !== undefined ? { threads: Number(values.threads) } : {}),
  ...(binaries ? { wasm: { binaries } } : {}),
  ...(values["allow-software-adapter"] ? { allowSoftwareAdapter: true } : {}),
  env: {},
});

const initMs = performance.now() - tInit;
const x = tf.tensor4d(new Rng(1).normalArray(n * h * w * cin), [n, h, w, cin]);
const k = tf.tensor4d(new Rng(2).normalArray(9 * cin * cout, 0.05), [3, 3, cin, cout]);
const times: number[] = [];
let out: Float32Array<ArrayBufferLike> = new Float32Array(0);
for (let i = 0; i < repeat; i++) {
  const t0 = performance.now();
  const y = tf.conv2d(x, k, 1, "same");
  out = (await y.data()) as Float32Array<ArrayBufferLike>;
  times.push(performance.now() - t0);
  y.dispose();
}
tf.dispose([x, k]);
let sum = 0;
for (const v of out) sum += v;
console.log(JSON.stringify({
  backend: choice.name,
  reason: choice.reason,
  label: backendLabel(choice),
  softwareAdapter: choice.softwareAdapter ?? false,
  adapter: choice.adapter,
  threads: choice.threads,
  simd: choice.simd,
  n: out.length,
  sum,
  head: Array.from(out.subarray(0, 16)),
  values: out.length <= 4096 ? Array.from(out) : undefined,
  initMs: initMs,
  ms: times,
}));
