/**
 * `deno task train`: trains a CIFAR ResNet with the core training engine.
 *
 * ```
 * deno task train --model resnet18 --dataset cifar10 --width 0.25 --epochs 30 --train-per-class 500 \
 *   --batch-size 128 --lr 0.1 --seed 0 --out runs/r18 [--resume] [--config run.yaml] \
 *   [--backend wasm|cpu|webgpu] [--data-dir D] [--limit-test N] [--max-steps N]
 * ```
 *
 * Every option can also come from a YAML file (`--config`) under its camelCase key (`batchSize`,
 * as in the pipeline's YAML); flags are kebab-case (`--batch-size`); flags override the file;
 * unknown keys are errors, and old spellings (`batch-size:` in YAML, `--subset`) name the new
 * one. Writes into `--out`: `config.json` (resolved), `metrics.jsonl` (one line per epoch),
 * `checkpoints/` (atomic, resumable with `--resume`) and `test_accuracy.svg`; every file is
 * written atomically, and never over an input.
 *
 * Safety: the folder is locked while a run uses it (`<out>/.lock` names the holder; a lock left
 * by a dead process on this host is removed with a message). A fresh run or probe into a folder
 * that holds a run is refused; `--resume` without a checkpoint is an error; a refused run writes
 * nothing. {@linkcode RESUME_SAFE_KEYS} may change on `--resume` (recorded in `metrics.jsonl`
 * and `config_history.jsonl`); other changes are refused naming the key.
 *
 * `--max-steps N` makes a probe: the same run (same data order, initial weights and learning-rate
 * schedule of the full `--epochs`) stopped after N optimizer steps, printing the loss of every
 * step and writing it to `steps.jsonl`. A probe evaluates nothing and writes no checkpoint (a
 * partial epoch is not resumable); `metrics.jsonl` holds its (possibly partial) epochs' training
 * records. Use it to compare backends on the first steps of a run too slow to finish.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  acquireRunLock,
  AdamW,
  assertNotInput,
  type Batch,
  type BatchSource,
  classificationLoss,
  type ConfigOf,
  cosineSchedule,
  deriveSeed,
  type EpochRecord,
  type FieldSpec,
  flagName,
  linePlotSvg,
  listCheckpoints,
  loadYamlConfig,
  type LossFn,
  type NamedVariables,
  NonFiniteLossError,
  type Optimizer,
  resolveConfig,
  selectBackend,
  Sgd,
  trainModel,
  type TrainStart,
  writeTextFileAtomic,
} from "@mfi/core";
import {
  batchCount,
  batches,
  type CifarSplit,
  defaultDataDir,
  loadCifar,
  subsetPerClass,
} from "@mfi/data";
import { buildResNet, RESNET_ARCHS } from "@mfi/resnet";
import {
  BACKEND_FLAGS,
  type CliSpec,
  type FlagSpec,
  helpText,
  parseCli,
  reportError,
  UsageError,
} from "./_cli.ts";

/** Every option of `deno task train`, with types, ranges and defaults (docs/method.md). */
export const TRAIN_SCHEMA = {
  model: {
    type: "string",
    choices: Object.keys(RESNET_ARCHS) as (keyof typeof RESNET_ARCHS)[],
    default: "resnet18",
    doc: "architecture",
  },
  dataset: { type: "string", choices: ["cifar10", "cifar100"], default: "cifar10" },
  width: { type: "number", min: 0.01, max: 4, default: 1, doc: "channel width multiplier" },
  epochs: { type: "number", integer: true, min: 1, default: 200 },
  trainPerClass: {
    type: "number",
    integer: true,
    min: 1,
    doc: "training images per class (stratified); default all",
  },
  limitTest: { type: "number", integer: true, min: 1, doc: "evaluate on the first N test images" },
  batchSize: { type: "number", integer: true, min: 1, max: 65536, default: 128 },
  optimizer: { type: "string", choices: ["sgd", "adamw"], default: "sgd" },
  lr: { type: "number", min: 0, default: 0.1, doc: "peak learning rate" },
  minLr: { type: "number", min: 0, default: 0, doc: "learning rate at the last step" },
  warmupEpochs: { type: "number", min: 0, default: 0, doc: "linear warm-up (epochs)" },
  momentum: { type: "number", min: 0, max: 0.999, default: 0.9 },
  nesterov: { type: "boolean", default: true },
  weightDecay: { type: "number", min: 0, default: 5e-4 },
  weightDecayFilter: { type: "string", choices: ["all", "exclude-1d"], default: "all" },
  labelSmoothing: { type: "number", min: 0, max: 0.99, default: 0 },
  augment: { type: "boolean", default: true, doc: "random crop (pad 4) and flip" },
  seed: { type: "number", integer: true, min: 0, default: 0 },
  evalEvery: { type: "number", integer: true, min: 1, default: 1, doc: "epochs between tests" },
  checkpointEvery: { type: "number", integer: true, min: 1, default: 1 },
  out: { type: "string", default: "runs/train", doc: "output directory" },
  dataDir: { type: "string", doc: "CIFAR folder or official .tar.gz (default: data cache)" },
  backend: { type: "string", choices: ["webgpu", "wasm", "cpu"], doc: BACKEND_FLAGS.backend.doc },
  threads: { type: "number", integer: true, min: 1, max: 64, doc: BACKEND_FLAGS.threads.doc },
  maxSteps: {
    type: "number",
    integer: true,
    min: 1,
    doc: "probe: stop after N steps, log each step's loss, no evaluation or checkpoint",
  },
} as const satisfies Record<string, FieldSpec>;

/** The resolved options of a training run. */
export type TrainConfig = ConfigOf<typeof TRAIN_SCHEMA>;

/** Keys that may change between a run and its resume (where and how it runs, not what). */
const RUNTIME_KEYS = ["out", "dataDir", "backend", "threads"] as const;

/**
 * Keys that may change on `--resume` and are recorded (`metrics.jsonl`, `config_history.jsonl`,
 * the checkpoints): they change the learning-rate schedule's values or how often the run tests
 * and saves, never what the saved weights, optimizer buffers, RNG state and step count mean.
 * Everything else (model, width, data, batch size, optimizer and its hyperparameters, loss,
 * augmentation, seed) is refused on resume, naming the key.
 */
export const RESUME_SAFE_KEYS: readonly string[] = Object.freeze([
  "lr",
  "minLr",
  "epochs",
  "evalEvery",
  "checkpointEvery",
]);

/** What {@linkcode runTrain} returns. */
export interface TrainSummary {
  /** The resolved config. */
  readonly config: TrainConfig;
  /** The backend that ran. */
  readonly backend: string;
  /** Epoch records. */
  readonly history: readonly EpochRecord[];
  /** Final test accuracy, or null. */
  readonly testAccuracy: number | null;
  /** Training images per epoch. */
  readonly trainImages: number;
  /** Test images. */
  readonly testImages: number;
  /** With `--max-steps`: the loss of every step taken, in order; otherwise empty. */
  readonly stepLosses: readonly number[];
}

/** Old spellings of train options, with the migration message. */
const RENAMED: Readonly<Record<string, string>> = {
  subset:
    "trainPerClass (flag --train-per-class), the pipeline's name for training images per class",
};

const NUMBER_EXAMPLES: Readonly<Record<string, string>> = {
  width: "0.25",
  lr: "0.05",
  trainPerClass: "500",
  limitTest: "1000",
  warmupEpochs: "1",
  labelSmoothing: "0.1",
  threads: "2",
  maxSteps: "10",
  evalEvery: "5",
  checkpointEvery: "5",
};

function flagSpec(key: string, field: FieldSpec): FlagSpec {
  const doc = field.doc ?? key.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);
  const defaultText = field.default !== undefined ? String(field.default) : undefined;
  switch (field.type) {
    case "boolean":
      return { type: "boolean", doc, defaultText };
    case "string":
      return {
        type: "string",
        doc,
        defaultText,
        choices: field.choices,
        example: key === "out" ? "runs/r18" : key === "dataDir" ? "/data/cifar" : undefined,
        placeholder: key === "out" || key === "dataDir" ? "DIR" : undefined,
      };
    case "number":
      return {
        type: field.integer ? "integer" : "number",
        doc,
        defaultText,
        min: field.min,
        max: field.max,
        example: NUMBER_EXAMPLES[key],
      };
    default:
      throw new TypeError(`train: no flag form for ${field.type} key ${key}`);
  }
}

/**
 * `deno task train`'s command line: one flag per {@linkcode TRAIN_SCHEMA} key (kebab-case; no
 * default is filled in by the parser, so a YAML value is overridden only by a flag given), plus
 * `--config` and `--resume`.
 */
export const TRAIN_CLI: CliSpec = {
  name: "train",
  summary: "train a CIFAR ResNet with the core training engine (checkpoints, resume, metrics, " +
    "accuracy plot)",
  flags: {
    ...Object.fromEntries(
      Object.entries(TRAIN_SCHEMA).map(([k, f]) => [flagName(k), flagSpec(k, f)]),
    ),
    config: {
      type: "string",
      placeholder: "FILE",
      example: "run.yaml",
      doc:
        "read options from YAML (camelCase keys: batchSize, trainPerClass, ...); flags override it",
    },
    resume: {
      type: "boolean",
      default: false,
      doc:
        "continue from the newest complete checkpoint (all values finite) in <out>/checkpoints; " +
        `an error when there is none; ${RESUME_SAFE_KEYS.join(", ")} may change on resume ` +
        "(recorded in metrics.jsonl and config_history.jsonl), other keys may not",
    },
  },
  renamed: Object.fromEntries(
    Object.entries(RENAMED).map(([old, now]) => [old, `--${old} was renamed: use ${now}`]),
  ),
  notes: "Every option is also a YAML key under --config, camelCase as in the pipeline's YAML\n" +
    "(batchSize: 64, trainPerClass: 500); flags are kebab-case (--batch-size 64).\n" +
    "The run folder is locked while a run uses it (<out>/.lock); a lock left by a dead process on\n" +
    "this host is removed with a message. A refused run writes nothing.",
  examples: [
    "--model resnet18 --width 0.25 --epochs 30 --train-per-class 500 --out runs/r18",
    "--config run.yaml --epochs 1 --no-augment",
    "--out runs/r18 --resume",
  ],
};

/** Rejects YAML keys in another spelling than the schema's camelCase (and renamed keys). */
function checkYamlKeys(file: string, values: Readonly<Record<string, unknown>>): void {
  for (const key of Object.keys(values)) {
    if (key in RENAMED) {
      throw new UsageError(`${file}: key "${key}" was renamed: use ${RENAMED[key]}`);
    }
    if (/[-_]/.test(key)) {
      const camel = key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
      throw new UsageError(
        `${file}: key "${key}" is spelled "${camel}" (camelCase YAML keys, as in the pipeline's ` +
          "presets); rename it",
      );
    }
  }
}

async function loadSplit(config: TrainConfig, split: "train" | "test"): Promise<CifarSplit> {
  const source = config.dataDir ?? defaultDataDir();
  const where = source.endsWith(".tar.gz") ? { archive: source } : { dir: source };
  return await loadCifar({ dataset: config.dataset, split, ...where });
}

function firstImages(split: CifarSplit, n: number): CifarSplit {
  if (n >= split.count) return split;
  return Object.freeze({
    ...split,
    count: n,
    images: split.images.slice(0, n * 32 * 32 * 3),
    labels: split.labels.slice(0, n),
  });
}

function buildOptimizer(
  config: TrainConfig,
  variables: NamedVariables,
): Optimizer {
  if (config.optimizer === "adamw") {
    return new AdamW(variables, {
      weightDecay: config.weightDecay,
      weightDecayFilter: config.weightDecayFilter,
    });
  }
  return new Sgd(variables, {
    momentum: config.momentum,
    nesterov: config.nesterov && config.momentum > 0,
    weightDecay: config.weightDecay,
    weightDecayFilter: config.weightDecayFilter,
  });
}

/**
 * The `--max-steps` probe: caps the batch sources at `maxSteps` batches in all and records each
 * step's loss. The loss is kept (a clone, inside the tape) when computed and read when the loop
 * asks for the next batch, that is after the step's update, so every step is printed as it ends.
 */
class StepProbe {
  readonly losses: number[] = [];
  #taken = 0;
  #held: tf.Tensor[] = [];

  constructor(readonly maxSteps: number, readonly file: string) {}

  wrap(lossFn: LossFn): LossFn {
    return (batch, context) => {
      const out = lossFn(batch, context);
      const loss = out instanceof tf.Tensor ? out : out.loss;
      this.#held.push(tf.keep(loss.clone()));
      return out;
    };
  }

  async *limit(source: BatchSource): AsyncGenerator<Batch> {
    for await (const batch of source) {
      await this.#drain();
      if (this.#taken >= this.maxSteps) {
        tf.dispose([batch.images, batch.labels]);
        return;
      }
      this.#taken++;
      yield batch;
    }
    await this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#held.length > 0) {
      const t = this.#held.shift()!;
      const value = (await t.data())[0];
      t.dispose();
      const step = this.losses.length;
      this.losses.push(value);
      console.log(`step ${step + 1}/${this.maxSteps}: loss ${value}`);
      await Deno.writeTextFile(this.file, JSON.stringify({ step, loss: value }) + "\n", {
        append: true, // the file was created (atomically, empty) before the run started
      });
    }
  }

  dispose(): void {
    tf.dispose(this.#held);
    this.#held = [];
  }
}

/**
 * Runs `deno task train` with the given arguments.
 *
 * @param args Command-line arguments.
 * @returns The run summary, or undefined after `--help`.
 * @throws {Error} On invalid options, missing data, a NaN loss or a failed resume.
 */
export async function runTrain(args: readonly string[]): Promise<TrainSummary | undefined> {
  const parsed = parseCli(TRAIN_CLI, args);
  if (parsed.help) {
    console.log(helpText(TRAIN_CLI));
    return undefined;
  }
  const resume = parsed.values.resume === true;
  const configFile = typeof parsed.values.config === "string" ? parsed.values.config : undefined;
  const layers = [];
  if (configFile !== undefined) {
    let values;
    try {
      values = await loadYamlConfig(configFile);
    } catch (e) {
      throw new UsageError(`--config: ${(e as Error).message}`);
    }
    checkYamlKeys(configFile, values);
    layers.push({ source: configFile, values });
  }
  const fromFlags: Record<string, unknown> = {};
  for (const key of Object.keys(TRAIN_SCHEMA)) {
    const name = flagName(key);
    if (parsed.given.has(name)) fromFlags[key] = parsed.values[name];
  }
  layers.push({ source: "the command line", values: fromFlags });
  let config: TrainConfig;
  try {
    config = resolveConfig(TRAIN_SCHEMA, layers);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (config.maxSteps !== undefined && resume) {
    throw new UsageError(
      `"maxSteps" cannot be combined with --resume: a probe writes no checkpoint; drop one of them`,
    );
  }
  const inputs = [
    ...(configFile !== undefined ? [configFile] : []),
    ...(config.dataDir !== undefined ? [config.dataDir] : []),
  ];
  await checkRunFolder(config, resume, inputs);

  const backend = await selectBackend({ backend: config.backend, threads: config.threads });
  console.log(`backend: ${backend.name} (${backend.reason})`);

  const fullTrain = await loadSplit(config, "train");
  const train = config.trainPerClass ? subsetPerClass(fullTrain, config.trainPerClass) : fullTrain;
  const fullTest = await loadSplit(config, "test");
  const test = config.limitTest ? firstImages(fullTest, config.limitTest) : fullTest;
  const classes = train.classNames.length;
  const stepsPerEpoch = batchCount(train.count, { batchSize: config.batchSize });
  const totalSteps = stepsPerEpoch * config.epochs;
  const warmupSteps = Math.min(Math.round(config.warmupEpochs * stepsPerEpoch), totalSteps - 1);
  const maxSteps = config.maxSteps;
  if (maxSteps !== undefined && maxSteps > totalSteps) {
    throw new UsageError(
      `"maxSteps" (${maxSteps}) exceeds the run's ${totalSteps} steps (${config.epochs} epochs of ` +
        `${stepsPerEpoch}); lower --max-steps or drop it to train the whole run`,
    );
  }
  console.log(
    `data: ${config.dataset} train ${train.count} images (${stepsPerEpoch} batches of ` +
      `${config.batchSize}), test ${test.count}`,
  );

  const model = buildResNet({
    arch: config.model,
    classes,
    width: config.width,
    seed: config.seed,
  });
  const trainable = model.namedVariables().filter(([, v]) => v.trainable);
  const optimizer = buildOptimizer(config, trainable);
  const lossFn = classificationLoss(model, { labelSmoothing: config.labelSmoothing });
  const runConfig = Object.fromEntries(
    Object.entries(config).filter(([k]) => !(RUNTIME_KEYS as readonly string[]).includes(k)),
  );
  const dataSeed = deriveSeed(config.seed, "data");
  const probe = maxSteps === undefined
    ? undefined
    : new StepProbe(maxSteps, `${config.out}/steps.jsonl`);
  const created = !(await exists(config.out));
  await Deno.mkdir(config.out, { recursive: true });
  let started = false;
  const lock = await acquireRunLock(config.out, {
    command: ["deno task train", ...args].join(" "),
    onStale: (m) => console.warn(`train: ${m}`),
  }).catch((e) => {
    optimizer.dispose();
    for (const [, v] of model.namedVariables()) v.dispose();
    throw e;
  });
  // Written only once every check has passed (in beforeStart), so a refused run touches nothing.
  const beforeStart = async (start: TrainStart): Promise<void> => {
    started = true;
    for (const path of start.skippedNonFinite) {
      console.warn(`train: skipping checkpoint ${path}: it holds NaN/Inf values`);
    }
    if (start.resumedFrom !== null) console.log(`resuming from ${start.resumedFrom}`);
    for (const c of start.configChanges) {
      console.log(
        `resume: ${c.key} changed from ${JSON.stringify(c.from)} to ${JSON.stringify(c.to)} ` +
          `(recorded in metrics.jsonl and config_history.jsonl)`,
      );
    }
    await writeTextFileAtomic(`${config.out}/config.json`, JSON.stringify(config, null, 2) + "\n", {
      inputs,
    });
    if (start.configHistory.length > 0) {
      await writeTextFileAtomic(
        `${config.out}/config_history.jsonl`,
        start.configHistory.map((h) => JSON.stringify(h) + "\n").join(""),
        { inputs },
      );
    }
    if (probe) await writeTextFileAtomic(probe.file, "", { inputs });
  };
  try {
    await checkRunFolder(config, resume, inputs); // again, now that the folder is ours
    const result = await trainModel(model, {
      optimizer,
      schedule: cosineSchedule({
        baseLr: config.lr,
        minLr: Math.min(config.minLr, config.lr),
        totalSteps,
        warmupSteps,
      }),
      epochs: probe ? Math.ceil(probe.maxSteps / stepsPerEpoch) : config.epochs,
      trainData: (epoch) => {
        const source = batches(train, {
          batchSize: config.batchSize,
          shuffle: true,
          augment: config.augment,
          seed: dataSeed,
          epoch,
        });
        return probe ? probe.limit(source) : source;
      },
      testData: probe
        ? undefined
        : () => batches(test, { batchSize: Math.max(config.batchSize, 256) }),
      evalEvery: config.evalEvery,
      lossFn: probe ? probe.wrap(lossFn) : lossFn,
      seed: config.seed,
      stepsPerEpoch,
      checkpointDir: probe ? undefined : `${config.out}/checkpoints`,
      checkpointEvery: config.checkpointEvery,
      resume,
      config: runConfig,
      safeToChange: RESUME_SAFE_KEYS,
      beforeStart,
      logFile: `${config.out}/metrics.jsonl`,
    });
    const points = result.history
      .filter((r) => r.testAccuracy !== null)
      .map((r) => [r.epoch, 100 * r.testAccuracy!] as const);
    const trainPoints = result.history
      .filter((r) => r.trainAccuracy !== null)
      .map((r) => [r.epoch, 100 * r.trainAccuracy!] as const);
    if (points.length + trainPoints.length > 0) {
      await writeTextFileAtomic(
        `${config.out}/test_accuracy.svg`,
        linePlotSvg([
          { name: "test top-1 (%)", points },
          { name: "train top-1 (%)", points: trainPoints },
        ], {
          title: `${config.model} x${config.width} on ${config.dataset}`,
          xLabel: "epoch",
          yLabel: "accuracy (%)",
        }),
        { inputs },
      );
    }
    const last = result.history.at(-1);
    return {
      config,
      backend: backend.name,
      history: result.history,
      testAccuracy: last?.testAccuracy ?? null,
      trainImages: train.count,
      testImages: test.count,
      stepLosses: probe?.losses ?? [],
    };
  } finally {
    probe?.dispose();
    optimizer.dispose();
    for (const [, v] of model.namedVariables()) v.dispose();
    await lock.release();
    // A run refused before it started leaves no empty folder behind it.
    if (!started && created) await Deno.remove(config.out).catch(() => {});
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The files a run writes into its folder (besides `checkpoints/` and `.lock`). */
const RUN_FILES = [
  "config.json",
  "metrics.jsonl",
  "config_history.jsonl",
  "steps.jsonl",
  "test_accuracy.svg",
];

/**
 * Refuses, before anything is loaded or written, a run that would damage what `out` holds: a
 * fresh run or probe over a folder that holds a run (checkpoints, or the epoch records of a full
 * run; a previous probe's files are replaced), `--resume` with no checkpoint to resume from, and
 * an output file that is one of the inputs.
 */
async function checkRunFolder(
  config: TrainConfig,
  resume: boolean,
  inputs: readonly string[],
): Promise<void> {
  const out = config.out;
  for (const name of RUN_FILES) await assertNotInput(`${out}/${name}`, inputs);
  const checkpoints = await listCheckpoints(`${out}/checkpoints`);
  if (resume) {
    if (checkpoints.length === 0) {
      throw new Error(
        `Cannot resume: ${out}/checkpoints holds no complete checkpoint. Drop --resume to ` +
          `start a fresh run, or pass the --out of the run to continue.`,
      );
    }
    return;
  }
  let previous: Record<string, unknown> | undefined;
  try {
    previous = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) && !(e instanceof SyntaxError)) throw e;
  }
  const logged = await Deno.stat(`${out}/metrics.jsonl`).then((s) => s.size > 0, () => false);
  // Worth protecting: checkpoints, or the epoch records of a full run (not a probe's). A run that
  // stopped before its first epoch ended (e.g. a NaN at step 1) may be started again in place.
  const holdsRun = checkpoints.length > 0 ||
    (logged && previous !== undefined && previous.maxSteps === undefined);
  if (holdsRun) {
    throw new Error(
      `${out} already holds a training run (${
        checkpoints.length > 0 ? `${checkpoints.length} checkpoint(s)` : "its metrics.jsonl"
      }): pass --resume to continue it, or choose another --out. Nothing was written.`,
    );
  }
}

if (import.meta.main) {
  try {
    const summary = await runTrain(Deno.args);
    if (summary) {
      console.log(JSON.stringify({
        out: summary.config.out,
        epochs: summary.history.length,
        testAccuracy: summary.testAccuracy,
        backend: summary.backend,
      }));
    }
  } catch (e) {
    const advice = e instanceof NonFiniteLossError
      ? e.checkpoint
        ? "Continue with the same command plus --resume and a lower --lr (e.g. half)."
        : "Run the same command again with a lower --lr."
      : "";
    Deno.exit(reportError("train", advice ? new Error(`${(e as Error).message} ${advice}`) : e));
  }
}
