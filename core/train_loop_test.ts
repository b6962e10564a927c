import * as tf from "@tensorflow/tfjs-core";
import "./backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { BatchNorm } from "./batch_norm.ts";
import { backendLabel, selectBackend } from "./backend.ts";
import type { Batch } from "./batch.ts";
import {
  latestCheckpoint,
  listCheckpoints,
  nonFiniteTensors,
  readCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { Conv2d } from "./conv2d.ts";
import { Linear } from "./linear.ts";
import { type Module, type NamedVariables, prefixed, trainableVariables } from "./module.ts";
import { deriveSeed, Rng } from "./random.ts";
import { cosineSchedule } from "./schedule.ts";
import { Sgd } from "./sgd.ts";
import { AdamW } from "./adamw.ts";
import { type EpochRecord, NonFiniteLossError, trainModel, type TrainStart } from "./train_loop.ts";

await tf.setBackend("cpu");

/** conv3x3(3->4) -> BN -> ReLU -> global average pool -> linear(4->2). */
class TinyNet implements Module {
  readonly conv: Conv2d;
  readonly bn = new BatchNorm({ channels: 4 });
  readonly fc: Linear;
  constructor(seed: number) {
    this.conv = new Conv2d({ inChannels: 3, outChannels: 4, kernelSize: 3, seed });
    this.fc = new Linear({ inFeatures: 4, outFeatures: 2, seed: seed + 1 });
  }
  apply(x: tf.Tensor, options: { training: boolean }): tf.Tensor {
    return tf.tidy(() => {
      const h = tf.relu(this.bn.apply(this.conv.apply(x, options), options));
      return this.fc.apply(tf.mean(h, [1, 2]), options);
    });
  }
  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv", this.conv.namedVariables()),
      ...prefixed("bn", this.bn.namedVariables()),
      ...prefixed("fc", this.fc.namedVariables()),
    ];
  }
  dispose(): void {
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}

const N = 32;
const BATCH = 8;

/** Two separable classes: channel 0 is +1 or -1 plus noise. Fixed examples, per-epoch shuffle. */
function toyData(seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(deriveSeed(seed, "toy"));
  const x = rng.normalArray(N * 4 * 4 * 3, 0.5);
  const y = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    y[i] = i % 2;
    for (let p = 0; p < 16; p++) x[i * 48 + p * 3] += y[i] === 1 ? 1 : -1;
  }
  return { x, y };
}

function* batches(data: { x: Float32Array; y: Int32Array }, order: number[]): Generator<Batch> {
  for (let b = 0; b < order.length; b += BATCH) {
    const idx = order.slice(b, b + BATCH);
    const xs = new Float32Array(idx.length * 48);
    idx.forEach((i, k) => xs.set(data.x.subarray(i * 48, (i + 1) * 48), k * 48));
    yield {
      images: tf.tensor4d(xs, [idx.length, 4, 4, 3]),
      labels: tf.tensor1d(Int32Array.from(idx, (i) => data.y[i]), "int32"),
    };
  }
}

const DATA = toyData(7);
const trainData = (epoch: number): Iterable<Batch> =>
  batches(DATA, new Rng(deriveSeed(7, "shuffle", epoch)).shuffle([...Array(N).keys()]));
const testData = (): Iterable<Batch> => batches(DATA, [...Array(N).keys()]);

function sgdFor(model: Module): Sgd {
  const trainable = model.namedVariables().filter(([, v]) => v.trainable);
  return new Sgd(trainable, { momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
}

const STEPS = N / BATCH;

Deno.test("trainModel decreases the loss on a separable toy set and logs one line per epoch", async () => {
  const model = new TinyNet(1);
  const sgd = sgdFor(model);
  const dir = await Deno.makeTempDir();
  const seen: EpochRecord[] = [];
  const counts: number[] = [];
  let printed = "";
  const result = await trainModel(model, {
    optimizer: sgd,
    schedule: cosineSchedule({ baseLr: 0.2, totalSteps: 5 * STEPS, warmupSteps: 2 }),
    epochs: 5,
    trainData,
    testData,
    evalEvery: 2,
    readEvery: 3,
    stepsPerEpoch: STEPS,
    logFile: `${dir}/log.jsonl`,
    onEpoch: (r) => {
      seen.push(r);
      counts.push(tf.memory().numTensors);
    },
    progress: { sink: { isTerminal: false, write: (t) => (printed += t) } },
  });
  const h = result.history;
  assert.equal(h.length, 5);
  assert.deepEqual(seen, h);
  assert.equal(result.step, 5 * STEPS);
  assert.ok(h[4].loss < h[0].loss * 0.7, `loss ${h[0].loss} -> ${h[4].loss}`);
  assert.ok(h[4].testAccuracy! >= 0.9, `test accuracy ${h[4].testAccuracy}`);
  assert.equal(h[0].testAccuracy, null); // evalEvery 2: epochs 2, 4 and the last one
  assert.notEqual(h[1].testAccuracy, null);
  assert.ok(h[0].trainAccuracy! >= 0 && h[0].trainAccuracy! <= 1);
  assert.equal(h[4].lr, 0); // the last step of the cosine schedule
  // Plain progress lines and one summary line per epoch, with the run's ETA until the last.
  assert.match(printed, /^epoch 1\/5 \[=+ *\] \d\/4 loss \d\.\d{4} acc \d+\.\d% [\d.]+ img\/s/m);
  assert.match(
    printed,
    /^epoch 1\/5 step 4 loss \d\.\d{4} train [\d.]+% test - lr .* \(run ETA \d+:\d\d\)$/m,
  );
  assert.match(
    printed,
    /^epoch 5\/5 step 20 loss \S+ train \S+ test [\d.]+% lr 0\.00 \S+ img\/s \S+ s$/m,
  );
  const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n");
  assert.equal(lines.length, 5);
  const first = JSON.parse(lines[0]);
  for (
    const key of [
      "epoch",
      "step",
      "loss",
      "trainAccuracy",
      "testAccuracy",
      "lr",
      "imagesPerSecond",
      "seconds",
    ]
  ) assert.ok(key in first, `log line lacks ${key}`);
  // No tensor leak across epochs (epochs 2 and 4 both evaluated).
  assert.equal(counts[3], counts[1]);
  assert.equal(counts[4], counts[1]);
  sgd.dispose();
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("trainModel trains only the variables it is given and reports custom metrics", async () => {
  const model = new TinyNet(2);
  const frozen = model.conv.weight.clone();
  const head = prefixed("fc", model.fc.namedVariables());
  const adam = new AdamW(head, { weightDecay: 0 });
  const result = await trainModel(model, {
    optimizer: adam,
    schedule: () => 1e-2,
    epochs: 1,
    trainData,
    progress: false,
    lossFn: (batch) => {
      const logits = model.apply(batch.images, { training: true });
      const probs = tf.softmax(logits);
      const target = tf.oneHot(batch.labels, 2);
      return {
        loss: tf.losses.meanSquaredError(target, probs) as tf.Scalar,
        metrics: { two: tf.scalar(2) },
      };
    },
  });
  assert.deepEqual(await model.conv.weight.data(), await frozen.data());
  assert.equal(result.history[0].metrics.two, 2);
  assert.equal(result.history[0].trainAccuracy, null);
  assert.equal(result.history[0].testAccuracy, null);
  assert.equal(adam.iterations, STEPS);
  adam.dispose();
  frozen.dispose();
  model.dispose();
});

async function snapshot(model: Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of model.namedVariables()) {
    out.set(n, Float32Array.from(await v.data() as Float32Array));
  }
  return out;
}

Deno.test("a killed and resumed run reaches bit-identical weights", async () => {
  const dirA = await Deno.makeTempDir();
  const dirB = await Deno.makeTempDir();
  const config = { lr: 0.1, epochs: 2 };
  const schedule = cosineSchedule({ baseLr: 0.1, totalSteps: 2 * STEPS });
  const base = { schedule, epochs: 2, testData, progress: false as const, config, seed: 3 };

  const a = new TinyNet(5);
  const sgdA = sgdFor(a);
  const straight = await trainModel(a, {
    ...base,
    optimizer: sgdA,
    trainData,
    checkpointDir: dirA,
  });

  // Run B is killed while epoch 2 reads its data, after the epoch-1 checkpoint.
  const b = new TinyNet(5);
  const sgdB = sgdFor(b);
  const killed = (epoch: number): Iterable<Batch> => {
    if (epoch === 1) throw new Error("killed");
    return trainData(epoch);
  };
  await assert.rejects(
    trainModel(b, { ...base, optimizer: sgdB, trainData: killed, checkpointDir: dirB }),
    /killed/,
  );
  assert.deepEqual((await listCheckpoints(dirB)).map((c) => c.epoch), [1]);
  sgdB.dispose();
  b.dispose();

  // A fresh process: new model and optimizer from the same seed, then resume.
  const c = new TinyNet(5);
  const sgdC = sgdFor(c);
  const resumed = await trainModel(c, {
    ...base,
    optimizer: sgdC,
    trainData,
    checkpointDir: dirB,
    resume: true,
  });
  assert.equal(resumed.resumedFrom, `${dirB}/epoch-0001.json`);
  assert.equal(resumed.step, straight.step);
  assert.equal(resumed.history.length, 2);
  assert.equal(resumed.history[1].testAccuracy, straight.history[1].testAccuracy);
  const wa = await snapshot(a);
  const wc = await snapshot(c);
  assert.deepEqual([...wc.keys()], [...wa.keys()]);
  for (const [name, values] of wa) assert.deepEqual(wc.get(name), values, `${name} differs`);
  const ca = await readCheckpoint((await latestCheckpoint(dirA))!);
  const cc = await readCheckpoint((await latestCheckpoint(dirB))!);
  assert.deepEqual(cc.optimizer!.tensors, ca.optimizer!.tensors);

  // A resume with another config, and a fresh run into a used directory, are refused.
  await assert.rejects(
    trainModel(c, {
      ...base,
      optimizer: sgdC,
      trainData,
      checkpointDir: dirB,
      resume: true,
      config: { lr: 0.2, epochs: 2 },
    }),
    /config differs \(lr: saved 0.1, now 0.2\)/,
  );
  await assert.rejects(
    trainModel(c, { ...base, optimizer: sgdC, trainData, checkpointDir: dirB }),
    /already holds checkpoints/,
  );
  for (const x of [sgdA, sgdC]) x.dispose();
  a.dispose();
  c.dispose();
  await Deno.remove(dirA, { recursive: true });
  await Deno.remove(dirB, { recursive: true });
});

Deno.test("a NaN loss stops the run naming the step and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const model = new TinyNet(9);
  const sgd = sgdFor(model);
  const badStep = STEPS + 2; // third step of epoch 2
  const before = tf.memory().numTensors;
  const error = await trainModel(model, {
    optimizer: sgd,
    schedule: () => 0.05,
    epochs: 3,
    trainData,
    progress: false,
    readEvery: 100,
    checkpointDir: dir,
    lossFn: (batch, { step }) => {
      const logits = model.apply(batch.images, { training: true });
      const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(batch.labels, 2), logits) as tf.Scalar;
      return step === badStep ? tf.mul(loss, NaN) : loss;
    },
  }).catch((e) => e);
  assert.ok(error instanceof NonFiniteLossError, String(error));
  assert.equal(error.step, badStep);
  assert.match(error.message, new RegExp(`at step ${badStep} \\(epoch 2\\).*epoch-0001\\.json`));
  assert.deepEqual((await listCheckpoints(dir)).map((c) => c.epoch), [1]);
  assert.equal(tf.memory().numTensors, before);
  sgd.dispose();
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a NaN stop names a checkpoint whose weights are finite, never a poisoned one", async () => {
  const dir = await Deno.makeTempDir();
  const model = new TinyNet(9);
  const sgd = sgdFor(model);
  const blowUp = 2 * STEPS - 1; // last step of epoch 2: its loss is finite, its update is not
  const before = tf.memory().numTensors;
  const error = await trainModel(model, {
    optimizer: sgd,
    schedule: (step) => (step === blowUp ? 3e38 : 0.05),
    epochs: 3,
    trainData,
    progress: false,
    checkpointDir: dir,
    keepCheckpoints: 0,
    lossFn: (batch, { step }) => {
      const logits = model.apply(batch.images, { training: true });
      const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(batch.labels, 2), logits) as tf.Scalar;
      return step === blowUp ? tf.mul(loss, 3e38) : loss;
    },
  }).catch((e) => e);
  assert.ok(error instanceof NonFiniteLossError, String(error));
  // The old loop saved epoch-0002 full of Inf/NaN and, one epoch later, called it the last good one.
  const named = /last good checkpoint \(every value checked finite\) is (\S+\.json)/
    .exec(error.message)?.[1];
  assert.equal(named, `${dir}/epoch-0001.json`, error.message);
  assert.equal(error.checkpoint, named);
  assert.deepEqual(nonFiniteTensors(await readCheckpoint(named!)), []);
  assert.match(error.message, /weights hold NaN or infinity .*stopped before saving/);
  assert.deepEqual((await listCheckpoints(dir)).map((c) => c.epoch), [1]);
  assert.equal(tf.memory().numTensors, before);

  // A directory whose newest checkpoint is poisoned (written by older code): a NaN stop names
  // the newest finite one, and says none exists when none does.
  const poisoned = await saveCheckpoint(
    dir,
    model.namedVariables(),
    { epoch: 2, step: 2 * STEPS },
    {
      keep: 0,
    },
  );
  assert.ok(nonFiniteTensors(await readCheckpoint(poisoned)).length > 0);
  const nanAt = (step: number) => (batch: Batch, ctx: { step: number }) => {
    const logits = model.apply(batch.images, { training: true });
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(batch.labels, 2), logits) as tf.Scalar;
    return ctx.step === step ? tf.mul(loss, NaN) as tf.Scalar : loss;
  };
  const second = await trainModel(model, {
    optimizer: sgd,
    schedule: () => 0.05,
    epochs: 3,
    trainData,
    progress: false,
    checkpointDir: dir,
    resume: true,
    keepCheckpoints: 0,
    lossFn: nanAt(STEPS + 1),
  }).catch((e) => e);
  assert.ok(second instanceof NonFiniteLossError, String(second));
  assert.equal(second.checkpoint, `${dir}/epoch-0001.json`);
  assert.deepEqual(second.nonFinite, [poisoned]);
  assert.match(second.message, /epoch-0002\.json hold NaN\/Inf values: do not use them/);

  await Deno.remove(`${dir}/epoch-0001.json`);
  const third = await trainModel(new TinyNet(9), {
    optimizer: sgd,
    schedule: () => 0.05,
    epochs: 3,
    trainData,
    progress: false,
    checkpointDir: dir,
    resume: true,
  }).catch((e) => e);
  assert.match(String(third), /every checkpoint there holds NaN or infinite values/);
  sgd.dispose();
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resume may change safe keys (recorded), and refuses any other key by name", async () => {
  const dir = await Deno.makeTempDir();
  const make = () => {
    const model = new TinyNet(4);
    return { model, sgd: sgdFor(model) };
  };
  const a = make();
  await trainModel(a.model, {
    optimizer: a.sgd,
    schedule: () => 0.1,
    epochs: 1,
    trainData,
    progress: false,
    checkpointDir: dir,
    config: { lr: 0.1, width: 1 },
    safeToChange: ["lr"],
  });
  a.sgd.dispose();
  a.model.dispose();

  const b = make();
  const base = {
    optimizer: b.sgd,
    trainData,
    progress: false as const,
    checkpointDir: dir,
    resume: true,
    safeToChange: ["lr"],
    logFile: `${dir}/log.jsonl`,
  };
  let started = false;
  // An unsafe key is refused by name, before anything is written.
  await assert.rejects(
    trainModel(b.model, {
      ...base,
      schedule: () => 0.01,
      epochs: 2,
      config: { lr: 0.01, width: 2 },
      beforeStart: () => {
        started = true;
      },
    }),
    /config differs \(width: saved 1, now 2\)\. Only lr may change on resume/,
  );
  assert.equal(started, false);
  await assert.rejects(Deno.stat(`${dir}/log.jsonl`), Deno.errors.NotFound);

  const starts: TrainStart[] = [];
  const result = await trainModel(b.model, {
    ...base,
    schedule: () => 0.01,
    epochs: 2,
    config: { lr: 0.01, width: 1 },
    beforeStart: (s) => {
      starts.push(s);
    },
  });
  const change = { key: "lr", from: 0.1, to: 0.01 };
  assert.equal(result.resumedFrom, `${dir}/epoch-0001.json`);
  assert.deepEqual(starts[0].configChanges, [change]);
  assert.equal(result.history[1].lr, 0.01);
  assert.deepEqual(result.history[1].configChanges, [change]);
  assert.equal(result.history[0].configChanges, undefined);
  const logged = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(logged[1].configChanges, [change]);
  const saved = await readCheckpoint((await latestCheckpoint(dir))!);
  assert.deepEqual(saved.sidecar.config, { lr: 0.01, width: 1 });
  const history = saved.sidecar.extra.configHistory as TrainStart["configHistory"];
  assert.equal(history.length, 1);
  assert.deepEqual(history[0].changes, [change]);
  assert.equal(history[0].epoch, 1);
  b.sgd.dispose();
  b.model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("trainModel validates its options", async () => {
  const model = new TinyNet(1);
  const sgd = sgdFor(model);
  const base = { optimizer: sgd, schedule: () => 0.1, trainData, progress: false as const };
  await assert.rejects(trainModel(model, { ...base, epochs: 0 }), /epochs must be an integer >= 1/);
  await assert.rejects(
    trainModel(model, { ...base, epochs: 1, resume: true }),
    /resume needs checkpointDir/,
  );
  await assert.rejects(
    trainModel(model, { ...base, epochs: 1, trainData: () => [] }),
    /yielded no batches/,
  );
  assert.equal(trainableVariables(model.namedVariables()).length, 5);
  sgd.dispose();
  model.dispose();
});

Deno.test("trainModel: a metric may be the loss itself; a non-scalar metric is an error without leaks", async () => {
  const model = new TinyNet(4);
  const sgd = sgdFor(model);
  const ce = (batch: Batch) =>
    tf.losses.softmaxCrossEntropy(
      tf.oneHot(batch.labels, 2),
      model.apply(batch.images, { training: true }),
    ) as tf.Scalar;
  const before = tf.memory().numTensors;
  const result = await trainModel(model, {
    optimizer: sgd,
    schedule: () => 0.01,
    epochs: 1,
    trainData,
    progress: false,
    lossFn: (batch) => {
      const loss = ce(batch);
      return { loss, metrics: { ce: loss } };
    },
  });
  assert.ok(Math.abs(result.history[0].metrics.ce - result.history[0].loss) < 1e-6);
  await assert.rejects(
    trainModel(model, {
      optimizer: sgd,
      schedule: () => 0.01,
      epochs: 1,
      trainData,
      progress: false,
      lossFn: (batch) => ({
        loss: ce(batch),
        metrics: { perExample: tf.ones([BATCH]) as tf.Scalar },
      }),
    }),
    /metric "perExample" .* must be a scalar tensor/,
  );
  assert.equal(tf.memory().numTensors, before);
  sgd.dispose();
  model.dispose();
});

Deno.test("checkpoints record the backend selectBackend chose (what an exported bundle reports)", async () => {
  const dir = await Deno.makeTempDir();
  const model = new TinyNet(13);
  const sgd = sgdFor(model);
  const base = { optimizer: sgd, schedule: () => 0.01, trainData, progress: false as const };
  try {
    // Backend set behind selectBackend's back: nothing is claimed.
    await tf.setBackend("cpu");
    await trainModel(model, { ...base, epochs: 1, checkpointDir: `${dir}/a` });
    const a = await readCheckpoint((await latestCheckpoint(`${dir}/a`))!);
    assert.equal(a.sidecar.extra?.backend, undefined);

    const choice = await selectBackend({ backend: "cpu", env: {} });
    await trainModel(model, { ...base, epochs: 1, checkpointDir: `${dir}/b` });
    const b = await readCheckpoint((await latestCheckpoint(`${dir}/b`))!);
    assert.equal(b.sidecar.extra?.backend, backendLabel(choice));
    assert.equal(b.sidecar.extra?.backend, "cpu");
  } finally {
    sgd.dispose();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
