/**
 * Training benchmark: the machine's WASM SIMD roof (GFLOP/s of pure 128-bit multiply-adds), the
 * GFLOP/s of a 3x3 convolution's forward pass and both gradients, and the training and inference
 * throughput (images/s, and the GFLOP/s that makes) of the CIFAR ResNet-18 and ResNet-50 layouts at
 * width 0.25 (16-32-64-128 stage widths), with the peak wasm heap on WASM. Every GFLOP/s figure is
 * also printed as a percentage of the roof on the same number of threads. On WASM the own kernels'
 * and training steps' rows are also printed as a percentage of the tile loop (the kernels' register
 * tile with its loads alone), measured in the same process right before and after each: how close
 * they come to what loads and the runtime's bounds checks allow on the machine at hand. Each
 * measurement runs in its own process, so each peak heap is its own.
 *
 * Usage: `deno task bench [--quick] [--tiny] [--json] [--threads LIST] [--rounds N]
 * [--profile [--profile-model resnet18|resnet50]] [--torch [--python P]]
 * [--backend wasm|webgpu|cpu] [--allow-software-adapter] [--v8-flags=FLAGS]`. LIST is a
 * comma-separated list of WASM thread counts (default `1,<all cores>`): every WASM measurement runs
 * once per thread count.
 * `--rounds N` repeats all of it N times, the thread counts alternating within each round, and
 * prints each row's median and range and each model's scaling per round: on a machine whose speed
 * drifts (a shared host) that is the figure to compare (PyTorch, with `--torch`, runs once).
 * Ratios that matter are also measured inside one process, the two sides alternating: on more than
 * one thread count each model's training step on one thread against the pool (the most threads),
 * and on WASM the 1x1 convolutions against the 3x3 ones per flop, each kind (on the fewest).
 * `--profile` prints instead where one ResNet-18 x0.25 training step (batch 64; with
 * `--profile-model resnet50` one ResNet-50 x0.25 step, batch 32) spends its time, per kernel
 * (and, on more than one thread, how many synchronisations of the own-kernel worker pool it makes),
 * with the convolution kernels `--forward-kernel`, `--input-kernel` and
 * `--filter-kernel` choose (`own`, the library's default, or `xnnpack`). On WASM the table
 * measures the library's default (our own convolution kernels) and, in rows marked "XNNPACK",
 * the same with tfjs-backend-wasm's XNNPACK-based convolutions. `--torch` runs the same measurements in PyTorch (`tasks/bench_torch.py`, with
 * `torch.set_num_threads`) in the same run and prints the ratio; without PyTorch it says so.
 * `--backend webgpu` runs the same table on WebGPU (timed to the end of the device's work: each
 * timed block ends with an awaited read); on a software adapter (testing only) the table says that
 * its numbers mean nothing. `--tiny` runs the same rows at the smallest shapes (batch 2, one timed
 * repetition): it checks that every measurement runs (e.g. WebGPU on a software adapter, where the
 * standard shapes take hours), and its figures compare with nothing. `--v8-flags` (a diagnosis)
 * starts the measuring processes with V8 flags, e.g. `--no-wasm-bounds-checks`: Deno does not
 * install V8's WebAssembly trap handler, so every load and store of a WASM kernel carries an
 * explicit bounds check (a compare and a branch, often an address add), and the flag shows what
 * they cost on the machine at hand; the table says that it ran so.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  backendLabel,
  type BackendName,
  type KernelProfileRow,
  measureOwnKernelScaling,
  measureSimdRoof,
  type OwnKernelPoolStats,
  ownKernelPoolStats,
  profileKernels,
  registerWasmTrainingKernels,
  selectBackend,
  Sgd,
  softmaxCrossEntropy,
  summarizeKernelProfile,
  wasmHeapBytes,
  type WasmKernelChoice,
  type WasmKernelChoices,
  type WasmTrainingKernelOptions,
  withWasmHeapContext,
} from "@mfi/core";
import { buildResNet } from "@mfi/resnet";
import { BACKEND_FLAGS, type CliSpec, runCli, UsageError } from "./_cli.ts";
import { DEFAULT_PYTHON, runTorchBench, type TorchReport } from "./_torch_bench.ts";
import {
  combineRounds,
  type InProcessScaling,
  joinInProcessScaling,
  joinPointwise,
  median,
  type PointwiseComparison,
  type RoundScaling,
  scalingByRound,
} from "./_bench_rounds.ts";
import { alternate } from "./_bench_alternate.ts";

/** The models `--profile` can step, and their batch sizes. */
const PROFILE_BATCH = { resnet18: 64, resnet50: 32 } as const;
type ProfileModel = keyof typeof PROFILE_BATCH;

/** "ResNet-18 x0.25" for "resnet18". */
const modelTitle = (arch: ProfileModel): string => `ResNet-${arch.slice("resnet".length)} x0.25`;

/** Measurements a child process runs (`--only`). */
const MEASUREMENTS = [
  "roof",
  "conv",
  "resnet18",
  "resnet50",
  "scaling",
  "pointwise",
  "profile",
] as const;
type Measurement = typeof MEASUREMENTS[number];

/** `deno task bench`'s command line. */
export const BENCH_CLI: CliSpec = {
  name: "bench",
  summary:
    "WASM training benchmark: the SIMD roof, conv GFLOP/s (forward and both gradients) and " +
    "ResNet-18/50 training images/s and peak heap, as % of the roof (and of the kernels' tile " +
    "loop measured in the same process); one process per measurement " +
    "and thread count, and inside one process the scaling over threads and 1x1 against 3x3 " +
    "convolutions per flop; --profile: time per " +
    "kernel of a training step; --torch: PyTorch alongside",
  flags: {
    quick: { type: "boolean", default: false, doc: "fewer repetitions (a rough figure)" },
    tiny: {
      type: "boolean",
      default: false,
      doc: "same rows at the smallest shapes (batch 2), one repetition: checks that the table runs",
    },
    json: { type: "boolean", default: false, doc: "print JSON instead of a table" },
    threads: {
      type: "string",
      placeholder: "LIST",
      defaultText: "1,<all cores>",
      example: "1,2",
      doc: "comma-separated WASM thread counts; every measurement runs once per count",
    },
    rounds: {
      type: "string",
      placeholder: "N",
      defaultText: "1",
      example: "3",
      doc: "repeat every measurement N times, thread counts alternating; medians, ranges and " +
        "scaling per round (for a machine whose speed drifts)",
    },
    profile: {
      type: "boolean",
      default: false,
      doc: "print the time per kernel of one training step instead (ResNet-18 x0.25, batch 64; " +
        "see --profile-model)",
    },
    "profile-model": {
      type: "string",
      choices: ["resnet18", "resnet50"],
      defaultText: "resnet18",
      doc: "the model --profile steps: resnet18 (ResNet-18 x0.25, batch 64) or resnet50 " +
        "(ResNet-50 x0.25, batch 32)",
    },
    torch: {
      type: "boolean",
      default: false,
      doc: "also run the measurements in PyTorch (tasks/bench_torch.py) and print the ratio",
    },
    "filter-kernel": {
      type: "string",
      choices: ["own", "xnnpack"],
      default: "own",
      doc: "Conv2DBackpropFilter for --profile: our own WASM SIMD kernel or XNNPACK-based",
    },
    "forward-kernel": {
      type: "string",
      choices: ["own", "xnnpack"],
      default: "own",
      doc: "Conv2D for --profile: our own WASM SIMD kernel or XNNPACK (tfjs's)",
    },
    "input-kernel": {
      type: "string",
      choices: ["own", "xnnpack"],
      default: "own",
      doc: "Conv2DBackpropInput for --profile: our own WASM SIMD kernel or XNNPACK-based",
    },
    python: {
      type: "string",
      placeholder: "PATH",
      default: DEFAULT_PYTHON,
      example: "/usr/bin/python3",
      doc: "the Python interpreter for --torch (Debian's, where python3-torch installs)",
    },
    only: {
      type: "string",
      choices: [...MEASUREMENTS],
      doc: "run one measurement in this process (what the parent runs in each child)",
    },
    backend: { ...BACKEND_FLAGS.backend, defaultText: "wasm" },
    "allow-software-adapter": BACKEND_FLAGS["allow-software-adapter"],
    "v8-flags": {
      type: "string",
      placeholder: "FLAGS",
      example: "--no-wasm-bounds-checks",
      doc: "diagnosis only: V8 flags for the measuring processes, comma-separated as for " +
        "Deno's --v8-flags and given after = (they start with -); --no-wasm-bounds-checks drops " +
        "the bounds checks Deno's V8 puts on every WebAssembly memory access, to see what they " +
        "cost (unsafe: never train that way); the table names the flags",
    },
  },
  examples: [
    "--quick",
    "--threads 1,2 --json",
    "--threads 1,2 --rounds 3",
    "--profile --threads 1,2",
    "--profile --profile-model resnet50",
    "--profile --forward-kernel xnnpack --input-kernel xnnpack --filter-kernel xnnpack",
    "--torch",
    "--backend webgpu --allow-software-adapter --tiny",
    "--threads 1 --v8-flags=--no-wasm-bounds-checks",
  ],
};

/** One row of the result table. */
interface Row {
  readonly name: string;
  readonly value: number;
  /** The same rate per CPU-second of this process: less sensitive to a loaded machine. */
  readonly perCpu?: number;
  readonly unit: string;
  /** Achieved GFLOP/s (for images/s rows: images/s x flops per image). */
  readonly gflops?: number;
  /** WASM threads of the run (set by the parent process). */
  readonly threads?: number;
  readonly heapMiB?: number;
  /** `gflops` as a percentage of the roof on the same thread count (set by the parent). */
  readonly roofPercent?: number;
  /**
   * `gflops` as a percentage of the tile loop's rate measured in the same process on the same
   * threads, right before and right after this row (their mean; see {@linkcode TileBrackets}).
   */
  readonly tilePercent?: number;
  /** PyTorch's figure for the same row and thread count (set by the parent). */
  readonly torch?: number;
  /** `--rounds`: each round's wall-clock rate (`value` is their median). */
  readonly values?: readonly number[];
  /** `--rounds`: the smallest and largest of `values`. */
  readonly range?: readonly [number, number];
}

/** What a child process reports: its rows and the backend they ran on. */
interface ChildReport {
  readonly backend: string;
  readonly softwareAdapter: boolean;
  readonly rows: Row[];
  /** `--only profile`: per-step rows by kernel name and by convolution geometry. */
  readonly profile?: {
    /** The model stepped, and its batch size. */
    readonly arch: ProfileModel;
    readonly batch: number;
    readonly stepMs: number;
    readonly stepFlops: number;
    readonly byName: KernelProfileRow[];
    readonly byConv: KernelProfileRow[];
    /** The tile loop's rate in the profiling process, before and after the steps (WASM only). */
    readonly tileGflops?: number;
    /** The own-kernel pool's synchronisations per step (threaded wasm only). */
    readonly pool?: OwnKernelPoolStats;
  };
  /** `--only scaling`: each model's two-thread scaling measured inside the process. */
  readonly scaling?: InProcessScaling[];
  /** `--only pointwise`: 1x1 against 3x3 per flop, each convolution kind, inside the process. */
  readonly pointwise?: PointwiseComparison[];
}

/** Printed with every table measured at the `--tiny` shapes. */
const TINY_NOTE = "TINY shapes (--tiny: conv 2x8x8x16, batch 2, one timed repetition): this run " +
  "checks that every measurement runs; its figures compare with nothing.";

/** Printed with every table measured on a software adapter. */
const SOFTWARE_NOTE = "SOFTWARE ADAPTER (--allow-software-adapter): these numbers mean nothing; " +
  "they test that the benchmark runs on WebGPU. Run on a GPU machine for real figures.";

/** Printed with every table whose processes ran with `--v8-flags`. */
const v8FlagsNote = (flags: string): string =>
  `V8 FLAGS (--v8-flags, a diagnosis): the measuring processes ran with ${flags}; ` +
  "the library never runs that way.";

/** Every convolution on XNNPACK (the rows marked "XNNPACK"). */
const ALL_XNNPACK: WasmTrainingKernelOptions = {
  conv2d: "xnnpack",
  conv2dBackpropInput: "xnnpack",
  conv2dBackpropFilter: "xnnpack",
};

/** Every convolution on our own kernels (the library's default, and what each measurement starts from). */
const ALL_OWN: WasmTrainingKernelOptions = {
  conv2d: "own",
  conv2dBackpropInput: "own",
  conv2dBackpropFilter: "own",
};

/** The roof row's name. */
const ROOF = "WASM SIMD roof";
/** The tile loop's row: the kernels' 6 x 8 register tile with its loads (`simd_tile.ts`). */
const TILE_LOOP = "WASM SIMD tile loop (8 loads per 12 multiply-adds)";

/** Most rounds `--rounds` takes. */
const MAX_ROUNDS = 20;

function parse(values: Readonly<Record<string, unknown>>) {
  const backend = (values.backend as BackendName | undefined) ?? "wasm";
  const cores = navigator.hardwareConcurrency || 1;
  const list = (values.threads as string | undefined) ?? (cores > 1 ? `1,${cores}` : "1");
  const threads = list.split(",").map((t) => Number(t.trim()));
  if (threads.length === 0 || threads.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new UsageError(
      `--threads must be a comma-separated list of whole numbers >= 1 (e.g. 1,2); got ${list}`,
    );
  }
  if (values["allow-software-adapter"] === true && backend !== "webgpu") {
    throw new UsageError(
      `--allow-software-adapter only applies with --backend webgpu (the backend is ${backend}); ` +
        `add --backend webgpu to test WebGPU on a software adapter, or drop it`,
    );
  }
  const roundsText = (values.rounds as string | undefined) ?? "1";
  const rounds = Number(roundsText);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_ROUNDS) {
    throw new UsageError(
      `--rounds must be a whole number from 1 to ${MAX_ROUNDS}; got ${roundsText}`,
    );
  }
  if (rounds > 1 && values.profile === true) {
    throw new UsageError("--rounds repeats the table's measurements; --profile runs once");
  }
  const profileModel = values["profile-model"] as ProfileModel | undefined;
  if (profileModel !== undefined && values.profile !== true && values.only !== "profile") {
    throw new UsageError(
      `--profile-model only applies with --profile; add --profile to profile a ${profileModel} ` +
        "training step, or drop it",
    );
  }
  if (values.profile === true && values.torch === true) {
    throw new UsageError("--profile and --torch do not go together; run them one after the other");
  }
  const v8Flags = parseV8Flags(values["v8-flags"] as string | undefined);
  if (v8Flags !== undefined && values.only !== undefined) {
    throw new UsageError(
      "--v8-flags is for the processes the bench starts; with --only this process measures: " +
        "give the flags to deno itself (deno run --v8-flags=... tasks/bench.ts --only ...)",
    );
  }
  return {
    quick: values.quick as boolean,
    tiny: values.tiny === true,
    json: values.json as boolean,
    // Thread counts only mean something on WASM.
    threads: backend === "wasm" ? threads : [1],
    only: values.only as Measurement | undefined,
    profile: values.profile === true,
    profileModel: profileModel ?? "resnet18",
    rounds,
    torch: values.torch === true,
    python: (values.python as string | undefined) ?? DEFAULT_PYTHON,
    kernels: {
      conv2d: (values["forward-kernel"] as WasmKernelChoice | undefined) ?? "own",
      conv2dBackpropInput: (values["input-kernel"] as WasmKernelChoice | undefined) ?? "own",
      conv2dBackpropFilter: (values["filter-kernel"] as WasmKernelChoice | undefined) ?? "own",
    } as WasmKernelChoices,
    backend,
    allowSoftwareAdapter: values["allow-software-adapter"] === true,
    v8Flags,
  };
}

/**
 * `--v8-flags`: a comma-separated list of V8 flags, each `--name` or `--name=value` (letters,
 * digits, `-` and `_` in the name; no spaces), or undefined when absent.
 */
function parseV8Flags(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const flags = text.split(",").map((f) => f.trim());
  const bad = flags.find((f) => !/^--[a-z0-9][a-z0-9_-]*(=[^\s,]+)?$/i.test(f));
  if (bad !== undefined) {
    throw new UsageError(
      `--v8-flags takes comma-separated V8 flags such as --no-wasm-bounds-checks; ` +
        `got ${JSON.stringify(bad)}`,
    );
  }
  return flags.join(",");
}

/** CPU seconds (user + system) this process has used, from /proc (NaN where unavailable). */
function cpuSeconds(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
  } catch {
    return NaN;
  }
}

/**
 * Wall and CPU seconds of `repeats` calls of `fn`, after `warmup` calls; then `settle` (an awaited
 * read that waits for an asynchronous device's queued work) inside the timed block.
 */
async function measure(
  fn: () => void | Promise<void>,
  repeats: number,
  settle: () => Promise<void> = () => Promise.resolve(),
  warmup = 2,
): Promise<{ wall: number; cpu: number }> {
  for (let i = 0; i < warmup; i++) await fn();
  await settle();
  const c0 = cpuSeconds();
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  await settle();
  return { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds() - c0 };
}

/**
 * Keeps a scalar that depends on the latest result, so that an awaited read of it waits for all
 * the work queued before (WebGPU runs its queue in order); nothing to do on synchronous backends.
 */
class Settler {
  #last: tf.Tensor | undefined;
  constructor(readonly asynchronous: boolean) {}
  /** Takes a result: keeps a scalar of it when asynchronous, and disposes the result. */
  take(t: tf.Tensor): void {
    if (this.asynchronous) {
      const next = tf.tidy(() => tf.sum(t));
      this.#last?.dispose();
      this.#last = next;
    }
    t.dispose();
  }
  /** Waits for the device. */
  settle = async (): Promise<void> => {
    if (this.#last === undefined) return;
    await this.#last.data();
    this.#last.dispose();
    this.#last = undefined;
  };
}

/**
 * The tile loop measured in the measuring process itself, between the rows it is the yardstick
 * of: `begin()` measures it, then `end(row)` measures it again and gives the row its rate over
 * the mean of the two measurements (`tilePercent`), the second measurement opening the next
 * row's bracket. Measured seconds apart on the same threads, the ratio says how close a kernel
 * comes to what its 8 loads per 12 multiply-adds allow on this machine, whatever phase the host
 * is in; the figures of separate processes (the roof's and tile loop's rows) drift apart on a
 * noisy host. `undefined` (no tile loop) off WASM: every call leaves the rows as they are.
 */
class TileBrackets {
  #last: number | undefined;
  constructor(readonly measureTile: (() => Promise<number>) | undefined) {}
  /** Measures the tile loop: the start of the next row's bracket. */
  async begin(): Promise<void> {
    this.#last = await this.measureTile?.();
  }
  /**
   * Measures the tile loop again: the mean of this and the bracket's first measurement (GFLOP/s),
   * or undefined off WASM.
   */
  async close(): Promise<number | undefined> {
    if (this.measureTile === undefined) return undefined;
    const before = this.#last ?? await this.measureTile();
    const after = await this.measureTile();
    this.#last = after;
    return (before + after) / 2;
  }
  /** Measures the tile loop again and returns `row` with its `tilePercent`. */
  async end(row: Row): Promise<Row> {
    if (row.gflops === undefined) return row;
    const tile = await this.close();
    return tile === undefined ? row : { ...row, tilePercent: (100 * row.gflops) / tile };
  }
}

/**
 * The tile loop's rate (GFLOP/s) on `threads` workers over one run of about half a second: a
 * sustained rate, like the rows it is compared with (a best of several runs would pick the
 * moments when a shared host gave every thread a whole core).
 */
function tileMeter(threads: number, quick: boolean, tiny: boolean): () => Promise<number> {
  const seconds = tiny ? 0.01 : quick ? 0.2 : 0.5;
  return async () => (await measureSimdRoof({ threads, seconds, repeats: 1, loop: "tile" })).gflops;
}

/** The conv rows' shape: batch, height and width, channels (in and out). */
const convShape = (tiny: boolean): readonly [number, number, number] =>
  tiny ? [2, 8, 16] : [64, 16, 128];

/** The three kinds of convolution the conv rows measure. */
const CONV_KINDS = ["forward", "backward-input", "backward-filter"] as const;
type ConvKind = typeof CONV_KINDS[number];

/**
 * The conv rows' seeded tensors at their shape, and each kind of convolution of them with a 1x1
 * or a 3x3 filter (stride 1; "same" padding, so the 3x3 pads by 1). `dispose` frees the tensors.
 */
function convSetup(tiny: boolean) {
  const [n, hw, c] = convShape(tiny);
  const x = tf.randomNormal([n, hw, hw, c], 0, 1, "float32", 1) as tf.Tensor4D;
  const dy = tf.randomNormal([n, hw, hw, c], 0, 1, "float32", 3) as tf.Tensor4D;
  const filters = {
    1: tf.randomNormal([1, 1, c, c], 0, 0.1, "float32", 5) as tf.Tensor4D,
    3: tf.randomNormal([3, 3, c, c], 0, 0.05, "float32", 2) as tf.Tensor4D,
  };
  const pad = (k: 1 | 3) => k === 3 ? "same" as const : "valid" as const;
  const conv: Record<ConvKind, (k: 1 | 3) => tf.Tensor> = {
    "forward": (k) => tf.conv2d(x, filters[k], 1, pad(k)),
    "backward-input": (k) => tf.conv2dTranspose(dy, filters[k], x.shape, 1, pad(k)),
    "backward-filter": (k) =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: [1, 1],
        pad: pad(k),
        dataFormat: "NHWC",
        filterShape: [k, k, c, c],
      }) as tf.Tensor,
  };
  /** Each kind with a k x k filter, as the conv rows name them ("conv3x3 forward"). */
  const rows = (k: 1 | 3): Record<string, () => tf.Tensor> =>
    Object.fromEntries(CONV_KINDS.map((kind) => [`conv${k}x${k} ${kind}`, () => conv[kind](k)]));
  return {
    n,
    hw,
    c,
    conv,
    rows,
    dispose: () => tf.dispose([x, dy, filters[1], filters[3]]),
  };
}

/**
 * The share of a k x k stride-1 convolution's filter taps (over all output pixels of an hw x hw
 * input with "same" zero padding) that fall in the padding: counted flops include them, the own
 * kernels skip them. Per dimension the taps in bounds are k * hw - p * (p + 1), p = (k - 1) / 2.
 */
function paddedTapShare(hw: number, k: number): number {
  const p = (k - 1) / 2;
  const inside = (k * hw - p * (p + 1)) / (k * hw);
  return 1 - inside * inside;
}

async function benchConv(
  quick: boolean,
  asynchronous: boolean,
  tiny: boolean,
  tiles: TileBrackets,
): Promise<Row[]> {
  const setup = convSetup(tiny);
  const { n, hw, c } = setup;
  const gflop = (2 * n * hw * hw * c * c * 9) / 1e9;
  const repeats = tiny ? 1 : quick ? 3 : 10;
  const warmup = tiny ? 1 : 2;
  const run = setup.rows(3);
  // The wasm backend computes synchronously: no read-back needed (and `tf.tidy(() =>
  // t.dataSync())` would walk the returned typed array element by element). WebGPU queues the
  // work: the timed block ends with an awaited read of a scalar of the last result.
  const settler = new Settler(asynchronous);
  const rows: Row[] = [];
  await tiles.begin();
  for (const [name, fn] of Object.entries(run)) {
    const { wall, cpu } = await measure(
      () => settler.take(tf.tidy(fn)),
      repeats,
      settler.settle,
      warmup,
    );
    rows.push(
      await tiles.end({
        name,
        value: (gflop * repeats) / wall,
        perCpu: (gflop * repeats) / cpu,
        unit: "GFLOP/s",
        gflops: (gflop * repeats) / wall,
      }),
    );
  }
  if (tf.getBackend() === "wasm") {
    // The same convolutions on XNNPACK (threaded like the backend), one at a time.
    const xnnpack: [string, WasmTrainingKernelOptions, () => tf.Tensor][] = [
      ["conv3x3 forward (XNNPACK)", { conv2d: "xnnpack" }, run["conv3x3 forward"]],
      [
        "conv3x3 backward-input (XNNPACK)",
        { conv2dBackpropInput: "xnnpack" },
        run["conv3x3 backward-input"],
      ],
      [
        "conv3x3 backward-filter (XNNPACK)",
        { conv2dBackpropFilter: "xnnpack" },
        run["conv3x3 backward-filter"],
      ],
    ];
    for (const [name, kernels, fn] of xnnpack) {
      registerWasmTrainingKernels(kernels);
      try {
        const { wall, cpu } = await measure(() => settler.take(tf.tidy(fn)), repeats);
        rows.push({
          name,
          value: (gflop * repeats) / wall,
          perCpu: (gflop * repeats) / cpu,
          unit: "GFLOP/s",
          gflops: (gflop * repeats) / wall,
        });
      } finally {
        registerWasmTrainingKernels(ALL_OWN);
      }
    }
  }
  // 1x1 convolutions (the bottleneck's) at the same size: per flop no slower than 3x3 is the aim.
  const gflop1 = gflop / 9;
  const run1 = setup.rows(1);
  const pointwise: [string, WasmTrainingKernelOptions | undefined, () => tf.Tensor][] = [
    ...Object.entries(run1).map(([name, fn]) =>
      [name, undefined, fn] as [string, undefined, () => tf.Tensor]
    ),
    ...(tf.getBackend() === "wasm"
      ? [
        ["conv1x1 forward (XNNPACK)", { conv2d: "xnnpack" }, run1["conv1x1 forward"]],
        [
          "conv1x1 backward-input (XNNPACK)",
          { conv2dBackpropInput: "xnnpack" },
          run1["conv1x1 backward-input"],
        ],
        [
          "conv1x1 backward-filter (XNNPACK)",
          { conv2dBackpropFilter: "xnnpack" },
          run1["conv1x1 backward-filter"],
        ],
      ] as [string, WasmTrainingKernelOptions, () => tf.Tensor][]
      : []),
  ];
  // The own rows come first: their brackets open here, after the XNNPACK 3x3 rows.
  await tiles.begin();
  for (const [name, kernels, fn] of pointwise) {
    if (kernels) registerWasmTrainingKernels(kernels);
    try {
      const { wall, cpu } = await measure(
        () => settler.take(tf.tidy(fn)),
        repeats * 3,
        settler.settle,
        warmup,
      );
      const row: Row = {
        name,
        value: (gflop1 * repeats * 3) / wall,
        perCpu: (gflop1 * repeats * 3) / cpu,
        unit: "GFLOP/s",
        gflops: (gflop1 * repeats * 3) / wall,
      };
      rows.push(kernels === undefined ? await tiles.end(row) : row);
    } finally {
      if (kernels) registerWasmTrainingKernels(ALL_OWN);
    }
  }
  setup.dispose();
  return rows;
}

/** A ResNet x0.25 with an SGD optimizer, a batch, and one training step that reads its loss. */
function trainingSetup(arch: "resnet18" | "resnet50", batch: number, onWasm: boolean) {
  const model = buildResNet({ arch, classes: 10, width: 0.25, seed: 7 });
  const trainable = model.namedVariables().filter(([, v]) => v.trainable);
  const opt = new Sgd(trainable, { momentum: 0.9 });
  const x = tf.randomNormal([batch, 32, 32, 3], 0, 1, "float32", 4);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), "int32");
  const what = { batchSize: batch, what: `${arch} training step` };
  const step = async () => {
    const compute = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => softmaxCrossEntropy(model.apply(x, { training: true }), labels),
          trainable.map(([, v]) => v),
        );
        opt.applyGradients(new Map(trainable.map(([name, v]) => [name, grads[v.name]])), 0.01);
        return value;
      });
    const value = onWasm ? withWasmHeapContext(what, compute) : compute();
    // The training loop reads each step's loss: so does the benchmark (awaited, as on WebGPU).
    try {
      const loss = (await value.data())[0];
      if (!Number.isFinite(loss)) throw new Error(`${arch}: loss is ${loss}`);
    } finally {
      value.dispose();
    }
  };
  // Inference: class probabilities of a batch, read back as a server would.
  const infer = async () => {
    const probabilities = tf.tidy(() => tf.softmax(model.apply(x, { training: false })));
    try {
      await probabilities.data();
    } finally {
      probabilities.dispose();
    }
  };
  const dispose = () => {
    tf.dispose([x, labels]);
    opt.dispose();
  };
  return { step, infer, dispose };
}

/** Flops of one call of `fn`, counted from the shapes of the kernels it runs. */
async function countFlops(fn: () => Promise<void>): Promise<number> {
  const { calls } = await profileKernels(tf.getBackend(), fn);
  return calls.reduce((a, c) => a + c.flops, 0);
}

async function benchModel(
  arch: "resnet18" | "resnet50",
  batch: number,
  quick: boolean,
  onWasm: boolean,
  tiny: boolean,
  tiles: TileBrackets,
): Promise<Row[]> {
  const { step, infer, dispose } = trainingSetup(arch, batch, onWasm);
  try {
    // One extra step (it also warms up) counts the flops: convolutions and matrix products.
    const stepFlops = await countFlops(step);
    const steps = tiny ? 1 : quick ? 3 : 8;
    await tiles.begin();
    const { wall, cpu } = await measure(step, steps, undefined, 1);
    const train: Row = {
      name: `${arch} train (batch ${batch})`,
      value: (steps * batch) / wall,
      perCpu: (steps * batch) / cpu,
      unit: "images/s",
      gflops: (steps * stepFlops) / wall / 1e9,
      ...(onWasm ? { heapMiB: wasmHeapBytes().heapBytes / 2 ** 20 } : {}),
    };
    const rows = [await tiles.end(train)];
    if (onWasm) {
      // The same training step with XNNPACK's convolutions (threaded like the backend).
      const variants: [string, WasmTrainingKernelOptions][] = [
        ["XNNPACK convolutions", ALL_XNNPACK],
      ];
      for (const [what, kernels] of variants) {
        registerWasmTrainingKernels(kernels);
        try {
          await step(); // warm-up
          const own = await measure(step, steps, undefined, 1);
          rows.push({
            ...train,
            name: `${arch} train (batch ${batch}, ${what})`,
            value: (steps * batch) / own.wall,
            perCpu: (steps * batch) / own.cpu,
            gflops: (steps * stepFlops) / own.wall / 1e9,
            heapMiB: wasmHeapBytes().heapBytes / 2 ** 20,
          });
        } finally {
          registerWasmTrainingKernels(ALL_OWN);
        }
      }
    }
    const inferFlops = await countFlops(infer);
    const batches = tiny ? 1 : quick ? 3 : 10;
    const inference = await measure(infer, batches, undefined, 1);
    return [...rows, {
      name: `${arch} inference (batch ${batch})`,
      value: (batches * batch) / inference.wall,
      perCpu: (batches * batch) / inference.cpu,
      unit: "images/s",
      gflops: (batches * inferFlops) / inference.wall / 1e9,
    }];
  } finally {
    dispose();
  }
}

/**
 * Each model's training step with the own kernels on the calling thread and on the pool,
 * alternating inside this process (`measureOwnKernelScaling`): a two-thread scaling that the
 * host's drift between processes does not blur.
 */
async function benchScaling(quick: boolean, tiny: boolean): Promise<InProcessScaling[]> {
  const out: InProcessScaling[] = [];
  const models: ["resnet18" | "resnet50", number][] = [
    ["resnet18", tiny ? 2 : 64],
    ["resnet50", tiny ? 2 : 32],
  ];
  for (const [arch, batch] of models) {
    const { step, dispose } = trainingSetup(arch, batch, true);
    try {
      await step(); // XNNPACK builds and caches its operators
      const s = await measureOwnKernelScaling(
        step,
        tiny ? { rounds: 1, steps: 1 } : quick ? { rounds: 3, steps: 2 } : { rounds: 8, steps: 4 },
      );
      out.push({
        name: `${arch} train (batch ${batch})`,
        threads: s.threads,
        oneThreadMs: s.rounds.map((r) => r.oneThreadMs),
        poolMs: s.rounds.map((r) => r.poolMs),
        ratios: s.rounds.map((r) => r.ratio),
      });
    } finally {
      dispose();
    }
  }
  return out;
}

/**
 * The 1x1 convolutions against the 3x3 ones per counted flop (the aim: a 1x1 no slower), at the
 * conv rows' shape: for each kind, one 3x3 call and nine 1x1 calls (the same counted flops)
 * alternating inside this process (`alternate`), their ratio taken per round. The conv rows
 * measure the two seconds apart, which a host whose speed drifts can put in different phases.
 */
async function benchPointwise(
  quick: boolean,
  tiny: boolean,
  threads: number,
): Promise<PointwiseComparison[]> {
  const setup = convSetup(tiny);
  const out: PointwiseComparison[] = [];
  try {
    for (const name of CONV_KINDS) {
      const call = (k: 1 | 3) => () => tf.tidy(() => setup.conv[name](k)).dispose();
      for (let i = 0; i < (tiny ? 1 : 2); i++) call(1)(), call(3)(); // warm-up
      const { aMs, bMs } = await alternate(call(1), call(3), {
        rounds: tiny ? 1 : quick ? 3 : 8,
        callsA: 9,
        callsB: 1,
      });
      // Nine 1x1 calls count the flops of one 3x3 call: the rate ratio is the time ratio.
      out.push({
        name,
        threads,
        ratios: aMs.map((a, r) => bMs[r] / (9 * a)),
        paddedShare: paddedTapShare(setup.hw, 3),
      });
    }
  } finally {
    setup.dispose();
  }
  return out;
}

async function benchRoof(threads: number, quick: boolean): Promise<Row[]> {
  const seconds = quick ? 0.1 : 0.3;
  const roof = await measureSimdRoof({ threads, seconds, repeats: 3 });
  // The kernels' register tile with its loads: its % of the roof is what loads and the runtime's
  // bounds checks leave of the roof on this machine.
  const tile = await measureSimdRoof({ threads, seconds, repeats: 3, loop: "tile" });
  // Best-of-repeats rates of busy threads: no per-CPU-second figure.
  return [{
    name: `${ROOF} (${roof.relaxed ? "f32x4.relaxed_madd" : "f32x4.mul + f32x4.add"})`,
    value: roof.gflops,
    unit: "GFLOP/s",
    gflops: roof.gflops,
  }, {
    name: TILE_LOOP,
    value: tile.gflops,
    unit: "GFLOP/s",
    gflops: tile.gflops,
  }];
}

/**
 * Where one training step of `arch` (ResNet-18 x0.25 at batch 64 or ResNet-50 x0.25 at batch 32)
 * spends its time, per kernel; on WASM with the tile loop's rate measured right before and after
 * the profiled steps.
 */
async function benchProfile(
  arch: ProfileModel,
  quick: boolean,
  onWasm: boolean,
  tiles: TileBrackets,
): Promise<ChildReport["profile"]> {
  const batch = PROFILE_BATCH[arch];
  const { step, dispose } = trainingSetup(arch, batch, onWasm);
  try {
    for (let i = 0; i < 2; i++) await step(); // XNNPACK builds and caches its operators
    const steps = quick ? 1 : 3;
    await tiles.begin();
    ownKernelPoolStats({ reset: true });
    const { calls, wallMs } = await profileKernels(tf.getBackend(), async () => {
      for (let i = 0; i < steps; i++) await step();
    });
    const pool = ownKernelPoolStats();
    const tileGflops = await tiles.close();
    const byName = summarizeKernelProfile(calls, wallMs, { steps });
    const convs = calls.filter((c) => c.label !== c.name && c.name.includes("Conv"));
    const byConv = summarizeKernelProfile(convs, wallMs, { steps, by: "label" }).slice(0, -1);
    return {
      arch,
      batch,
      stepMs: wallMs / steps,
      stepFlops: calls.reduce((a, c) => a + c.flops, 0) / steps,
      byName,
      byConv,
      ...(tileGflops === undefined ? {} : { tileGflops }),
      ...(pool === undefined ? {} : {
        pool: {
          threads: pool.threads,
          calls: pool.calls / steps,
          wakeups: pool.wakeups / steps,
          callerOnly: pool.callerOnly / steps,
          waitMs: pool.waitMs / steps,
          preemptions: pool.preemptions / steps,
        },
      }),
    };
  } finally {
    dispose();
  }
}

async function child(
  only: Measurement,
  quick: boolean,
  threads: number,
  backend: BackendName,
  allowSoftwareAdapter: boolean,
  kernels: WasmKernelChoices,
  tiny: boolean,
  profileModel: ProfileModel,
): Promise<ChildReport> {
  if (only === "roof") {
    return {
      backend: `WASM SIMD, ${threads} workers`,
      softwareAdapter: false,
      rows: await benchRoof(threads, quick),
    };
  }
  const choice = await selectBackend({
    backend,
    ...(backend === "wasm" ? { threads } : {}),
    ...(allowSoftwareAdapter ? { allowSoftwareAdapter } : {}),
  });
  const onWasm = choice.name === "wasm";
  if (onWasm) {
    if (!choice.simd) console.error("warning: the wasm backend runs without SIMD");
    // The table measures both kinds of conv kernels itself; --profile takes the chosen ones.
    registerWasmTrainingKernels(only === "profile" ? kernels : ALL_OWN);
  }
  const base = { backend: backendLabel(choice), softwareAdapter: choice.softwareAdapter === true };
  // On WASM the tile loop runs beside the kernels' and the training steps' rows, in this process.
  const tiles = new TileBrackets(onWasm ? tileMeter(threads, quick, tiny) : undefined);
  switch (only) {
    case "conv":
      return { ...base, rows: await benchConv(quick, choice.name === "webgpu", tiny, tiles) };
    case "resnet18":
      return {
        ...base,
        rows: await benchModel("resnet18", tiny ? 2 : 64, quick, onWasm, tiny, tiles),
      };
    case "resnet50":
      return {
        ...base,
        rows: await benchModel("resnet50", tiny ? 2 : 32, quick, onWasm, tiny, tiles),
      };
    case "profile":
      return {
        ...base,
        rows: [],
        profile: await benchProfile(profileModel, quick, onWasm, tiles),
      };
    case "scaling":
      if (!onWasm || threads < 2) {
        throw new UsageError("--only scaling needs the wasm backend and --threads 2 or more");
      }
      return { ...base, rows: [], scaling: await benchScaling(quick, tiny) };
    case "pointwise":
      if (!onWasm) {
        throw new UsageError(
          "--only pointwise needs the wasm backend: run it with --backend wasm (the default)",
        );
      }
      return { ...base, rows: [], pointwise: await benchPointwise(quick, tiny, threads) };
  }
}

/**
 * A figure for the table: "" when absent, "-" when not finite (a block too short for the CPU
 * clock's 10 ms ticks has an infinite rate per CPU-second, null through JSON), two significant
 * digits below 1 (the tiny shapes), else `digits` decimals.
 */
const fixed = (v: number | null | undefined, digits = 1): string =>
  v === undefined
    ? ""
    : typeof v !== "number" || !Number.isFinite(v)
    ? "-"
    : Math.abs(v) < 1 && v !== 0
    ? v.toPrecision(2)
    : v.toFixed(digits);

function table(
  rows: Row[],
  head: {
    load: string;
    backend: string;
    software: boolean;
    torch?: string;
    tiny?: boolean;
    v8Flags?: string;
    scaling?: readonly RoundScaling[];
  },
): string {
  const withTorch = rows.some((r) => r.torch !== undefined);
  const withTile = rows.some((r) => r.tilePercent !== undefined);
  const hw = convShape(head.tiny === true)[1];
  const padded = (size: number) => (100 * paddedTapShare(size, 3)).toFixed(1);
  const rounds = rows.find((r) => r.values !== undefined)?.values?.length;
  const lines = [
    ...(head.software ? [`**${SOFTWARE_NOTE}**`, ""] : []),
    ...(head.tiny ? [`**${TINY_NOTE}**`, ""] : []),
    ...(head.v8Flags === undefined ? [] : [`**${v8FlagsNote(head.v8Flags)}**`, ""]),
    `Backend: ${head.backend}; ${navigator.hardwareConcurrency} cores; load average at start: ${head.load}`,
    "",
    ...(rounds === undefined ? [] : [
      `${rounds} rounds, thread counts alternating within each: every figure is the median of ` +
      "the rounds; range = the smallest and largest wall-clock rate.",
      "",
    ]),
    "| measurement | threads | wall-clock rate |" + (rounds === undefined ? "" : " range |") +
    " per CPU-second | unit | GFLOP/s | % of roof |" + (withTile ? " % of tile loop |" : "") +
    " peak wasm heap |" + (withTorch ? " PyTorch | ours / PyTorch |" : ""),
    "| --- | ---: | ---: |" + (rounds === undefined ? "" : " ---: |") +
    " ---: | --- | ---: | ---: |" + (withTile ? " ---: |" : "") + " ---: |" +
    (withTorch ? " ---: | ---: |" : ""),
  ];
  for (const r of rows) {
    const heap = r.heapMiB === undefined ? "" : `${(r.heapMiB / 1024).toFixed(2)} GiB`;
    const torch = withTorch
      ? ` ${fixed(r.torch)} | ${
        r.torch === undefined ? "" : `${(r.value / r.torch).toFixed(2)}x`
      } |`
      : "";
    lines.push(
      `| ${r.name} | ${r.threads ?? ""} | ${fixed(r.value)} |` +
        (rounds === undefined
          ? ""
          : ` ${r.range === undefined ? "" : `${fixed(r.range[0])}-${fixed(r.range[1])}`} |`) +
        ` ${fixed(r.perCpu)} | ${r.unit} | ` +
        `${fixed(r.gflops)} | ${fixed(r.roofPercent, 0)} |` +
        (withTile ? ` ${fixed(r.tilePercent, 0)} |` : "") + ` ${heap} |${torch}`,
    );
  }
  lines.push(
    "",
    "GFLOP/s of a model row = images/s x the flops per image of its convolutions and matrix",
    "products (counted from the kernels' shapes; multiply and add counted apart, backward included",
    "for training). Convolution flops count every filter tap, those in the zero padding too (the",
    "count the PyTorch and XNNPACK figures use), but the own kernels skip the padded taps: at",
    `${hw} x ${hw} with padding 1 they are ${padded(hw)} % of the conv3x3 rows' counted flops, so`,
    "those rows' % of roof and % of tile loop are that much above what the kernels' multiply-adds",
    `used (a model's 3x3 layers: ${padded(32)} % at 32 x 32, ${padded(16)} % at 16 x 16, ` +
      `${padded(8)} % at 8 x 8, ${padded(4)} % at 4 x 4).`,
    "% of roof = GFLOP/s over the WASM SIMD roof measured on the same number of",
    "threads (each thread a worker running 12 independent f32x4 multiply-add chains). The tile",
    "loop is the inner loop of the kernels' 6 x 8 register tile alone (two vector loads and six",
    "broadcasts from memory per 12 multiply-adds, in L1): its % of roof is what loads and their",
    "bounds checks leave (Deno's V8 checks every WebAssembly access explicitly; CPUs whose",
    "multiply-add ports also run those compares and branches lose the most). % of tile loop =",
    "GFLOP/s over the tile loop's rate measured in the same process on the same threads, right",
    "before and right after the row (their mean, each one run of half a second): how close a",
    "kernel or a step comes to what the loads allow on this machine, whatever the host's phase",
    "(the roof's and tile loop's own rows are measured in other processes). Per",
    "CPU-second = the rate over this process's user+system CPU time, which a shared, loaded machine",
    "distorts less than wall-clock time (on WebGPU the device's time is not CPU time: read the",
    "wall-clock rate).",
    ...(head.torch ? ["", head.torch] : []),
    ...(head.scaling === undefined || head.scaling.length === 0 ? [] : [
      "",
      ...head.scaling.map((s) =>
        `${s.name}: ${s.to} threads over ${s.from}, per round: ` +
        s.ratios.map((x) => `${x.toFixed(2)}x`).join(", ") +
        ` (median ${median(s.ratios)!.toFixed(2)}x)`
      ),
    ]),
    ...(head.software ? ["", `**${SOFTWARE_NOTE}**`] : []),
  );
  return lines.join("\n");
}

/** The 1x1 against 3x3 table (see {@linkcode benchPointwise}). */
function pointwiseTable(pointwise: readonly PointwiseComparison[], tiny: boolean): string {
  const hw = convShape(tiny)[1];
  const share = (100 * pointwise[0].paddedShare).toFixed(1);
  const lines = [
    "1x1 against 3x3 inside one process (the aim: a 1x1 convolution no slower per flop): each",
    "kind at the conv rows' shape, nine 1x1 calls (the counted flops of one 3x3 call) and one 3x3",
    "call alternating, the order swapped every round; the ratio of their rates is taken per round,",
    "so the host's drift between the conv rows above, measured seconds apart, largely cancels.",
    `Per multiply-add run: over the 3x3's multiply-adds, without the padded taps the own kernels`,
    `skip (${share} % of its counted flops at ${hw} x ${hw}).`,
    "",
    `| convolution | threads | 1x1 over 3x3 per counted flop (median of rounds) | range | ` +
    "per multiply-add run | rounds |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const p of pointwise) {
    const m = median(p.ratios)!;
    lines.push(
      `| ${p.name} | ${p.threads} | ${m.toFixed(2)}x | ${Math.min(...p.ratios).toFixed(2)}-` +
        `${Math.max(...p.ratios).toFixed(2)}x | ${(m / (1 - p.paddedShare)).toFixed(2)}x | ` +
        `${p.ratios.length} |`,
    );
  }
  return lines.join("\n");
}

/** The in-process scaling table (see {@linkcode benchScaling}). */
function inProcessTable(scaling: readonly InProcessScaling[]): string {
  const threads = scaling[0].threads;
  const lines = [
    `Scaling inside one process: each training step with the own kernels on the calling thread,`,
    `then on the ${threads}-thread pool, alternating every few steps (the order swapped every round;`,
    `tfjs's own XNNPACK kernels, about 5 % of a step, on ${threads} threads in both). The ratio is`,
    "taken per round, seconds apart, so the host's drift between processes, which blurs the",
    "two-process figures above, largely cancels.",
    "",
    `| model | 1 thread, ms per step | ${threads} threads, ms per step | ${threads} threads ` +
    `over 1 (median of rounds) | range | rounds |`,
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of scaling) {
    lines.push(
      `| ${s.name} | ${fixed(median(s.oneThreadMs))} | ${fixed(median(s.poolMs))} | ` +
        `${median(s.ratios)!.toFixed(2)}x | ${Math.min(...s.ratios).toFixed(2)}-` +
        `${Math.max(...s.ratios).toFixed(2)}x | ${s.ratios.length} |`,
    );
  }
  return lines.join("\n");
}

function profileTable(
  threads: number,
  kernels: WasmKernelChoices,
  profile: NonNullable<ChildReport["profile"]>,
  roof: number | undefined,
): string {
  const pct = (g: number | undefined) =>
    g === undefined || roof === undefined ? "" : (100 * g / roof).toFixed(0);
  const tile = profile.tileGflops;
  const ofTile = (g: number | undefined) =>
    g === undefined || tile === undefined ? "" : (100 * g / tile).toFixed(0);
  const stepGflops = profile.stepFlops / profile.stepMs / 1e6;
  const tileText = tile === undefined
    ? ""
    : `; ${ofTile(stepGflops)} % of the tile loop's ${tile.toFixed(1)} GFLOP/s in the same ` +
      `process (${pct(tile)} % of the roof)`;
  const lines = [
    `### ${modelTitle(profile.arch)} training step (batch ${profile.batch}), ${threads} ` +
    `thread(s), ${kernels.conv2d} ` +
    `forward, ${kernels.conv2dBackpropInput} backward-input, ${kernels.conv2dBackpropFilter} ` +
    "backward-filter: " +
    `${profile.stepMs.toFixed(1)} ms, ${stepGflops.toFixed(1)} GFLOP/s` +
    (roof === undefined
      ? ""
      : ` (${pct(stepGflops)} % of the ${roof.toFixed(1)} GFLOP/s roof${tileText})`),
    "",
  ];
  const pool = profile.pool;
  if (pool !== undefined) {
    lines.push(
      `Own-kernel pool (${pool.threads} threads), per step: ${fixed(pool.calls, 0)} calls, ` +
        `${fixed(pool.wakeups, 0)} found a worker asleep, ${fixed(pool.callerOnly, 0)} ran on ` +
        `the calling thread alone, ${fixed(pool.waitMs, 2)} ms waiting for workers' shares.`,
      "",
    );
  }
  const rows = (title: string, rs: KernelProfileRow[]) => {
    lines.push(
      `| ${title} | count | ms | share | GFLOP/s | % of roof |` +
        (tile === undefined ? "" : " % of tile loop |"),
      "| --- | ---: | ---: | ---: | ---: | ---: |" + (tile === undefined ? "" : " ---: |"),
    );
    for (const r of rs) {
      lines.push(
        `| ${r.name} | ${r.count === 0 ? "" : fixed(r.count, 0)} | ${fixed(r.ms, 2)} | ` +
          `${(100 * r.share).toFixed(1)} % | ${fixed(r.gflops)} | ${pct(r.gflops)} |` +
          (tile === undefined ? "" : ` ${ofTile(r.gflops)} |`),
      );
    }
    lines.push("");
  };
  rows("kernel", profile.byName);
  rows("convolution (kernel, filter, channels, stride)", profile.byConv);
  return lines.join("\n");
}

/** Runs one measurement in a child process and returns its report. */
async function runChild(
  only: Measurement,
  threads: number,
  opts: ReturnType<typeof parse>,
): Promise<ChildReport> {
  const args = [
    "run",
    ...(opts.v8Flags === undefined ? [] : [`--v8-flags=${opts.v8Flags}`]),
    "-A",
    new URL(import.meta.url).pathname,
    "--only",
    only,
  ];
  if (opts.quick) args.push("--quick");
  if (opts.tiny) args.push("--tiny");
  args.push("--backend", opts.backend);
  if (opts.backend === "wasm") args.push("--threads", String(threads));
  if (opts.allowSoftwareAdapter) args.push("--allow-software-adapter");
  if (only === "profile") {
    args.push(
      "--forward-kernel",
      opts.kernels.conv2d,
      "--input-kernel",
      opts.kernels.conv2dBackpropInput,
      "--filter-kernel",
      opts.kernels.conv2dBackpropFilter,
      "--profile-model",
      opts.profileModel,
    );
  }
  const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
  if (!out.success) {
    throw new Error(`bench ${only} (${threads} threads) failed (exit ${out.code})`);
  }
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) =>
    l.startsWith("{")
  ).pop();
  if (text === undefined) throw new Error(`bench ${only} printed no result`);
  return JSON.parse(text) as ChildReport;
}

/** Each thread count's roof (the roof rows' rates). */
function roofs(rows: readonly Row[]): Map<number, number> {
  return new Map(
    rows.filter((r) => r.name.startsWith(ROOF)).map((r) => [r.threads ?? 1, r.value]),
  );
}

/** Pairs each row with PyTorch's figure for the same name and thread count. */
function withTorch(rows: Row[], reports: ReadonlyMap<number, TorchReport>): Row[] {
  return rows.map((r) => {
    const report = reports.get(r.threads ?? 1);
    if (report?.kind !== "measured") return r;
    const t = report.rows.find((x) => x.name === r.name && x.unit === r.unit);
    return t === undefined ? r : { ...r, torch: t.value };
  });
}

function torchNote(reports: ReadonlyMap<number, TorchReport>, python: string): string {
  const all = [...reports.values()];
  const missing = all.find((r) => r.kind === "missing");
  if (missing?.kind === "missing") {
    return `PyTorch is not available to ${python} (${missing.reason}): no PyTorch figures. ` +
      "On Debian: apt-get install python3-torch.";
  }
  const measured = all.find((r) => r.kind === "measured");
  return measured?.kind === "measured"
    ? `PyTorch ${measured.version} (${python}, torch.set_num_threads per row's threads, NCHW, ` +
      "the same layouts, batch sizes and steps; tasks/bench_torch.py) ran in the same run."
    : "";
}

async function main(values: Readonly<Record<string, unknown>>): Promise<void> {
  const opts = parse(values);
  if (opts.only) {
    const report = await child(
      opts.only,
      opts.quick,
      opts.threads[0],
      opts.backend,
      opts.allowSoftwareAdapter,
      opts.kernels,
      opts.tiny,
      opts.profileModel,
    );
    console.log(JSON.stringify(report));
    return;
  }
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "unknown")).split(" ")
    .slice(0, 3).join(" ");
  const rounds: Row[][] = [];
  const inProcess: InProcessScaling[][] = [];
  const pointwiseRounds: PointwiseComparison[][] = [];
  const profiles = new Map<number, NonNullable<ChildReport["profile"]>>();
  let backend = opts.backend as string;
  let software = false;
  const most = Math.max(...opts.threads);
  const fewest = Math.min(...opts.threads);
  const measurements: Measurement[] = [
    ...(opts.backend === "wasm" ? ["roof" as const] : []),
    ...(opts.profile
      ? ["profile" as const]
      : ["conv" as const, "resnet18" as const, "resnet50" as const]),
    // With more than one thread: the scaling inside one process, on the most threads only.
    ...(opts.backend === "wasm" && !opts.profile && most > 1 ? ["scaling" as const] : []),
    // 1x1 against 3x3 inside one process, on the fewest threads.
    ...(opts.backend === "wasm" && !opts.profile ? ["pointwise" as const] : []),
  ];
  for (let round = 0; round < opts.rounds; round++) {
    const rows: Row[] = [];
    for (const only of measurements) {
      const counts = only === "scaling" ? [most] : only === "pointwise" ? [fewest] : opts.threads;
      for (const threads of counts) {
        const report = await runChild(only, threads, opts);
        if (report.scaling) inProcess.push(report.scaling);
        if (report.pointwise) pointwiseRounds.push(report.pointwise);
        if (only !== "roof") {
          // The thread count is a column of its own.
          backend = report.backend.replace(/, \d+ threads?\)$/, ")");
          software ||= report.softwareAdapter;
        }
        if (report.profile) profiles.set(threads, report.profile);
        rows.push(
          ...report.rows.map((r) => (opts.backend === "wasm" ? { ...r, threads } : r)),
        );
      }
    }
    rounds.push(rows);
  }
  const rows: Row[] = opts.rounds === 1 ? rounds[0] : combineRounds(rounds);
  const inProcessScaling = joinInProcessScaling(inProcess);
  const pointwise = joinPointwise(pointwiseRounds);
  const scaling = opts.rounds === 1
    ? []
    : scalingByRound(rounds, opts.threads[0], opts.threads[opts.threads.length - 1]);
  const roof = roofs(rows);
  const torchReports = new Map<number, TorchReport>();
  if (opts.torch) {
    for (const threads of opts.threads) {
      torchReports.set(
        threads,
        await runTorchBench({
          python: opts.python,
          threads,
          quick: opts.quick,
          only: ["conv", "resnet18", "resnet50"],
        }),
      );
    }
  }
  const done = withTorch(rows, torchReports).map((r): Row => {
    const top = roof.get(r.threads ?? 1);
    return r.gflops === undefined || top === undefined || r.name.startsWith(ROOF)
      ? r
      : { ...r, roofPercent: (100 * r.gflops) / top };
  });
  const torch = opts.torch ? torchNote(torchReports, opts.python) : undefined;
  if (opts.json) {
    console.log(JSON.stringify({
      backend,
      softwareAdapter: software,
      ...(software ? { note: SOFTWARE_NOTE } : {}),
      tiny: opts.tiny,
      ...(opts.v8Flags === undefined ? {} : { v8Flags: opts.v8Flags }),
      threads: opts.threads,
      load,
      rows: done,
      ...(opts.rounds > 1 ? { rounds: opts.rounds, scaling } : {}),
      ...(inProcessScaling.length === 0 ? {} : {
        inProcessScaling: inProcessScaling.map((s) => ({ ...s, ratio: median(s.ratios) })),
      }),
      ...(pointwise.length === 0 ? {} : {
        pointwise: pointwise.map((p) => {
          const ratio = median(p.ratios)!;
          return { ...p, ratio, perMultiplyAdd: ratio / (1 - p.paddedShare) };
        }),
      }),
      ...(opts.profile ? { profiles: Object.fromEntries(profiles) } : {}),
      ...(opts.torch ? { torch: Object.fromEntries(torchReports), torchNote: torch } : {}),
    }));
  } else if (opts.profile) {
    if (opts.v8Flags !== undefined) console.log(`**${v8FlagsNote(opts.v8Flags)}**\n`);
    console.log(
      `Backend: ${backend}; ${navigator.hardwareConcurrency} cores; load average at start: ${load}\n`,
    );
    for (const [threads, p] of profiles) {
      console.log(profileTable(threads, opts.kernels, p, roof.get(threads)));
    }
    console.log(
      "Self time per kernel (kernels that run others through the engine are charged their own " +
        "time only); (between kernels) is the rest of the step's wall time: JavaScript, the " +
        "gradient tape, tensor bookkeeping. Per step, averaged over the profiled steps. " +
        "% of tile loop (WASM) = GFLOP/s over the tile loop's rate measured in the profiling " +
        "process on the same threads right before and after the profiled steps (their mean): " +
        "what the kernels' loads and the runtime's bounds checks allow on this machine. " +
        "Convolution flops count every filter tap, those in the zero padding too; the own " +
        "kernels skip the padded taps (a 3x3 layer's: " +
        [32, 16, 8, 4].map((hw) => `${(100 * paddedTapShare(hw, 3)).toFixed(1)} % at ${hw} x ${hw}`)
          .join(", ") +
        "), so a 3x3 layer's GFLOP/s is that much above its multiply-adds' rate.",
    );
  } else {
    console.log(
      table(done, {
        load,
        backend,
        software,
        torch,
        tiny: opts.tiny,
        scaling,
        ...(opts.v8Flags === undefined ? {} : { v8Flags: opts.v8Flags }),
      }),
    );
    if (inProcessScaling.length > 0) console.log(`\n${inProcessTable(inProcessScaling)}`);
    if (pointwise.length > 0) console.log(`\n${pointwiseTable(pointwise, opts.tiny)}`);
  }
  if (software) console.error(`bench: ${SOFTWARE_NOTE}`);
}

if (import.meta.main) await runCli(BENCH_CLI, ({ values }) => main(values));
