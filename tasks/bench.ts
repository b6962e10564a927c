/**
 * WASM training benchmark: GFLOP/s of a 3x3 convolution's forward pass and both gradients, and the
 * training throughput (images/s) and peak wasm heap of the CIFAR ResNet-18 and ResNet-50 layouts
 * at width 0.25 (16-32-64-128 stage widths). Each measurement runs in its own process, so each
 * peak heap is its own.
 *
 * Usage: `deno task bench [--quick] [--json] [--threads LIST]`, LIST a comma-separated list of
 * thread counts (default `1,<all cores>`): every measurement runs once per thread count. Do not
 * compare figures from a machine that other work is loading.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  registerWasmTrainingKernels,
  selectBackend,
  Sgd,
  softmaxCrossEntropy,
  wasmHeapBytes,
  withWasmHeapContext,
} from "@mfi/core";
import { buildResNet } from "@mfi/resnet";
import { type CliSpec, runCli, UsageError } from "./_cli.ts";

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

const REFERENCE: Record<string, string> = {
  "conv3x3 forward": "straightforward 16-20; PyTorch ~48 per thread",
  "conv3x3 backward-input": "straightforward 15-20; PyTorch ~48 per thread",
  "conv3x3 backward-filter": "straightforward 11-14; PyTorch ~48 per thread",
  "resnet18 train (batch 64)": "straightforward ~35; PyTorch ~155",
  "resnet50 train (batch 32)": "straightforward ~8 (2.3 GiB heap); PyTorch ~46",
};

function parse(values: Readonly<Record<string, unknown>>) {
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
    threads,
    only: values.only as string | undefined,
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

/** Wall and CPU seconds of `repeats` calls of `fn`, after `warmup` calls. */
function measure(fn: () => void, repeats: number, warmup = 2): { wall: number; cpu: number } {
  for (let i = 0; i < warmup; i++) fn();
  const c0 = cpuSeconds();
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) fn();
  return { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds() - c0 };
}

function benchConv(quick: boolean): Row[] {
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
  // t.dataSync())` would walk the returned typed array element by element).
  const rows = Object.entries(run).map(([name, fn]) => {
    const { wall, cpu } = measure(() => tf.tidy(fn).dispose(), repeats);
    return {
      name,
      value: (gflop * repeats) / wall,
      perCpu: (gflop * repeats) / cpu,
      unit: "GFLOP/s",
    };
  });
  tf.dispose([x, w, dy]);
  return rows;
}

function benchModel(arch: "resnet18" | "resnet50", batch: number, quick: boolean): Row {
  const model = buildResNet({ arch, classes: 10, width: 0.25, seed: 7 });
  const trainable = model.namedVariables().filter(([, v]) => v.trainable);
  const opt = new Sgd(trainable, { momentum: 0.9 });
  const x = tf.randomNormal([batch, 32, 32, 3], 0, 1, "float32", 4);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), "int32");
  const step = () =>
    withWasmHeapContext({ batchSize: batch, what: `${arch} training step` }, () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => softmaxCrossEntropy(model.apply(x, { training: true }), labels),
          trainable.map(([, v]) => v),
        );
        opt.applyGradients(new Map(trainable.map(([name, v]) => [name, grads[v.name]])), 0.01);
        return value.dataSync()[0];
      }));
  const steps = quick ? 3 : 8;
  const { wall, cpu } = measure(() => {
    const loss = step();
    if (!Number.isFinite(loss)) throw new Error(`${arch}: loss is ${loss}`);
  }, steps);
  return {
    name: `${arch} train (batch ${batch})`,
    value: (steps * batch) / wall,
    perCpu: (steps * batch) / cpu,
    unit: "images/s",
    heapMiB: wasmHeapBytes().heapBytes / 2 ** 20,
  };
}

async function child(only: string, quick: boolean, threads: number): Promise<Row[]> {
  const choice = await selectBackend({ backend: "wasm", threads });
  if (!choice.simd) console.error("warning: the wasm backend runs without SIMD");
  registerWasmTrainingKernels();
  if (only === "conv") return benchConv(quick);
  const row = only === "resnet18"
    ? benchModel("resnet18", 64, quick)
    : benchModel("resnet50", 32, quick);
  return [row];
}

function table(rows: Row[], load: string): string {
  const lines = [
    `WASM backend (SIMD); ${navigator.hardwareConcurrency} cores; load average at start: ${load}`,
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
    "shared, loaded machine distorts less than wall-clock time.",
  );
  return lines.join("\n");
}

async function main(values: Readonly<Record<string, unknown>>): Promise<void> {
  const opts = parse(values);
  if (opts.only) {
    console.log(JSON.stringify(await child(opts.only, opts.quick, opts.threads[0])));
    return;
  }
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "unknown")).split(" ")
    .slice(0, 3).join(" ");
  const rows: Row[] = [];
  for (const only of ["conv", "resnet18", "resnet50"]) {
    for (const threads of opts.threads) {
      const args = ["run", "-A", new URL(import.meta.url).pathname, "--only", only];
      if (opts.quick) args.push("--quick");
      args.push("--threads", String(threads));
      const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
      if (!out.success) {
        throw new Error(`bench ${only} (${threads} threads) failed (exit ${out.code})`);
      }
      const text = new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) =>
        l.startsWith("[")
      ).pop();
      rows.push(...(JSON.parse(text ?? "[]") as Row[]).map((r) => ({ ...r, threads })));
    }
  }
  const withRefs = rows.map((r) => ({ ...r, reference: REFERENCE[r.name] }));
  if (opts.json) console.log(JSON.stringify({ threads: opts.threads, load, rows: withRefs }));
  else console.log(table(withRefs, load));
}

if (import.meta.main) await runCli(BENCH_CLI, ({ values }) => main(values));
