import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { countCorrect, softmaxCrossEntropy } from "./loss.ts";

await tf.setBackend("cpu");

Deno.test("softmaxCrossEntropy matches the formula, with and without label smoothing", async () => {
  const logits = tf.tensor2d([[2, 0, -1], [0.5, 0.5, 3]]);
  const labels = tf.tensor1d([0, 1], "int32");
  const rows = [[2, 0, -1], [0.5, 0.5, 3]];
  const logp = rows.map((r) => {
    const lse = Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    return r.map((v) => v - lse);
  });
  const plain = -(logp[0][0] + logp[1][1]) / 2;
  const eps = 0.1;
  // PyTorch: (1 - eps) * nll + eps * mean over classes of -logp
  const smooth = ((1 - eps) * (-(logp[0][0] + logp[1][1])) +
    eps * (-(logp[0].reduce((a, b) => a + b) + logp[1].reduce((a, b) => a + b)) / 3)) / 2;
  const [a, b] = tf.tidy(() => [
    softmaxCrossEntropy(logits, labels),
    softmaxCrossEntropy(logits, labels, { labelSmoothing: eps }),
  ]);
  assert.ok(Math.abs((await a.data())[0] - plain) < 1e-5);
  assert.ok(Math.abs((await b.data())[0] - smooth) < 1e-5);
  const c = countCorrect(logits, labels);
  assert.equal((await c.data())[0], 1);
  assert.throws(() => softmaxCrossEntropy(logits, labels, { labelSmoothing: 1 }), /labelSmoothing/);
  assert.throws(() => softmaxCrossEntropy(logits, tf.tensor1d([0], "int32")), /labels \[batch\]/);
  tf.dispose([logits, labels, a, b, c]);
});
