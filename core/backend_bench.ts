/**
 * WASM threads speed-up: a 3x3 conv forward (N=64, 16x16, 128 -> 128 channels, "same") on 1 and
 * 2 threads (and all cores, up to 8, when there are more than 2).
 *
 *   deno bench -A core/backend_bench.ts
 *
 * The machine's load decides the result: on a shared machine run it a few times.
 */
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "./backend.ts";
import { Rng } from "./random.ts";

const [n, h, w, cin, cout] = [64, 16, 16, 128, 128];
const xData = new Rng(1).normalArray(n * h * w * cin);
const kData = new Rng(2).normalArray(3 * 3 * cin * cout, 0.05);
const cores = Math.min(8, navigator.hardwareConcurrency ?? 1);

for (const threads of [...new Set([1, 2, cores])]) {
  Deno.bench({
    name: `conv3x3 ${n}x${h}x${w}x${cin}->${cout}, wasm, ${threads} thread(s)`,
    group: "wasm threads",
    baseline: threads === 1,
    warmup: 2,
    n: 10,
    async fn(b) {
      const choice = await selectBackend({ backend: "wasm", threads, env: {} });
      if (choice.threads !== threads) throw new Error(`got ${choice.threads} threads`);
      const x = tf.tensor4d(xData, [n, h, w, cin]);
      const k = tf.tensor4d(kData, [3, 3, cin, cout]);
      b.start();
      const y = tf.conv2d(x, k, 1, "same");
      await y.data();
      b.end();
      tf.dispose([x, k, y]);
    },
  });
}
