import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  disposeModule,
  evaluate,
  readCheckpoint,
  Rng,
  saveCheckpoint,
  selectBackend,
} from "@mfi/core";
import { batches, type CifarSplit } from "@mfi/data";
import { exportTorchStateDict } from "@mfi/resnet";
import { DEFAULT_CONFIG, mergeConfig } from "./config.ts";
import { buildModel } from "./model_spec.ts";
import { runPhase } from "./phase_runner.ts";
import { givenCheckpointDigest, phaseFingerprint, readPhaseOutput } from "./phase_output.ts";
import { makeOptimizer } from "./_phase_kit.ts";
import type { PipelineData } from "./pipeline_data.ts";
import { pipelineSpecs } from "./pipeline_specs.ts";
import { matchesAny, type Phase, planPhases } from "./plan.ts";
import { runPipeline } from "./runner.ts";

// The pipeline runs on wasm (the project's training kernels); the cpu backend is ~10x slower here.
await selectBackend({ backend: "wasm", threads: 1 });

function split(count: number, seed: number): CifarSplit {
  const rng = new Rng(seed);
  return {
    dataset: "cifar10",
    split: "train",
    labelKind: "class",
    count,
    images: Uint8Array.from({ length: count * 3072 }, () => rng.int(256)),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    files: [],
  };
}

const config = mergeConfig(DEFAULT_CONFIG, {
  model: { arch: "resnet18", width: 1 / 16 },
  meanflow: { hidden: [4, 4, 4, 4] },
  data: { augment: false, evalBatchSize: 10 },
  baseline: { epochs: 1, batchSize: 10 },
  compress: { epochs: 1, batchSize: 10 },
  meta: { epochs: 1, batchSize: 10 },
  incubate: { epochs: 1, batchSize: 10 },
  finetune: { epochs: 1, batchSize: 10 },
});
const specs = pipelineSpecs(config);
const data: PipelineData = {
  train: split(20, 1),
  test: { ...split(10, 2), split: "test" },
  source: { kind: "dir", path: "", description: "synthetic" },
  isSample: false,
};
const phases = planPhases(config);
const plan = Object.fromEntries(phases.map((p) => [p.id, p]));
const quiet = { progress: false as const, log: () => {} };
const dirOf = (runDir: string, id: string) => `${runDir}/${plan[id].output}`;

Deno.test("phases train only their variables; frozen parts (BN statistics included) stay put", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    for (const id of ["baseline", "compress:1", "compress:2", "compress:3", "compress:4", "meta"]) {
      await runPhase(plan[id], { runDir, config, plan: phases, data, ...quiet });
    }
    const compress = await readPhaseOutput(runDir, plan["compress:2"]);
    assert.ok([...compress!.weights.keys()].every((n) => n.startsWith("stages.1.")));
    assert.equal(compress!.result.fitRelative! > 0, true);
    const meta = await readPhaseOutput(runDir, plan.meta);
    const baseline = await readPhaseOutput(runDir, plan.baseline);
    // meta trained only the head: stem equals the baseline's, stages equal the fits.
    for (const [name, t] of meta!.weights) {
      if (name.startsWith("stem.")) {
        assert.deepEqual(t.data, baseline!.weights.get(name)!.data, name);
      }
      if (name.startsWith("stages.1.")) {
        assert.deepEqual(t.data, compress!.weights.get(name)!.data, name);
      }
    }
    // An incubation that saves everything: only stage 2 may differ from its sources.
    const inc: Phase = { ...plan["incubate:2"], saves: ["*"] };
    const before = tf.memory().numTensors;
    const r = await runPhase(inc, { runDir, config, plan: phases, data, ...quiet });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(r.imagesProcessed, 20);
    assert.ok(r.initialTestAccuracy !== null && r.testAccuracy !== null);
    const out = await readPhaseOutput(runDir, plan["incubate:2"]);
    let changed = 0;
    for (const [name, t] of out!.weights) {
      const source = matchesAny(name, ["stages.1.*"]) ? baseline! : meta!;
      const same = JSON.stringify(Array.from(t.data as Float32Array)) ===
        JSON.stringify(Array.from(source.weights.get(name)!.data as Float32Array));
      if (matchesAny(name, ["stages.1.*"])) changed += same ? 0 : 1;
      else assert.ok(same, `${name} is frozen in incubate:2 but changed`);
    }
    assert.ok(changed > 0, "stage 2 was trained");
    assert.deepEqual(r.inputs, {
      baseline: baseline!.sha256,
      meta: meta!.sha256,
    });
    // Training checkpoints are removed once the output is committed.
    await assert.rejects(Deno.stat(`${dirOf(runDir, "incubate:2")}/train`));
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("baseline from a given PyTorch state_dict is loaded, not trained", async () => {
  const runDir = await Deno.makeTempDir();
  const source = buildModel(specs.baseline, { seed: 5 });
  try {
    const path = `${runDir}/torch.safetensors`;
    await Deno.writeFile(path, await exportTorchStateDict(source));
    const given = mergeConfig(config, { baseline: { checkpoint: path } });
    const givenPlan = planPhases(given);
    const r = await runPhase(givenPlan[0], {
      runDir,
      config: given,
      plan: givenPlan,
      data,
      ...quiet,
    });
    assert.equal(r.imagesProcessed, 0);
    assert.equal(r.history.length, 0);
    const expected = await evaluate(source, batches(data.test, { batchSize: 10 }));
    assert.equal(r.testAccuracy, expected.accuracy);
    const ckpt = await readCheckpoint(`${dirOf(runDir, "baseline")}/output/output.json`);
    const w = source.namedVariables().find(([n]) => n === "stem.conv.weight")![1];
    assert.deepEqual(ckpt.weights.get("stem.conv.weight")!.data, await w.data());
  } finally {
    disposeModule(source);
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("a baseline loaded from a file is redone when that file changes, not reused", async () => {
  const runDir = await Deno.makeTempDir();
  const a = buildModel(specs.baseline, { seed: 5 });
  const b = buildModel(specs.baseline, { seed: 6 });
  try {
    const path = `${runDir}/given.safetensors`;
    await Deno.writeFile(path, await exportTorchStateDict(a));
    const given = mergeConfig(config, { baseline: { checkpoint: path } });
    const first = await runPipeline(given, { runDir, data, only: ["baseline"], ...quiet });
    assert.deepEqual(first.ran, ["baseline"]);
    const again = await runPipeline(given, { runDir, data, only: ["baseline"], ...quiet });
    assert.deepEqual(again.skipped, ["baseline"], "same file: complete output reused");
    const givenBaseline = planPhases(given)[0];
    const digest = await givenCheckpointDigest(givenBaseline);
    assert.match(digest!, /^[0-9a-f]{64}$/);
    assert.equal(await givenCheckpointDigest(plan.meta), undefined);
    assert.equal(await givenCheckpointDigest(plan.baseline), undefined, "a trained baseline");
    await Deno.writeFile(path, await exportTorchStateDict(b)); // same path, other weights
    assert.notEqual(await givenCheckpointDigest(givenBaseline), digest);
    await assert.rejects(
      runPipeline(given, { runDir, data, only: ["baseline"], ...quiet }),
      /holds a complete baseline made with another config/,
    );
    const missing = mergeConfig(config, { baseline: { checkpoint: `${runDir}/nope.safetensors` } });
    await assert.rejects(
      givenCheckpointDigest(planPhases(missing)[0]),
      /Cannot read baseline.checkpoint .*nope.safetensors.*set baseline.checkpoint to null/,
    );
  } finally {
    disposeModule(a);
    disposeModule(b);
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("an interrupted phase resumes its own training and discards another config's", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const phase = plan.baseline;
    const trainDir = `${dirOf(runDir, "baseline")}/train`;
    const fingerprint = {
      ...(phaseFingerprint(phase, config) as Record<string, unknown>),
      inputs: {},
    };
    const model = buildModel(specs.baseline, { seed: 3 });
    const optimizer = makeOptimizer(
      config.baseline,
      model.namedVariables().filter(([, v]) => v.trainable),
    );
    const record = {
      epoch: 1,
      step: 2,
      loss: 123.5,
      trainAccuracy: 0.25,
      testAccuracy: 0.75,
      testLoss: 1,
      lr: 0,
      imagesPerSecond: 1,
      seconds: 1,
      metrics: {},
    };
    const save = async (cfg: unknown) =>
      saveCheckpoint(trainDir, model.namedVariables(), {
        epoch: 1,
        step: 2,
        config: cfg,
        optimizer: await optimizer.getState(),
        history: [record],
      });
    // A checkpoint of the same phase and config: the (1-epoch) training is already done.
    await save(fingerprint);
    const resumed = await runPhase(phase, { runDir, config, plan: phases, data, ...quiet });
    assert.deepEqual(resumed.history, [record]);
    // The result's accuracy is measured on the saved weights, not copied from the log.
    const expected = await evaluate(model, batches(data.test, { batchSize: 10 }));
    assert.equal(resumed.testAccuracy, expected.accuracy);
    // A leftover of another config is discarded and the phase trains from scratch.
    await Deno.remove(`${dirOf(runDir, "baseline")}`, { recursive: true });
    await save({ ...fingerprint, seed: 99 });
    const lines: string[] = [];
    const fresh = await runPhase(phase, {
      runDir,
      config,
      plan: phases,
      data,
      progress: false,
      log: (l) => lines.push(l),
    });
    assert.ok(lines.some((l) => /discarding partial training/.test(l)), lines.join("\n"));
    assert.notEqual(fresh.history[0].loss, 123.5);
    optimizer.dispose();
    disposeModule(model);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("finetune recalibrates batch norm before training: running statistics move, weights do not", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const cfg = (recalibrateBatches: number) =>
      mergeConfig(config, {
        finetune: { epochs: 0, recalibrateBatches },
        matched: { enabled: false },
      });
    const on = planPhases(cfg(2));
    await runPipeline(cfg(2), { runDir, data, ...quiet });
    const ft = (await readPhaseOutput(runDir, on.find((p) => p.id === "finetune")!))!;
    const inc = (await readPhaseOutput(runDir, on.find((p) => p.id === "incubate:1")!))!;
    assert.ok(ft.result.recalibratedTestAccuracy !== null);
    let moved = 0;
    for (const [name, t] of inc.weights) {
      const same = JSON.stringify(Array.from(t.data as Float32Array)) ===
        JSON.stringify(Array.from(ft.weights.get(name)!.data as Float32Array));
      if (/running_(mean|var)$/.test(name)) moved += same ? 0 : 1;
      else assert.ok(same, `${name} changed without training`);
    }
    assert.ok(moved > 0, "recalibration moved the incubated stage's running statistics");
    // Off: the assembled model keeps its sources' statistics exactly.
    const off = planPhases(cfg(0));
    await runPipeline(cfg(0), { runDir: `${runDir}/off`, data, ...quiet });
    const ft0 = (await readPhaseOutput(`${runDir}/off`, off.find((p) => p.id === "finetune")!))!;
    const inc0 = (await readPhaseOutput(`${runDir}/off`, off.find((p) => p.id === "incubate:1")!))!;
    assert.equal(ft0.result.recalibratedTestAccuracy, null);
    for (const [name, t] of inc0.weights) {
      assert.deepEqual(t.data, ft0.weights.get(name)!.data, name);
    }
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
