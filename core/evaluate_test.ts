import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import type { Batch } from "./batch.ts";
import { evaluate } from "./evaluate.ts";
import type { Module } from "./module.ts";
import { assertNoLeak } from "./testing.ts";

await tf.setBackend("cpu");

/** The identity "model": logits are the input rows; records the training flag it saw. */
const modes: boolean[] = [];
const identity: Module = {
  apply: (x, { training }) => {
    modes.push(training);
    return tf.reshape(x, [x.shape[0], -1]);
  },
  namedVariables: () => [],
};

function batch(rows: number[][], labels: number[]): Batch {
  return {
    images: tf.tensor4d(rows.flat(), [rows.length, 1, 1, rows[0].length]),
    labels: tf.tensor1d(labels, "int32"),
  };
}

Deno.test("evaluate computes top-1 and mean cross-entropy over all batches, in inference mode", async () => {
  const rows = [[2, 0], [0, 1], [3, 1]];
  const labels = [0, 0, 0];
  const ce = (r: number[], y: number) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0)) - r[y];
  const before = tf.memory().numTensors;
  async function* source() {
    yield batch(rows.slice(0, 2), labels.slice(0, 2));
    yield batch(rows.slice(2), labels.slice(2));
  }
  const r = await evaluate(identity, source());
  assert.equal(r.count, 3);
  assert.ok(Math.abs(r.accuracy - 2 / 3) < 1e-7);
  const expected = rows.reduce((s, row, i) => s + ce(row, labels[i]), 0) / 3;
  assert.ok(Math.abs(r.loss - expected) < 1e-6, `loss ${r.loss} vs ${expected}`);
  assert.ok(modes.every((m) => m === false));
  assert.equal(tf.memory().numTensors, before, "batches and accumulators are disposed");
  await assertNoLeak(() => evaluate(identity, source()), { label: "evaluate" });
  await assert.rejects(evaluate(identity, []), /yielded no examples/);
});
