import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { compareBackends, runOn, values } from "./_test_util.ts";

// [a shape, b shape, transposeA, transposeB]
const table: [number[], number[], boolean, boolean][] = [
  [[5, 7], [7, 3], false, false],
  [[7, 5], [7, 3], true, false],
  [[5, 7], [3, 7], false, true],
  [[7, 5], [3, 7], true, true],
  [[1, 1], [1, 9], false, false],
  [[4, 5, 6], [4, 6, 2], false, false],
  [[4, 6, 5], [4, 2, 6], true, true],
  [[3, 5, 6], [1, 6, 4], false, false],
  [[1, 6, 5], [3, 4, 6], true, true],
  [[2, 3, 5, 6], [2, 3, 6, 2], false, false],
  [[3, 6, 5], [6, 2], true, false],
];

for (const [as, bs, ta, tb] of table) {
  Deno.test(`BatchMatMul on wasm matches cpu: [${as}]${ta ? "^T" : ""} @ [${bs}]${tb ? "^T" : ""}`, async () => {
    const av = values(as.reduce((p, d) => p * d), 1);
    const bv = values(bs.reduce((p, d) => p * d), 2);
    const [err] = await compareBackends(() =>
      tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)
    );
    assert.ok(err <= 1e-5, `relative error ${err}`);
  });
}

Deno.test("BatchMatMul on wasm: zero inner size gives zeros; mismatched sizes throw", async () => {
  const [z] = await runOn("wasm", () => tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3])));
  assert.deepEqual(Array.from(z), [0, 0, 0, 0, 0, 0]);
  await assert.rejects(
    () => runOn("wasm", () => tf.matMul(tf.zeros([2, 4]), tf.zeros([3, 3]))),
    /inner/,
  );
});

Deno.test("Linear-layer gradients (transposed products) on wasm match cpu", async () => {
  const xv = values(8 * 5, 3);
  const wv = values(5 * 4, 4);
  const errs = await compareBackends(() =>
    tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, w))))([
      tf.tensor2d(xv, [8, 5]),
      tf.tensor2d(wv, [5, 4]),
    ])
  );
  assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
});
