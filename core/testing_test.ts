import assert from "node:assert/strict";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import * as tf from "@tensorflow/tfjs-core";
import { assertNoLeak, TensorLeakError } from "./testing.ts";

await tf.setBackend("cpu");

Deno.test("assertNoLeak passes a tidy step and runs the warm-up plus the checked steps", async () => {
  let calls = 0;
  await assertNoLeak(() => {
    calls++;
    tf.tidy(() => {
      tf.mul(tf.ones([3]), 2);
    });
  }, { steps: 4 });
  assert.equal(calls, 5);
});

Deno.test("assertNoLeak ignores what the warm-up allocates (lazy state)", async () => {
  let slot: tf.Tensor | undefined;
  await assertNoLeak(async () => {
    slot ??= tf.zeros([2]);
    await Promise.resolve();
  });
  slot?.dispose();
});

Deno.test("assertNoLeak fails a leaking step, naming the label and the counts", async () => {
  const kept: tf.Tensor[] = [];
  await assert.rejects(
    assertNoLeak(() => kept.push(tf.ones([1])), { label: "grow", steps: 3 }),
    (e: unknown) => {
      assert.ok(e instanceof TensorLeakError);
      assert.match(e.message, /^grow leaks tensors: .* after 3 more/);
      assert.equal(e.after - e.before, 3);
      return true;
    },
  );
  tf.dispose(kept);
});

Deno.test("assertNoLeak with bytes fails a step that swaps a tensor for a larger one", async () => {
  let held = tf.zeros([1]);
  const grow = () => {
    const next = tf.zeros([held.size + 1]);
    held.dispose();
    held = next;
  };
  await assertNoLeak(grow);
  await assert.rejects(assertNoLeak(grow, { bytes: true }), /leaks memory: .*numBytes/);
  held.dispose();
});

Deno.test("assertNoLeak rejects a bad step count", async () => {
  for (const steps of [0, -1, 1.5, NaN]) {
    await assert.rejects(assertNoLeak(() => {}, { steps }), /steps must be a positive integer/);
  }
});
