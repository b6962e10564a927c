/**
 * `deno task train`: trains the baseline ResNet alone. It is the pipeline's `baseline` phase
 * (`deno task reproduce --phase baseline`): the same config (docs/method.md's config reference,
 * validated by `@mfi/incubation`'s one validator), the same runner, optimizer factory, seeds and
 * run-folder layout, so a finished `train` run is the baseline of a pipeline run in that folder.
 *
 * ```
 * deno task train --model resnet18 --dataset cifar10 --width 0.25 --epochs 30 --train-per-class 500 \
 *   --batch-size 128 --lr 0.1 --seed 0 --out runs/r18 [--resume] [--config run.yaml] \
 *   [--set baseline.warmupEpochs=1] [--backend wasm|cpu|webgpu] [--data-dir D]
 * ```
 *
 * Config = docs/method.md defaults <- `--config FILE` (the pipeline's YAML, e.g. `baseline:
 * { batchSize: 64 }`) <- the flags (each one a pipeline key: `--batch-size` is
 * `baseline.batchSize`) <- each `--set key.path=value`. The keys of the old train config
 * (`batchSize:` at the top of the file, `batch-size:`, `--limit-test`, ...) are migration errors
 * naming the new key.
 *
 * Writes into `--out`: `config.json` (the resolved pipeline config; `deno task reproduce
 * --config <out>/config.json --out <out>` continues the pipeline from this baseline),
 * `phases/baseline/log.jsonl` (one record per epoch), `phases/baseline/train/` (epoch
 * checkpoints, removed once the output is committed), `phases/baseline/output/` (the weights
 * and the result) and `test_accuracy.svg`. Every file is written atomically, and never over an
 * input.
 *
 * Safety: the folder is locked while a run uses it (`<out>/.lock` names the holder; a lock left
 * by a dead process on this host is removed with a message). A fresh run into a folder that
 * holds a run is refused; `--resume` continues from the newest epoch checkpoint (bit-identical
 * to an uninterrupted run) and needs the run's own config: a changed key is refused, naming it.
 * A refused run writes nothing.
 *
 * @module
 */
import {
  acquireRunLock,
  assertNotInput,
  type EpochRecord,
  latestCheckpoint,
  linePlotSvg,
  listCheckpoints,
  NonFiniteLossError,
  readCheckpoint,
  selectBackend,
  writeTextFileAtomic,
} from "@mfi/core";
import {
  DataCheckError,
  DEFAULT_CONFIG,
  givenCheckpointDigest,
  loadPipelineData,
  mergeConfig,
  parseConfigYaml,
  parseOverrides,
  type Phase,
  phaseFingerprint,
  type PipelineConfig,
  type PipelineData,
  planBaseline,
  readPhaseOutput,
  runPipeline,
} from "@mfi/incubation";
import {
  BACKEND_FLAGS,
  backendOptions,
  type CliSpec,
  type FlagSpec,
  type FlagValue,
  helpText,
  parseCli,
  reportError,
  UsageError,
} from "./_cli.ts";

/** A flag that sets one key of the pipeline config. */
interface KeyFlag {
  /** The dotted pipeline key, e.g. `baseline.batchSize`. */
  readonly key: string;
  /** Value type. */
  readonly type: "string" | "number" | "integer" | "boolean";
  /** One line. */
  readonly doc: string;
  /** An example value for the help. */
  readonly example?: string;
}

/**
 * The flags of `deno task train` that set a pipeline key (kebab-case flag -> dotted key). Values
 * are checked by the pipeline config's validator, whose errors name the key and the flag.
 */
export const TRAIN_KEY_FLAGS: Readonly<Record<string, KeyFlag>> = Object.freeze({
  model: {
    key: "model.arch",
    type: "string",
    doc: "architecture: resnet18, resnet34, resnet50 or resnet101",
    example: "resnet18",
  },
  dataset: { key: "data.dataset", type: "string", doc: "cifar10 or cifar100", example: "cifar100" },
  width: { key: "model.width", type: "number", doc: "channel width multiplier", example: "0.25" },
  epochs: { key: "baseline.epochs", type: "number", doc: "training epochs", example: "30" },
  "train-per-class": {
    key: "data.trainPerClass",
    type: "integer",
    doc: "training images per class (stratified)",
    example: "500",
  },
  "test-per-class": {
    key: "data.testPerClass",
    type: "integer",
    doc: "test images per class",
    example: "100",
  },
  "batch-size": { key: "baseline.batchSize", type: "integer", doc: "batch size", example: "64" },
  optimizer: { key: "baseline.optimizer", type: "string", doc: "sgd or adamw", example: "adamw" },
  lr: { key: "baseline.lr", type: "number", doc: "peak learning rate (cosine)", example: "0.05" },
  "warmup-epochs": {
    key: "baseline.warmupEpochs",
    type: "number",
    doc: "linear warm-up (epochs)",
    example: "1",
  },
  momentum: { key: "baseline.momentum", type: "number", doc: "SGD momentum", example: "0.8" },
  nesterov: { key: "baseline.nesterov", type: "boolean", doc: "Nesterov momentum (SGD)" },
  "weight-decay": {
    key: "baseline.weightDecay",
    type: "number",
    doc: "weight decay (SGD: L2; AdamW: decoupled)",
    example: "1e-4",
  },
  augment: { key: "data.augment", type: "boolean", doc: "random crop (pad 4) and flip" },
  seed: { key: "seed", type: "integer", doc: "base seed of every random draw", example: "1" },
});

/**
 * What became of each key of the old train config (its flat YAML keys and flags), by camelCase
 * name: `is now ...` names the pipeline key (or flag) to use, `was removed: ...` says why.
 */
export const OLD_TRAIN_KEYS: Readonly<Record<string, string>> = Object.freeze({
  model: "is now `model.arch` (model: { arch: resnet18 })",
  dataset: "is now `data.dataset`",
  width: "is now `model.width`",
  epochs: "is now `baseline.epochs`",
  trainPerClass: "is now `data.trainPerClass`",
  subset: "is now `data.trainPerClass` (flag --train-per-class)",
  limitTest: "is now `data.testPerClass` (flag --test-per-class): test images per class, " +
    "not a total",
  batchSize: "is now `baseline.batchSize`",
  optimizer: "is now `baseline.optimizer`",
  lr: "is now `baseline.lr`",
  momentum: "is now `baseline.momentum`",
  nesterov: "is now `baseline.nesterov`",
  weightDecay: "is now `baseline.weightDecay`",
  warmupEpochs: "is now `baseline.warmupEpochs`",
  augment: "is now `data.augment`",
  minLr: "was removed: the cosine schedule decays to 0, as in every pipeline phase",
  weightDecayFilter: "was removed: weight decay applies to every parameter (the old `all`)",
  labelSmoothing: "was removed: the baseline trains with plain cross-entropy",
  evalEvery: "was removed: every epoch is evaluated",
  checkpointEvery: "was removed: every epoch is checkpointed",
  maxSteps: "was removed (the step probe): `deno task reproduce` times a few steps of each " +
    "phase before a run, and `deno task bench` compares backends",
  out: "is not a config key: use the flag --out",
  dataDir: "is not a config key: use the flag --data-dir",
  backend: "is not a config key: use the flag --backend",
  threads: "is not a config key: use the flag --threads",
});

const camel = (key: string): string =>
  key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The value of a dotted key of a config. */
function valueAt(config: unknown, key: string): unknown {
  return key.split(".").reduce((node, k) => (node as Record<string, unknown>)?.[k], config);
}

/** `{ a: { b: value } }` for `a.b`. */
function patchOf(key: string, value: unknown): Record<string, unknown> {
  return key.split(".").reduceRight<Record<string, unknown>>(
    (inner, k) => ({ [k]: inner }),
    value as Record<string, unknown>,
  );
}

function keyFlagSpec(flag: KeyFlag): FlagSpec {
  const def = valueAt(DEFAULT_CONFIG, flag.key);
  return {
    type: flag.type,
    doc: `${flag.doc} (${flag.key})`,
    defaultText: def === null ? "all" : String(def),
    example: flag.example,
  };
}

/** Old flags: a migration error each (the ones whose key moved under a new flag or was removed). */
const OLD_FLAGS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(OLD_TRAIN_KEYS)
      .filter(([key]) => !(kebab(key) in TRAIN_KEY_FLAGS) && !(kebab(key) in BACKEND_FLAGS))
      .filter(([key]) => !["out", "dataDir"].includes(key))
      .map(([key, what]) => [kebab(key), `--${kebab(key)} ${what}`]),
  ),
);

/** `deno task train`'s command line. */
export const TRAIN_CLI: CliSpec = {
  name: "train",
  summary: "train the baseline ResNet alone: the pipeline's baseline phase (checkpoints, " +
    "resume, per-epoch log, accuracy plot)",
  flags: {
    ...Object.fromEntries(
      Object.entries(TRAIN_KEY_FLAGS).map(([name, flag]) => [name, keyFlagSpec(flag)]),
    ),
    config: {
      type: "string",
      placeholder: "FILE",
      example: "run.yaml",
      doc: "the pipeline's YAML (docs/method.md's config reference; e.g. baseline: " +
        "{ batchSize: 64 }), applied before the flags",
    },
    set: {
      type: "string",
      multiple: true,
      placeholder: "KEY=VALUE",
      example: "baseline.warmupEpochs=1",
      doc: "override one config key (value read as YAML), applied last",
    },
    out: {
      type: "string",
      placeholder: "DIR",
      default: "runs/train",
      example: "runs/r18",
      doc: "run folder (the pipeline's layout; reproduce continues from it)",
    },
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      defaultText: "MFI_DATA_DIR, else the data cache",
      example: "/data/cifar",
      doc: "CIFAR folder or official .tar.gz",
    },
    resume: {
      type: "boolean",
      default: false,
      doc: "continue the run in --out from its newest epoch checkpoint (its config unchanged); " +
        "an error when there is none",
    },
    ...BACKEND_FLAGS,
  },
  renamed: OLD_FLAGS,
  notes: "Config = docs/method.md defaults <- --config FILE <- the flags <- each --set.\n" +
    "Each flag is a pipeline key (--batch-size is baseline.batchSize); YAML keys are the\n" +
    "pipeline's (baseline: { batchSize: 64 }), as `deno task reproduce --config` reads them.\n" +
    "The run folder is locked while a run uses it (<out>/.lock); a lock left by a dead process on\n" +
    "this host is removed with a message. A refused run writes nothing.",
  examples: [
    "--model resnet18 --width 0.25 --epochs 30 --train-per-class 500 --out runs/r18",
    "--config configs/train/cpu-small.yaml --epochs 1 --no-augment",
    "--out runs/r18 --resume",
  ],
};

/** Rejects the old train config's flat keys, naming the new key of each. */
function checkOldKeys(file: string, values: Readonly<Record<string, unknown>>): void {
  const found = Object.entries(values).flatMap(([key, value]) => {
    const old = camel(key);
    if (!Object.hasOwn(OLD_TRAIN_KEYS, old)) return []; // a pipeline key (or an unknown one)
    const section = typeof value === "object" && value !== null && !Array.isArray(value);
    if (key === "model" && section) return []; // the pipeline's model: { arch, width }
    return [`\`${key}\` ${OLD_TRAIN_KEYS[old]}`];
  });
  if (found.length > 0) {
    throw new UsageError(
      `${file}: keys of the old train config: ${found.join("; ")}. Train reads the pipeline ` +
        "config (docs/method.md's config reference), as `deno task reproduce --config` does",
    );
  }
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new UsageError(`--config ${file}: cannot read it (${(e as Error).message})`);
  }
  try {
    return parseConfigYaml(text, file);
  } catch (e) {
    throw new UsageError(`--config ${file}: ${(e as Error).message}`);
  }
}

/**
 * The pipeline config of a `deno task train` command line: defaults <- `--config` <- the flags
 * <- `--set`, validated once.
 *
 * @param args Command-line arguments (`--help` is not expected).
 * @returns The validated, frozen config.
 * @throws {UsageError} On a bad flag, an old train key (naming the new key), an unreadable
 *   file, or a value the pipeline config refuses (naming the key and the flag that set it).
 */
export async function trainConfig(args: readonly string[]): Promise<PipelineConfig> {
  const parsed = parseCli(TRAIN_CLI, args);
  return await configOf(parsed.values, parsed.given);
}

async function configOf(
  values: Readonly<Record<string, FlagValue>>,
  given: ReadonlySet<string>,
): Promise<PipelineConfig> {
  const patches: unknown[] = [];
  if (typeof values.config === "string") {
    const file = await readConfigFile(values.config);
    checkOldKeys(values.config, file);
    patches.push(file);
  }
  const fromFlags = Object.entries(TRAIN_KEY_FLAGS).filter(([name]) => given.has(name));
  for (const [name, flag] of fromFlags) patches.push(patchOf(flag.key, values[name]));
  try {
    patches.push(parseOverrides(values.set as string[]));
    return mergeConfig(DEFAULT_CONFIG, ...patches);
  } catch (e) {
    const message = (e as Error).message;
    const culprit = fromFlags.find(([, flag]) => message.includes(`"${flag.key}"`));
    const prefix = culprit ? `--${culprit[0]} ${JSON.stringify(values[culprit[0]])}: ` : "";
    throw new UsageError(`${prefix}${message}; see docs/method.md's config reference`);
  }
}

/** What {@linkcode runTrain} returns. */
export interface TrainSummary {
  /** The resolved pipeline config. */
  readonly config: PipelineConfig;
  /** The run folder. */
  readonly out: string;
  /** The backend that ran. */
  readonly backend: string;
  /** Why that backend (and any ignored setting). */
  readonly backendReason: string;
  /** Epoch records of the baseline's training. */
  readonly history: readonly EpochRecord[];
  /** Final test accuracy of the baseline, or null. */
  readonly testAccuracy: number | null;
  /** Training images per epoch. */
  readonly trainImages: number;
  /** Test images. */
  readonly testImages: number;
  /** Whether this call trained (false: the folder held the finished baseline already). */
  readonly ran: boolean;
}

/**
 * A file `train` writes into the run folder besides the baseline phase's and `config.json`
 * (written only when it changes, so a run's own config.json may be its `--config`).
 */
const PLOT_FILE = "test_accuracy.svg";

/** Where a folder's run stands: a finished baseline, epoch checkpoints, an old train run. */
interface FolderState {
  readonly finished: boolean;
  readonly checkpoints: number;
  readonly oldTrainCheckpoints: number;
}

async function folderState(out: string, phase: Phase): Promise<FolderState> {
  return {
    finished: (await readPhaseOutput(out, phase)) !== undefined,
    checkpoints: (await listCheckpoints(`${out}/${phase.output}/train`)).length,
    oldTrainCheckpoints: (await listCheckpoints(`${out}/checkpoints`)).length,
  };
}

/** The fingerprint the runner stores with the phase's checkpoints and output. */
async function fingerprintOf(phase: Phase, config: PipelineConfig): Promise<unknown> {
  return phaseFingerprint(phase, config, await givenCheckpointDigest(phase));
}

/** The config keys behind a fingerprint path (`phase.train.lr` is `baseline.lr`). */
function keyOf(path: string): string {
  if (path.startsWith("phase.train.")) return `baseline.${path.slice("phase.train.".length)}`;
  if (path.startsWith("phase.spec")) return "the model (model.arch, model.width, data.dataset)";
  if (path.startsWith("phase.checkpoint")) return "baseline.checkpoint";
  return path;
}

/** Differences between a saved and a wanted fingerprint, as `key: saved X, now Y`. */
function differences(saved: unknown, now: unknown, path = ""): string[] {
  const isMap = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isMap(saved) && isMap(now)) {
    const a = saved as Record<string, unknown>;
    const b = now as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const found = keys.flatMap((k) => differences(a[k], b[k], path ? `${path}.${k}` : k));
    return [...new Set(found)];
  }
  if (JSON.stringify(saved) === JSON.stringify(now)) return [];
  const key = keyOf(path);
  return [key.startsWith("the model") ? key : `${key}: saved ${saved}, now ${now}`];
}

/** The saved fingerprint of the run to resume (its output's, or its newest checkpoint's). */
async function savedFingerprint(out: string, phase: Phase): Promise<unknown> {
  const output = await readPhaseOutput(out, phase);
  if (output !== undefined) return output.fingerprint;
  const path = await latestCheckpoint(`${out}/${phase.output}/train`);
  if (path === undefined) return undefined;
  const { inputs: _, ...saved } = (await readCheckpoint(path)).sidecar.config as Record<
    string,
    unknown
  >;
  return saved;
}

/**
 * Refuses, before anything is loaded or written, a run that would damage what `out` holds: a
 * fresh run over a folder that holds a run, `--resume` with nothing to resume or with another
 * config, a folder of the old train layout, and an output file that is one of the inputs.
 */
async function checkRunFolder(
  out: string,
  config: PipelineConfig,
  resume: boolean,
  inputs: readonly string[],
): Promise<void> {
  const phase = planBaseline(config);
  await assertNotInput(`${out}/${PLOT_FILE}`, inputs);
  const state = await folderState(out, phase);
  if (state.oldTrainCheckpoints > 0) {
    throw new UsageError(
      `${out} holds a run of the old \`deno task train\` (${out}/checkpoints), which this ` +
        "version cannot resume: its checkpoints still load (`deno task export`); start the " +
        "run again in another --out",
    );
  }
  const holds = state.finished ? "its finished baseline" : `${state.checkpoints} checkpoint(s)`;
  if (!resume) {
    if (!state.finished && state.checkpoints === 0) return;
    throw new Error(
      `${out} already holds a training run (${holds}): pass --resume to continue it, or ` +
        "choose another --out. Nothing was written.",
    );
  }
  const saved = await savedFingerprint(out, phase);
  if (saved === undefined) {
    throw new Error(
      `Cannot resume: ${out}/${phase.output}/train holds no complete checkpoint. Drop --resume ` +
        "to start a fresh run, or pass the --out of the run to continue.",
    );
  }
  const changed = differences(saved, await fingerprintOf(phase, config));
  if (changed.length > 0) {
    throw new UsageError(
      `Cannot resume ${out}: its config differs (${changed.join("; ")}). A run keeps its ` +
        `config: resume with the saved one (--config ${out}/config.json), or choose another --out`,
    );
  }
}

async function loadData(
  config: PipelineConfig,
  dataDir: string | undefined,
): Promise<PipelineData> {
  const where = dataDir?.endsWith(".tar.gz")
    ? { archive: dataDir }
    : { dir: dataDir ?? Deno.env.get("MFI_DATA_DIR") };
  try {
    return await loadPipelineData(config.data, {
      ...where,
      onFallback: (m) => console.log(`data: not from ${m.split("\n")[0]}`),
    });
  } catch (e) {
    if (e instanceof DataCheckError) throw new UsageError(e.message);
    throw e;
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

/** Writes a text file unless it already holds exactly `text` (so an input may be re-read). */
async function writeIfChanged(path: string, text: string, inputs: readonly string[]) {
  const now = await Deno.readTextFile(path).catch(() => undefined);
  if (now === text) return;
  await assertNotInput(path, inputs);
  await writeTextFileAtomic(path, text, { inputs });
}

async function writePlot(out: string, config: PipelineConfig, history: readonly EpochRecord[]) {
  const series = (key: "testAccuracy" | "trainAccuracy") =>
    history.filter((r) => r[key] !== null).map((r) => [r.epoch, 100 * r[key]!] as const);
  const test = series("testAccuracy");
  const train = series("trainAccuracy");
  if (test.length + train.length === 0) return;
  await writeTextFileAtomic(
    `${out}/${PLOT_FILE}`,
    linePlotSvg([
      { name: "test top-1 (%)", points: test },
      { name: "train top-1 (%)", points: train },
    ], {
      title: `${config.model.arch} x${config.model.width} on ${config.data.dataset}`,
      xLabel: "epoch",
      yLabel: "accuracy (%)",
    }),
  );
}

/** Locks `out` (created if needed) for `run`; a refused run leaves no empty folder behind. */
async function withRunFolder<T>(
  out: string,
  command: string,
  run: (started: () => void) => Promise<T>,
): Promise<T> {
  const created = !(await exists(out));
  await Deno.mkdir(out, { recursive: true });
  let started = false;
  const cleanUp = async () => {
    if (!started && created) await Deno.remove(out, { recursive: true }).catch(() => {});
  };
  const lock = await acquireRunLock(out, {
    command,
    onStale: (m) => console.warn(`train: ${m}`),
  }).catch(async (e) => {
    await cleanUp();
    throw e;
  });
  try {
    return await run(() => started = true);
  } finally {
    await lock.release();
    await cleanUp();
  }
}

/**
 * Runs `deno task train` with the given arguments: the pipeline's baseline phase in `--out`.
 *
 * @param args Command-line arguments.
 * @returns The run summary, or undefined after `--help`.
 * @throws {UsageError} On invalid options (old train keys name the new key) or a resume with
 *   another config.
 * @throws {Error} On missing data, a NaN loss, or a folder that holds another run.
 */
export async function runTrain(args: readonly string[]): Promise<TrainSummary | undefined> {
  const parsed = parseCli(TRAIN_CLI, args);
  if (parsed.help) {
    console.log(helpText(TRAIN_CLI));
    return undefined;
  }
  const { values } = parsed;
  const config = await configOf(values, parsed.given);
  const out = values.out as string;
  const resume = values.resume === true;
  const dataDir = values["data-dir"] as string | undefined;
  const inputs = [values.config, dataDir].filter((p): p is string => typeof p === "string");
  await checkRunFolder(out, config, resume, inputs);
  const backend = await selectBackend(backendOptions(values));
  console.log(`backend: ${backend.name} (${backend.reason})`);
  const data = await loadData(config, dataDir);
  console.log(
    `data: ${data.source.description}: ${data.train.count} training / ${data.test.count} test ` +
      "images",
  );
  return await withRunFolder(out, ["deno task train", ...args].join(" "), async (started) => {
    await checkRunFolder(out, config, resume, inputs); // again, now that the folder is ours
    await writeIfChanged(`${out}/config.json`, JSON.stringify(config, null, 2) + "\n", inputs);
    started();
    const outcome = await runPipeline(config, {
      runDir: out,
      data,
      plan: [planBaseline(config)],
      progress: {},
    });
    const result = outcome.results.baseline;
    await writePlot(out, config, result.history);
    return {
      config,
      out,
      backend: backend.name,
      backendReason: backend.reason,
      history: result.history,
      testAccuracy: result.testAccuracy,
      trainImages: data.train.count,
      testImages: data.test.count,
      ran: outcome.ran.includes("baseline"),
    };
  });
}

if (import.meta.main) {
  try {
    const summary = await runTrain(Deno.args);
    if (summary) {
      console.log(JSON.stringify({
        out: summary.out,
        epochs: summary.history.length,
        testAccuracy: summary.testAccuracy,
        backend: summary.backend,
      }));
      console.log(
        `continue the pipeline from this baseline: deno task reproduce --config ` +
          `${summary.out}/config.json --out ${summary.out}`,
      );
    }
  } catch (e) {
    const advice = e instanceof NonFiniteLossError
      ? "Run it again with a lower --lr (e.g. half) and another --out: a run keeps its config."
      : "";
    Deno.exit(reportError("train", advice ? new Error(`${(e as Error).message} ${advice}`) : e));
  }
}
