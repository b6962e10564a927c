import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { compareBackends, runOn, values } from "./_test_util.ts";

Deno.test("UnsortedSegmentSum on wasm matches cpu (float32, 2-D ids, dropped ids)", async () => {
  const xv = values(4 * 3 * 5, 1);
  const [err] = await compareBackends(() =>
    tf.unsortedSegmentSum(
      tf.tensor3d(xv, [4, 3, 5]),
      tf.tensor1d([2, 0, 2, 1], "int32"),
      4,
    )
  );
  assert.ok(err <= 1e-6, `relative error ${err}`);
  const [out] = await runOn("wasm", () =>
    tf.unsortedSegmentSum(
      tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]),
      tf.tensor1d([1, 5, 1], "int32"),
      3,
    ));
  assert.deepEqual(Array.from(out), [0, 0, 6, 8, 0, 0]);
});

Deno.test("UnsortedSegmentSum on wasm sums int32 values", async () => {
  const [out] = await runOn(
    "wasm",
    () =>
      tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3], "int32"), tf.tensor1d([0, 0, 1], "int32"), 2),
  );
  assert.deepEqual(Array.from(out), [3, 3]);
});

Deno.test("gather gradient (embedding lookup) on wasm matches cpu", async () => {
  const pv = values(6 * 4, 2);
  const errs = await compareBackends(() =>
    tf.grad((p: tf.Tensor) =>
      tf.sum(tf.square(tf.gather(p, tf.tensor1d([0, 3, 3, 5, 1], "int32"))))
    )(
      tf.tensor2d(pv, [6, 4]),
    )
  );
  assert.ok(errs[0] <= 1e-6, `relative error ${errs[0]}`);
});
