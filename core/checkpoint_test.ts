import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import {
  latestCheckpoint,
  listCheckpoints,
  readCheckpoint,
  restoreVariables,
  saveCheckpoint,
} from "./checkpoint.ts";
import { writeFileAtomic } from "./atomic_file.ts";
import type { NamedVariables } from "./module.ts";
import { Rng } from "./random.ts";
import { Sgd } from "./sgd.ts";

await tf.setBackend("cpu");

function makeVars(): NamedVariables {
  return [
    ["conv.weight", tf.variable(tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 1, 2]))],
    ["bn.weight", tf.variable(tf.tensor1d([0.5, 1.5]))],
    ["bn.running_mean", tf.variable(tf.tensor1d([0.1, -0.1]), false)],
  ];
}

function free(vars: NamedVariables): void {
  for (const [, v] of vars) v.dispose();
}

Deno.test("checkpoint round trip: weights, buffers, optimizer, RNG, config, history", async () => {
  const dir = await Deno.makeTempDir();
  const vars = makeVars();
  const sgd = new Sgd(vars.filter(([, v]) => v.trainable), { momentum: 0.9 });
  const g = [tf.ones([2, 2, 1, 2]), tf.ones([2])];
  sgd.applyGradients(new Map([["conv.weight", g[0]], ["bn.weight", g[1]]]), 0.1);
  const rng = new Rng(5);
  rng.next();
  const path = await saveCheckpoint(dir, vars, {
    epoch: 3,
    step: 42,
    config: { model: "resnet18", lr: 0.1 },
    optimizer: await sgd.getState(),
    rng: rng.state(),
    history: [{ epoch: 1 }],
  });
  assert.equal(path, `${dir}/epoch-0003.json`);
  assert.equal(await latestCheckpoint(dir), path);
  const ckpt = await readCheckpoint(path);
  assert.equal(ckpt.sidecar.epoch, 3);
  assert.equal(ckpt.sidecar.step, 42);
  assert.deepEqual(ckpt.sidecar.config, { model: "resnet18", lr: 0.1 });
  assert.deepEqual(ckpt.sidecar.history, [{ epoch: 1 }]);
  assert.deepEqual(ckpt.sidecar.rng, rng.state());
  assert.deepEqual([...ckpt.weights.keys()], ["conv.weight", "bn.weight", "bn.running_mean"]);
  assert.deepEqual(ckpt.optimizer!.iterations, 1);
  assert.deepEqual([...ckpt.optimizer!.tensors.keys()], [
    "momentum_buffer.conv.weight",
    "momentum_buffer.bn.weight",
  ]);
  // Restore into fresh variables and a fresh optimizer: identical values and trajectory.
  const other = makeVars();
  for (const [, v] of other) v.assign(tf.zerosLike(v));
  restoreVariables(other, ckpt.weights, path);
  for (let i = 0; i < vars.length; i++) {
    assert.deepEqual(await other[i][1].data(), await vars[i][1].data());
  }
  const sgd2 = new Sgd(other.filter(([, v]) => v.trainable), { momentum: 0.9 });
  sgd2.setState(ckpt.optimizer!);
  const grads = new Map([["conv.weight", g[0]], ["bn.weight", g[1]]]);
  sgd.applyGradients(grads, 0.1);
  sgd2.applyGradients(grads, 0.1);
  assert.deepEqual(await other[0][1].data(), await vars[0][1].data());
  for (const o of [sgd, sgd2]) o.dispose();
  free(vars);
  free(other);
  tf.dispose(g);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("restoreVariables names missing, unexpected and mis-shaped variables", async () => {
  const dir = await Deno.makeTempDir();
  const vars = makeVars();
  const ckpt = await readCheckpoint(await saveCheckpoint(dir, vars, { epoch: 1, step: 1 }));
  const wrong: NamedVariables = [
    ["conv.weight", tf.variable(tf.zeros([3, 3, 1, 2]))],
    ["bn.weight", tf.variable(tf.zeros([2]))],
    ["fc.bias", tf.variable(tf.zeros([2]))],
  ];
  assert.throws(
    () => restoreVariables(wrong, ckpt.weights, "ckpt"),
    (e: Error) =>
      /missing: fc\.bias/.test(e.message) && /unexpected: bn\.running_mean/.test(e.message) &&
      /conv\.weight: saved \[2,2,1,2\], model \[3,3,1,2\]/.test(e.message),
  );
  // Nothing was written on failure.
  assert.deepEqual(Array.from(await wrong[1][1].data()), [0, 0]);
  free(vars);
  free(wrong);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a crash during a save leaves the previous checkpoint loadable", async () => {
  const dir = await Deno.makeTempDir();
  const vars = makeVars();
  const first = await saveCheckpoint(dir, vars, { epoch: 1, step: 10 });
  // Crash 1: killed while writing the next weights file (only a .part exists).
  await Deno.writeFile(`${dir}/epoch-0002.safetensors.part`, new Uint8Array([1, 2, 3]));
  assert.equal(await latestCheckpoint(dir), first);
  // Crash 2: weights renamed into place but the sidecar (commit marker) never written.
  await Deno.copyFile(`${dir}/epoch-0001.safetensors`, `${dir}/epoch-0002.safetensors`);
  await Deno.writeTextFile(`${dir}/epoch-0002.json.part`, "{ truncated");
  assert.equal(await latestCheckpoint(dir), first);
  assert.deepEqual((await listCheckpoints(dir)).map((c) => c.epoch), [1]);
  // Files that disagree: a sidecar whose weights were replaced by other bytes of the same size.
  const second = await saveCheckpoint(dir, vars, { epoch: 2, step: 20 });
  const bytes = await Deno.readFile(`${dir}/epoch-0002.safetensors`);
  bytes[bytes.length - 1] ^= 0xff;
  await Deno.writeFile(`${dir}/epoch-0002.safetensors`, bytes);
  await assert.rejects(readCheckpoint(second), /does not match its sidecar/);
  assert.equal(await latestCheckpoint(dir), first);
  await Deno.remove(`${dir}/epoch-0002.safetensors`);
  await assert.rejects(readCheckpoint(second), /incomplete: cannot read its weights/);
  free(vars);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("saveCheckpoint keeps the newest checkpoints and validates its inputs", async () => {
  const dir = await Deno.makeTempDir();
  const vars = makeVars();
  for (let e = 1; e <= 4; e++) {
    await saveCheckpoint(dir, vars, { epoch: e, step: e * 5 }, { keep: 2 });
  }
  assert.deepEqual((await listCheckpoints(dir)).map((c) => c.name), ["epoch-0003", "epoch-0004"]);
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(names, [
    "epoch-0003.json",
    "epoch-0003.safetensors",
    "epoch-0004.json",
    "epoch-0004.safetensors",
  ]);
  await assert.rejects(saveCheckpoint(dir, vars, { epoch: -1, step: 0 }), /epoch must be/);
  await assert.rejects(saveCheckpoint(dir, vars, { epoch: 1, step: 0 }, { name: "../x" }), /name/);
  const clash: NamedVariables = [["optim.x", vars[0][1]]];
  await assert.rejects(saveCheckpoint(dir, clash, { epoch: 1, step: 0 }), /reserved prefix/);
  assert.equal(await latestCheckpoint(`${dir}/missing`), undefined);
  await writeFileAtomic(`${dir}/a.txt`, new Uint8Array([65]));
  assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "A");
  free(vars);
  await Deno.remove(dir, { recursive: true });
});
