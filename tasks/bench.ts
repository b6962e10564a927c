/**
 * Training benchmark: GFLOP/s of a 3x3 convolution's forward pass and both gradients, and the
 * training and inference throughput (images/s) of the CIFAR ResNet-18 and ResNet-50 layouts at
 * width 0.25 (16-32-64-128 stage widths), with the peak wasm heap on WASM. Each measurement runs
 * in its own process, so each peak heap is its own.
 *
 * Usage: `deno task bench [--quick] [--json] [--threads LIST] [--backend wasm|webgpu|cpu]
 * [--allow-software-adapter]`. LIST is a comma-separated list of WASM thread counts (default
 * `1,<all cores>`): every WASM measurement runs once per thread count. `--backend webgpu` runs the
 * same table on WebGPU (timed to the end of the device's work: each timed block ends with an
 * awaited read); on a software adapter (testing only) the table says that its numbers mean
 * nothing.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  backendLabel,
  type BackendName,
  registerWasmTrainingKernels,
  selectBackend,
  Sgd,
  softmaxCrossEntropy,
  wasmHeapBytes,
  withWasmHeapContext,
} from "@mfi/core";
import { buildResNet } from "@mfi/resnet";
import { BACKEND_FLAGS, type CliSpec, runCli, UsageError } from "./_cli.ts";

/** `deno task bench`'s command line. */
export const BENCH_CLI: CliSpec = {
  name: "bench",
  summary: "WASM training benchmark: conv GFLOP/s (forward and both gradients) and ResNet-18/50 " +
    "training images/s and peak heap, one process per measurement and thread count",
  flags: {
    quick: { type: "boolean", default: false, doc: "fewer repetitions (a rough figure)" },
    json: { type: "boolean", default: false, doc: "print JSON instead of a table" },
    threads: {
      type: "string",
      placeholder: "LIST",
      defaultText: "1,<all cores>",
      example: "1,2",
      doc: "comma-separated WASM thread counts; every measurement runs once per count",
    },
    only: {
      type: "string",
      choices: ["conv", "resnet18", "resnet50"],
      doc: "run one measurement in this process (what the parent runs in each child)",
    },
    backend: { ...BACKEND_FLAGS.backend, defaultText: "wasm" },
    "allow-software-adapter": BACKEND_FLAGS["allow-software-adapter"],
  },
  examples: ["--quick", "--threads 1,2 --json"],
};

/** One row of the result table. */
interface Row {
  readonly name: string;
  readonly value: number;
  /** The same rate per CPU-second of this process: less sensitive to a loaded machine. */
  readonly perCpu: number;
  readonly unit: string;
  /** WASM threads of the run (set by the parent process). */
  readonly threads?: number;
  readonly heapMiB?: number;
  readonly reference?: string;
}

/** What a child process reports: its rows and the backend they ran on. */
interface ChildReport {
  readonly backend: string;
  readonly softwareAdapter: boolean;
  readonly rows: Row[];
}

/** Printed with every table measured on a software adapter. */
const SOFTWARE_NOTE = "SOFTWARE ADAPTER (--allow-software-adapter): these numbers mean nothing; " +
  "they test that the benchmark runs on WebGPU. Run on a GPU machine for real figures.";

const REFERENCE: Record<string, string> = {
  "conv3x3 forward": "straightforward 16-20; PyTorch ~48 per thread",
  "conv3x3 backward-input": "straightforward 15-20; PyTorch ~48 per thread",
  "conv3x3 backward-filter": "straightforward 11-14; PyTorch ~48 per thread",
  "resnet18 train (batch 64)": "straightforward ~35; PyTorch ~155",
  "resnet50 train (batch 32)": "straightforward ~8 (2.3 GiB heap); PyTorch ~46",
};

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
  return {
    quick: values.quick as boolean,
    json: values.json as boolean,
    // Thread counts only mean something on WASM.
    threads: backend === "wasm" ? threads : [1],
    only: values.only as string | undefined,
    backend,
    allowSoftwareAdapter: values["allow-software-adapter"] === true,
  };
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

async function benchConv(quick: boolean, asynchronous: boolean): Promise<Row[]> {
  const [n, hw, c] = [64, 16, 128];
  const pad: [[0, 0], [1, 1], [1, 1], [0, 0]] = [[0, 0], [1, 1], [1, 1], [0, 0]];
  const x = tf.randomNormal([n, hw, hw, c], 0, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, c, c], 0, 0.05, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomNormal([n, hw, hw, c], 0, 1, "float32", 3) as tf.Tensor4D;
  const gflop = (2 * n * hw * hw * c * c * 9) / 1e9;
  const repeats = quick ? 3 : 10;
  const run = {
    "conv3x3 forward": () => tf.conv2d(x, w, 1, pad),
    "conv3x3 backward-input": () => tf.conv2dTranspose(dy, w, x.shape, 1, pad),
    "conv3x3 backward-filter": () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: [1, 1],
        pad,
        dataFormat: "NHWC",
        filterShape: [3, 3, c, c],
      }) as tf.Tensor,
  };
  // The wasm backend computes synchronously: no read-back needed (and `tf.tidy(() =>
  // t.dataSync())` would walk the returned typed array element by element). WebGPU queues the
  // work: the timed block ends with an awaited read of a scalar of the last result.
  const settler = new Settler(asynchronous);
  const rows: Row[] = [];
  for (const [name, fn] of Object.entries(run)) {
    const { wall, cpu } = await measure(() => settler.take(tf.tidy(fn)), repeats, settler.settle);
    rows.push({
      name,
      value: (gflop * repeats) / wall,
      perCpu: (gflop * repeats) / cpu,
      unit: "GFLOP/s",
    });
  }
  tf.dispose([x, w, dy]);
  return rows;
}

async function benchModel(
  arch: "resnet18" | "resnet50",
  batch: number,
  quick: boolean,
  onWasm: boolean,
): Promise<Row[]> {
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
  const steps = quick ? 3 : 8;
  const { wall, cpu } = await measure(step, steps);
  const train: Row = {
    name: `${arch} train (batch ${batch})`,
    value: (steps * batch) / wall,
    perCpu: (steps * batch) / cpu,
    unit: "images/s",
    ...(onWasm ? { heapMiB: wasmHeapBytes().heapBytes / 2 ** 20 } : {}),
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
  const batches = quick ? 3 : 10;
  const inference = await measure(infer, batches);
  tf.dispose([x, labels]);
  opt.dispose();
  return [train, {
    name: `${arch} inference (batch ${batch})`,
    value: (batches * batch) / inference.wall,
    perCpu: (batches * batch) / inference.cpu,
    unit: "images/s",
  }];
}

async function child(
  only: string,
  quick: boolean,
  threads: number,
  backend: BackendName,
  allowSoftwareAdapter: boolean,
): Promise<ChildReport> {
  const choice = await selectBackend({
    backend,
    ...(backend === "wasm" ? { threads } : {}),
    ...(allowSoftwareAdapter ? { allowSoftwareAdapter } : {}),
  });
  const onWasm = choice.name === "wasm";
  if (onWasm) {
    if (!choice.simd) console.error("warning: the wasm backend runs without SIMD");
    registerWasmTrainingKernels();
  }
  const rows = only === "conv"
    ? await benchConv(quick, choice.name === "webgpu")
    : only === "resnet18"
    ? await benchModel("resnet18", 64, quick, onWasm)
    : await benchModel("resnet50", 32, quick, onWasm);
  return {
    backend: backendLabel(choice),
    softwareAdapter: choice.softwareAdapter === true,
    rows,
  };
}

function table(rows: Row[], load: string, backend: string, software: boolean): string {
  const lines = [
    ...(software ? [`**${SOFTWARE_NOTE}**`, ""] : []),
    `Backend: ${backend}; ${navigator.hardwareConcurrency} cores; load average at start: ${load}`,
    "",
    "| measurement | threads | wall-clock rate | per CPU-second | unit | peak wasm heap | reference (not measured here) |",
    "| --- | ---: | ---: | ---: | --- | ---: | --- |",
  ];
  for (const r of rows) {
    const heap = r.heapMiB === undefined ? "" : `${(r.heapMiB / 1024).toFixed(2)} GiB`;
    lines.push(
      `| ${r.name} | ${r.threads ?? ""} | ${r.value.toFixed(1)} | ${
        r.perCpu.toFixed(1)
      } | ${r.unit} | ${heap} | ${REFERENCE[r.name] ?? ""} |`,
    );
  }
  lines.push(
    "",
    "PyTorch is not installed here (`import torch` fails); its figures are reference numbers, not",
    "measurements. Per CPU-second = the rate over this process's user+system CPU time, which a",
    "shared, loaded machine distorts less than wall-clock time (on WebGPU the device's time is",
    "not CPU time: read the wall-clock rate). The references are WASM and PyTorch CPU figures.",
    ...(software ? ["", `**${SOFTWARE_NOTE}**`] : []),
  );
  return lines.join("\n");
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
    );
    console.log(JSON.stringify(report));
    return;
  }
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "unknown")).split(" ")
    .slice(0, 3).join(" ");
  const rows: Row[] = [];
  let backend = opts.backend as string;
  let software = false;
  for (const only of ["conv", "resnet18", "resnet50"]) {
    for (const threads of opts.threads) {
      const args = ["run", "-A", new URL(import.meta.url).pathname, "--only", only];
      if (opts.quick) args.push("--quick");
      args.push("--backend", opts.backend);
      if (opts.backend === "wasm") args.push("--threads", String(threads));
      if (opts.allowSoftwareAdapter) args.push("--allow-software-adapter");
      const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
      if (!out.success) {
        throw new Error(`bench ${only} (${threads} threads) failed (exit ${out.code})`);
      }
      const text = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) =>
        l.startsWith("{")
      ).pop();
      if (text === undefined) throw new Error(`bench ${only} printed no result`);
      const report = JSON.parse(text) as ChildReport;
      // The thread count is a column of its own.
      backend = report.backend.replace(/, \d+ threads?\)$/, ")");
      software ||= report.softwareAdapter;
      rows.push(
        ...report.rows.map((r) => (opts.backend === "wasm" ? { ...r, threads } : r)),
      );
    }
  }
  const withRefs = rows.map((r) => ({ ...r, reference: REFERENCE[r.name] }));
  if (opts.json) {
    console.log(JSON.stringify({
      backend,
      softwareAdapter: software,
      ...(software ? { note: SOFTWARE_NOTE } : {}),
      threads: opts.threads,
      load,
      rows: withRefs,
    }));
  } else console.log(table(withRefs, load, backend, software));
  if (software) console.error(`bench: ${SOFTWARE_NOTE}`);
}

if (import.meta.main) await runCli(BENCH_CLI, ({ values }) => main(values));
