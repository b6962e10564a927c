/**
 * Evidence runs for `@mfi/flows` (cpu backend):
 *
 * - `toy`: the crossing-paths toy (x1 ~ N(0, I), x0 from 4 Gaussians): fraction of one-step
 *   samples within a radius of a mode, MeanFlow vs flow matching (one Euler step).
 * - `features`: fit a MeanFlowStage to a frozen random 3x3 conv block on random feature maps;
 *   one-step relative error for MeanFlow loss alone, endpoint regression alone, and both.
 *
 * Usage: `deno run -A tasks/flows_demo.ts toy|features [--steps N] [--seed S] ...` (`--help`
 * lists every flag).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { Conv2d, deriveSeed, Rng } from "@mfi/core";
import {
  fitToy,
  fractionNearModes,
  MeanFlowStage,
  type StageLossOptions,
  toyPairs,
  trainStageStep,
  VelocityNetwork,
} from "@mfi/flows";

import { type CliSpec, parseCliOrExit } from "./_cli.ts";

/** `tasks/flows_demo.ts`'s command line. */
export const FLOWS_DEMO_CLI: CliSpec = {
  name: "flows_demo",
  summary: "evidence runs for @mfi/flows on the cpu backend: the crossing-paths toy (MeanFlow vs " +
    "one-step flow matching) and fitting a MeanFlowStage to a frozen conv block",
  usage: "toy|features [options]",
  positionals: {
    name: "toy|features",
    doc: "which experiment",
    min: 1,
    max: 1,
    choices: ["toy", "features"],
  },
  flags: {
    steps: { type: "integer", min: 1, default: 600, doc: "training steps" },
    seed: { type: "integer", min: 0, default: 0, doc: "base seed" },
    batch: {
      type: "integer",
      min: 1,
      defaultText: "toy 256, features 16",
      example: "64",
      doc: "batch size",
    },
    hidden: { type: "integer", min: 1, default: 64, doc: "hidden width of the velocity network" },
    modules: {
      type: "integer",
      min: 1,
      max: 2,
      default: 1,
      example: "2",
      doc: "features: MeanFlow modules",
    },
    radius: {
      type: "number",
      above: 0,
      default: 1,
      example: "0.5",
      doc: "toy: radius that counts as near a mode",
    },
    lr: {
      type: "number",
      above: 0,
      defaultText: "toy 3e-3, features 1e-3",
      example: "1e-3",
      doc: "Adam learning rate",
    },
    "distinct-fraction": {
      type: "number",
      min: 0,
      max: 1,
      default: 0.25,
      example: "0.5",
      doc: "share of samples with r != t",
    },
    p: {
      type: "string",
      default: "0,1",
      example: "0.75",
      doc: "toy: adaptive-weight powers to compare (comma-separated)",
    },
    variants: {
      type: "string",
      default: "meanflow,endpoint,both",
      example: "both",
      doc: "features: objectives to compare (comma-separated)",
    },
    sample: {
      type: "string",
      choices: ["pixel", "image"],
      default: "pixel",
      doc: "features: time sampling granularity",
    },
  },
  examples: ["toy", "features --steps 200 --variants both"],
};

const { values: parsed, positionals } = parseCliOrExit(FLOWS_DEMO_CLI);
const values = parsed as {
  steps: number;
  seed: number;
  batch?: number;
  hidden: number;
  modules: number;
  radius: number;
  lr?: number;
  "distinct-fraction": number;
  p: string;
  variants: string;
  sample: string;
};
await tf.setBackend("cpu");
const seed = values.seed;
const mode = positionals[0];

async function toy(): Promise<void> {
  const steps = Number(values.steps ?? 600);
  const batch = Number(values.batch ?? 256);
  const hidden = Number(values.hidden ?? 64);
  const radius = Number(values.radius);
  const lr = Number(values.lr ?? 3e-3);
  console.log(
    `toy: 4 modes at (+-3, +-3), std 0.2; hidden ${hidden}, 2 blocks; ${steps} steps of ${batch}; ` +
      `Adam ${lr}; 4000 one-step samples; seed ${seed}`,
  );
  console.log(
    `| training | r != t fraction | adaptive p | within ${radius} of a mode | mean norm | last loss | s |`,
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  const runs = values.p.split(",").map(Number).flatMap((p) => [
    ["MeanFlow", Number(values["distinct-fraction"]), p] as const,
    ["flow matching", 0, p] as const,
  ]);
  for (const [name, fraction, p] of runs) {
    const net = new VelocityNetwork({
      channels: 2,
      hidden,
      blocks: 2,
      timeEmbedDim: 16,
      timeMaxFrequency: 10,
      seed: deriveSeed(seed, "toy-net"),
    });
    const start = performance.now();
    const losses = await fitToy(net, {
      steps,
      batch,
      learningRate: lr,
      rng: new Rng(deriveSeed(seed, "toy-train")),
      distinctFraction: fraction,
      p,
    });
    const { x0, x1 } = toyPairs(4000, new Rng(deriveSeed(seed, "toy-eval")));
    // MeanFlow: one step with the average velocity over [0, 1]. Flow matching only ever saw
    // r = t: one Euler step with the instantaneous velocity at t = 1.
    const out = tf.tidy(() => tf.sub(x1, net.velocity(x1, fraction > 0 ? 0 : 1, 1)));
    const norm = tf.tidy(() => tf.mean(tf.norm(out, "euclidean", 1))).dataSync()[0];
    console.log(
      `| ${name} | ${fraction} | ${p} | ${(await fractionNearModes(out, radius)).toFixed(3)} | ${
        norm.toFixed(2)
      } | ${losses.at(-1)!.toFixed(4)} | ${((performance.now() - start) / 1000).toFixed(0)} |`,
    );
    tf.dispose([x0, x1, out]);
    net.dispose();
  }
}

async function features(): Promise<void> {
  const steps = Number(values.steps ?? 600);
  const batch = Number(values.batch ?? 16);
  const hidden = Number(values.hidden ?? 64);
  const modules = Number(values.modules) as 1 | 2;
  const lr = Number(values.lr ?? 1e-3);
  const [cin, cout, size] = [8, 16, 8];
  // Frozen random teacher block: X(l) = ReLU(conv3x3(ReLU(conv3x3_s2(X))) + conv1x1_s2(X)) / scale.
  const conv1 = new Conv2d({
    inChannels: cin,
    outChannels: cout,
    kernelSize: 3,
    stride: 2,
    seed: deriveSeed(seed, "t1"),
  });
  const conv2 = new Conv2d({
    inChannels: cout,
    outChannels: cout,
    kernelSize: 3,
    seed: deriveSeed(seed, "t2"),
  });
  const proj = new Conv2d({
    inChannels: cin,
    outChannels: cout,
    kernelSize: 1,
    stride: 2,
    seed: deriveSeed(seed, "t3"),
  });
  const teacher = (x: tf.Tensor) =>
    tf.tidy(() => {
      const h = tf.relu(conv1.apply(x));
      return tf.relu(tf.add(tf.mul(0.5, conv2.apply(h)), proj.apply(x)));
    });
  const maps = (n: number, s: number) =>
    tf.tidy(() => tf.relu(tf.randomNormal([n, size, size, cin], 0, 1, "float32", s)));
  const trainX = maps(256, deriveSeed(seed, "train") % 100000);
  const testX = maps(64, deriveSeed(seed, "test") % 100000);
  const trainY = teacher(trainX);
  const testY = teacher(testX);
  const relError = (pred: tf.Tensor) =>
    tf.tidy(() => tf.div(tf.norm(tf.sub(pred, testY)), tf.norm(testY))).dataSync()[0];
  const all: Record<string, [string, Partial<StageLossOptions>]> = {
    meanflow: ["MeanFlow loss alone (lambda 0)", { lambda: 0 }],
    endpoint: ["endpoint regression alone", { meanflow: false, lambda: 1 }],
    both: ["both (lambda 1)", { lambda: 1 }],
  };
  const variants = values.variants.split(",").map((v) => {
    if (!(v in all)) throw new RangeError(`--variants: unknown "${v}"; use meanflow,endpoint,both`);
    return all[v];
  });
  console.log(
    `features: teacher 3x3 conv block ${cin}->${cout} stride 2 on ReLU(N(0,1)) maps ${size}x${size}; ` +
      `256 train / 64 test maps; stage hidden ${hidden}, modules ${modules}; ${steps} steps of ${batch}; ` +
      `Adam ${lr}; sample ${values.sample}; distinctFraction ${
        values["distinct-fraction"]
      }; seed ${seed}`,
  );
  console.log(
    "| objective | rel. error 1 step | 2 steps | 4 steps | align only | final MeanFlow loss | final endpoint | s |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [name, opts] of variants) {
    const stage = new MeanFlowStage({
      inChannels: cin,
      outChannels: cout,
      stride: 2,
      hidden,
      modules,
      seed: deriveSeed(seed, "stage"),
    });
    const optimizer: tf.Optimizer = tf.train.adam(lr);
    const rng = new Rng(deriveSeed(seed, "stage-train"));
    const start = performance.now();
    let last = { total: NaN, meanflow: NaN, endpoint: NaN };
    for (let s = 0; s < steps; s++) {
      const idx = tf.tensor1d(Array.from({ length: batch }, () => rng.int(256)), "int32");
      const xPrev = tf.gather(trainX, idx);
      const xNext = tf.gather(trainY, idx);
      last = await trainStageStep(stage, optimizer, { xPrev, xNext }, {
        rng,
        sampler: { distinctFraction: Number(values["distinct-fraction"]) },
        sample: values.sample as "pixel" | "image",
        ...opts,
      });
      tf.dispose([idx, xPrev, xNext]);
    }
    const errs = [1, 2, 4].map((k) => {
      const pred = tf.tidy(() => stage.apply(testX, { training: false, steps: k }));
      const e = relError(pred);
      pred.dispose();
      return e;
    });
    const alignOnly = tf.tidy(() => stage.align(testX, { training: false }));
    console.log(
      `| ${name} | ${errs.map((e) => e.toFixed(4)).join(" | ")} | ${
        relError(alignOnly).toFixed(4)
      } | ${last.meanflow.toFixed(4)} | ${last.endpoint.toFixed(4)} | ${
        ((performance.now() - start) / 1000).toFixed(0)
      } |`,
    );
    alignOnly.dispose();
    optimizer.dispose();
    stage.dispose();
  }
  tf.dispose([trainX, testX, trainY, testY]);
}

if (mode === "toy") await toy();
else await features();
