import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { AdamW } from "./adamw.ts";
import { Sgd } from "./sgd.ts";
import { assertNoLeak } from "./testing.ts";

await tf.setBackend("cpu");

const GRADS = [1.0, -0.5, 2.0];

async function run(p0: number, options: ConstructorParameters<typeof Sgd>[1]): Promise<number[]> {
  const w = tf.variable(tf.tensor1d([p0]));
  const sgd = new Sgd([["w", w]], options);
  const out: number[] = [];
  for (const g of GRADS) {
    const gt = tf.tensor1d([g]);
    sgd.applyGradients(new Map([["w", gt]]), 0.1);
    gt.dispose();
    out.push((await w.data())[0]);
  }
  sgd.dispose();
  w.dispose();
  return out;
}

function close(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) =>
    assert.ok(Math.abs(a - expected[i]) < tol, `step ${i + 1}: got ${a}, expected ${expected[i]}`)
  );
}

// Expected values from PyTorch's SGD formulas (dampening 0), p0 = 1, lr = 0.1, grads 1, -0.5, 2:
// d = g + wd p; buf = d (first step) or 0.9 buf + d; nesterov: d + 0.9 buf, else buf; p -= lr d.
Deno.test("Sgd nesterov with coupled weight decay matches PyTorch for three steps", async () => {
  // step 1: d = 1.01, buf = 1.01, d' = 1.01 + 0.909 = 1.919, p = 0.8081
  // step 2: d = -0.5 + 0.008081 = -0.491919, buf = 0.909 - 0.491919 = 0.417081,
  //         d' = -0.491919 + 0.3753729 = -0.1165461, p = 0.81975461
  // step 3: d = 2.0081975461, buf = 2.3835704461, d' = 4.15341094759, p = 0.404413515241
  close(await run(1, { momentum: 0.9, nesterov: true, weightDecay: 0.01 }), [
    0.8081,
    0.81975461,
    0.404413515241,
  ]);
});

Deno.test("Sgd heavy-ball momentum matches PyTorch", async () => {
  close(await run(1, { momentum: 0.9, weightDecay: 0.01 }), [0.899, 0.857201, 0.618724699]);
});

Deno.test("Sgd without momentum is p -= lr (g + wd p)", async () => {
  // 1 - 0.1 * 1.01 = 0.899; 0.899 - 0.1 * (-0.5 + 0.00899) = 0.948101; then - 0.1 * (2 + 0.00948101)
  close(await run(1, { weightDecay: 0.01 }), [0.899, 0.948101, 0.7471529899]);
});

Deno.test("Sgd exclude-1d skips weight decay on vectors but not on matrices", async () => {
  const b = tf.variable(tf.tensor1d([1]));
  const w = tf.variable(tf.tensor2d([[1]]));
  const sgd = new Sgd([["b", b], ["w", w]], { weightDecay: 0.5, weightDecayFilter: "exclude-1d" });
  const gb = tf.zeros([1]);
  const gw = tf.zeros([1, 1]);
  sgd.applyGradients(new Map([["b", gb], ["w", gw]]), 0.1);
  assert.equal((await b.data())[0], 1);
  assert.ok(Math.abs((await w.data())[0] - 0.95) < 1e-7);
  sgd.dispose();
  tf.dispose([b, w, gb, gw]);
});

Deno.test("Sgd state round-trips and restores the exact trajectory", async () => {
  const make = () => tf.variable(tf.tensor1d([1, -1]));
  const a = make();
  const sa = new Sgd([["a", a]], { momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const g = tf.tensor1d([0.3, -0.7]);
  sa.applyGradients(new Map([["a", g]]), 0.1);
  const state = await sa.getState();
  assert.equal(state.iterations, 1);
  assert.deepEqual([...state.tensors.keys()], ["momentum_buffer.a"]);
  const b = tf.variable(a.clone());
  const sb = new Sgd([["a", b]], { momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  sb.setState(state);
  sa.applyGradients(new Map([["a", g]]), 0.05);
  sb.applyGradients(new Map([["a", g]]), 0.05);
  assert.deepEqual(await a.data(), await b.data());
  assert.equal(sb.iterations, 2);
  assert.throws(
    () => sb.setState({ ...state, kind: "adamw" }),
    /saved state is for "adamw"/,
  );
  assert.throws(
    () => sb.setState({ ...state, tensors: new Map() }),
    /missing \[momentum_buffer.a\]/,
  );
  sa.dispose();
  sb.dispose();
  tf.dispose([a, b, g]);
});

Deno.test("Sgd rejects invalid options and does not leak tensors", async () => {
  const w = tf.variable(tf.ones([2]));
  const buffer = tf.variable(tf.ones([2]), false);
  assert.throws(() => new Sgd([]), /variable list is empty/);
  assert.throws(() => new Sgd([["w", w], ["w", w]]), /listed twice/);
  assert.throws(() => new Sgd([["running", buffer]]), /"running" is not trainable/);
  assert.throws(() => new Sgd([["w", w]], { momentum: 1 }), /momentum must be/);
  assert.throws(() => new Sgd([["w", w]], { momentum: -0.1 }), /momentum/);
  assert.throws(() => new Sgd([["w", w]], { nesterov: true }), /nesterov needs momentum/);
  assert.throws(() => new Sgd([["w", w]], { weightDecay: NaN }), /weightDecay/);
  const sgd = new Sgd([["w", w]], { momentum: 0.9, weightDecay: 1e-4 });
  const g = tf.ones([2]);
  assert.throws(() => sgd.applyGradients(new Map([["w", g]]), -1), /lr must be/);
  const bad = tf.ones([3]);
  assert.throws(() => sgd.applyGradients(new Map([["w", bad]]), 0.1), /shape \[3\]/);
  await assertNoLeak(() => sgd.applyGradients(new Map([["w", g]]), 0.1), { steps: 5 });
  sgd.dispose();
  tf.dispose([w, buffer, g, bad]);
});

Deno.test("Sgd and AdamW free every tensor they allocate when disposed", async () => {
  const w = tf.variable(tf.ones([3, 2]));
  const before = tf.memory().numTensors;
  const optimizers = [new Sgd([["w", w]], { momentum: 0.9 }), new AdamW([["w", w]])];
  assert.ok(tf.memory().numTensors > before);
  for (const o of optimizers) o.dispose();
  assert.equal(tf.memory().numTensors, before);
  await assertNoLeak(() => {
    new Sgd([["w", w]], { momentum: 0.9 }).dispose();
    new AdamW([["w", w]]).dispose();
  }, { label: "building and disposing optimizers" });
  w.dispose();
});
