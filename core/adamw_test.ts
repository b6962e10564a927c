import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { AdamW, type AdamWOptions } from "./adamw.ts";
import { assertNoLeak } from "./testing.ts";
import type { NamedVariables } from "./module.ts";
import { Sgd } from "./sgd.ts";

await tf.setBackend("cpu");

async function run(grads: number[], options: AdamWOptions): Promise<number[]> {
  const w = tf.variable(tf.tensor1d([1]));
  const opt = new AdamW([["w", w]], options);
  const out: number[] = [];
  for (const g of grads) {
    const gt = tf.tensor1d([g]);
    opt.applyGradients(new Map([["w", gt]]), 0.1);
    gt.dispose();
    out.push((await w.data())[0]);
  }
  opt.dispose();
  w.dispose();
  return out;
}

function close(actual: number[], expected: number[], tol: number): void {
  actual.forEach((a, i) =>
    assert.ok(Math.abs(a - expected[i]) < tol, `step ${i + 1}: got ${a}, expected ${expected[i]}`)
  );
}

// Expected values from torch.optim.AdamW's formulas (p0 = 1, lr = 0.1, betas 0.9/0.999):
// p *= 1 - lr wd; m = 0.9 m + 0.1 g; v = 0.999 v + 0.001 g^2;
// p -= (lr / (1 - 0.9^t)) m / (sqrt(v) / sqrt(1 - 0.999^t) + eps).
Deno.test("AdamW with decoupled weight decay matches PyTorch for three steps", async () => {
  // step 1: p = 0.99, m = 0.1, v = 0.001, step size 1, denom 1 + 1e-8, p = 0.890000001
  close(await run([1, -0.5, 2], { weightDecay: 0.1 }), [
    0.890000001,
    0.8544662973609032,
    0.7801104748591943,
  ], 2e-6);
});

Deno.test("AdamW adds epsilon outside the square root", async () => {
  // Gradients of order 1e-9, comparable to eps = 1e-8: eps inside the sqrt would give ~0.9999.
  close(await run([1e-9, -0.5e-9, 2e-9], { weightDecay: 0 }), [
    0.990909090909091,
    0.988958048080162,
    0.9812672489507251,
  ], 1e-6);
});

Deno.test("AdamW state round-trips, restores the step count, and does not leak", async () => {
  const a = tf.variable(tf.tensor1d([1, 2, 3]));
  const opt = new AdamW([["a", a]]);
  const g = tf.tensor1d([0.1, -0.2, 0.3]);
  opt.applyGradients(new Map([["a", g]]), 1e-2);
  const state = await opt.getState();
  assert.deepEqual([...state.tensors.keys()], ["exp_avg.a", "exp_avg_sq.a"]);
  const b = tf.variable(a.clone());
  const other = new AdamW([["a", b]]);
  other.setState(state);
  assert.equal(other.iterations, 1);
  // Both optimizers already hold their slots: the warm-up step allocates nothing new.
  await assertNoLeak(() => {
    opt.applyGradients(new Map([["a", g]]), 1e-2);
    other.applyGradients(new Map([["a", g]]), 1e-2);
  });
  assert.deepEqual(await a.data(), await b.data());
  const wrong = tf.variable(tf.zeros([2]));
  const mismatched = new AdamW([["a", wrong]]);
  assert.throws(() => mismatched.setState(state), /saved shape \[3\], variable shape \[2\]/);
  assert.throws(() => new AdamW([["a", a]], { betas: [1, 0.999] }), /betas\[0\]/);
  assert.throws(() => new AdamW([["a", a]], { epsilon: -1 }), /epsilon/);
  for (const o of [opt, other, mismatched]) o.dispose();
  tf.dispose([a, b, g, wrong]);
});

Deno.test("AdamW and Sgd share the constructor and gradient checks, naming the optimizer", () => {
  const w = tf.variable(tf.ones([2]));
  const buffer = tf.variable(tf.ones([2]), false);
  const bad = tf.ones([3]);
  for (
    const [kind, make] of [
      ["AdamW", (v: NamedVariables, o: object) => new AdamW(v, o)],
      ["Sgd", (v: NamedVariables, o: object) => new Sgd(v, o)],
    ] as const
  ) {
    assert.throws(
      () => make([], {}),
      new RegExp(`Cannot build ${kind}: the variable list is empty`),
    );
    assert.throws(() => make([["w", w], ["w", w]], {}), /"w" is listed twice/);
    assert.throws(() => make([["r", buffer]], {}), /"r" is not trainable/);
    assert.throws(
      () => make([["w", w]], { weightDecay: -1 }),
      new RegExp(`Cannot build ${kind}: weightDecay must be a number in \\[0, Infinity\\]`),
    );
    assert.throws(
      () => make([["w", w]], { weightDecayFilter: "bias" }),
      new RegExp(`Cannot build ${kind}: weightDecayFilter must be "all" or "exclude-1d"`),
    );
    const opt = make([["w", w]], {});
    assert.throws(
      () => opt.applyGradients(new Map([["w", bad]]), 0.1),
      new RegExp(`${kind}: gradient of "w" has shape \\[3\\], expected \\[2\\]`),
    );
    opt.dispose();
  }
  const adam = new AdamW([["w", w]]);
  assert.equal(adam.options.weightDecay, 0.01);
  adam.dispose();
  tf.dispose([w, buffer, bad]);
});
