import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { channelGradSums, channelMoments } from "./channel_stats.ts";
import { compareBackends, values } from "./_test_util.ts";

for (const shape of [[3, 5, 4, 7], [9, 2], [1, 1, 1, 3]]) {
  Deno.test(`channel moments and gradient sums on wasm match cpu: [${shape}]`, async () => {
    const size = shape.reduce((a, b) => a * b);
    const xv = values(size, 1).map((v) => 3 + 2 * v);
    const dyv = values(size, 2);
    const errs = await compareBackends(() => {
      const x = tf.tensor(xv, shape);
      const dy = tf.tensor(dyv, shape);
      const { mean, variance } = channelMoments(x);
      const { sum, dot } = channelGradSums(dy, x);
      return [mean, variance, sum, dot];
    });
    assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
  });
}

Deno.test("channelGradSums rejects mismatched shapes", async () => {
  await tf.setBackend("cpu");
  assert.throws(() => channelGradSums(tf.zeros([2, 3]), tf.zeros([3, 2])), /one shape/);
});
