/**
 * `deno task bench:serve`: a bounded load test of `tasks/serve.ts` on 127.0.0.1 only.
 *
 * 1. Cold start, `--cold-starts` times: spawn the server (restricted permissions: net to
 *    127.0.0.1, read of the bundle and the WASM binaries) and time process start to the
 *    `listening` line and to the first `POST /classify` answer.
 * 2. Load, `--rounds` (default 2) rounds of `--requests` requests with `--concurrency` clients each (PNG of
 *    `--image-size` pixels square, or raw 3072 bytes with `--input raw`): requests/s, latency
 *    p50/p90/p99/max, every status 200.
 * 3. Leak check: `/healthz` `numTensors` must be identical after warm-up and after every round;
 *    the resident set's growth over the second half of the rounds is reported (it rises for a few
 *    rounds while the allocator and GC settle: use `--rounds 10` or more to see the plateau).
 *
 * Without `--model`, a randomly initialised bundle of `--arch`/`--width` is written to a temp
 * folder (latency depends on the architecture, not on the weights' values).
 * Options: `--model PATH`, `--arch resnet18`, `--width 0.25`, `--requests 2000`,
 * `--concurrency 8`, `--rounds 2`, `--input png|raw`, `--image-size 64`, `--cold-starts 3`, `--threads 1`,
 * `--backend wasm`, `--out FILE` (write the results as JSON); `--help` lists them.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { encode as encodePng } from "fast-png";
import { Rng, selectBackend } from "@mfi/core";
import { CIFAR_CLASS_NAMES } from "@mfi/data";
import { RESNET_ARCHS, type ResNetArchName, type StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { writeBundle } from "@mfi/serve";
import { startServer, wasmDir } from "./_serve_process.ts";
import { BACKEND_FLAGS, type CliSpec, type FlagValue, runCli } from "./_cli.ts";

interface Health {
  numTensors: number;
  rssBytes: number;
  heapUsedBytes: number;
  batches: number;
  images: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

async function health(base: string): Promise<Health> {
  const res = await fetch(`${base}/healthz`);
  if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
  return await res.json();
}

async function makeBundle(dir: string, arch: ResNetArchName, width: number): Promise<string> {
  await selectBackend({ backend: "cpu" });
  const spec = resnetSpec(arch, 10, width);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 1 });
  });
  const bytes = await writeBundle(model, spec, {
    classNames: CIFAR_CLASS_NAMES.cifar10,
    normalization: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
    name: `bench ${arch} x${width} (random weights)`,
  });
  for (const [, v] of model.namedVariables()) v.dispose();
  const path = `${dir}/bench.mfi`;
  await Deno.writeFile(path, bytes);
  return path;
}

interface Round {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  non200: number;
}

async function round(
  base: string,
  body: Uint8Array,
  contentType: string,
  requests: number,
  concurrency: number,
): Promise<Round> {
  const latencies: number[] = [];
  let next = 0;
  let non200 = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < requests) {
      next++;
      const s = performance.now();
      const res = await fetch(`${base}/classify?topk=3`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: body.slice(),
      });
      await res.arrayBuffer();
      latencies.push(performance.now() - s);
      if (res.status !== 200) non200++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests,
    seconds,
    requestsPerSecond: requests / seconds,
    latencyMs: {
      p50: quantile(latencies, 0.5),
      p90: quantile(latencies, 0.9),
      p99: quantile(latencies, 0.99),
      max: latencies[latencies.length - 1],
      mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    },
    non200,
  };
}

/** `deno task bench:serve`'s command line. */
export const BENCH_SERVE_CLI: CliSpec = {
  name: "bench:serve",
  summary: "a bounded load test of the classifier server on 127.0.0.1: cold starts, request " +
    "rounds (throughput, latency percentiles), and a tensor and memory leak check",
  flags: {
    model: {
      type: "string",
      placeholder: "PATH",
      defaultText: "a randomly initialised bundle of --arch and --width",
      example: "model.mfi",
      doc: "the .mfi bundle to serve",
    },
    arch: {
      type: "string",
      choices: Object.keys(RESNET_ARCHS),
      default: "resnet18",
      doc: "architecture of the generated bundle (without --model)",
    },
    width: {
      type: "number",
      above: 0,
      default: 0.25,
      example: "0.0625",
      doc: "width multiplier of the generated bundle (without --model)",
    },
    requests: { type: "integer", min: 1, default: 2000, example: "200", doc: "requests per round" },
    concurrency: { type: "integer", min: 1, default: 8, example: "2", doc: "concurrent clients" },
    rounds: {
      type: "integer",
      min: 1,
      default: 2,
      example: "10",
      doc: "load rounds (10 or more show where memory settles)",
    },
    input: {
      type: "string",
      choices: ["png", "raw"],
      default: "png",
      doc: "request body: a PNG of --image-size pixels square, or raw 3,072 bytes",
    },
    "image-size": {
      type: "integer",
      min: 1,
      default: 64,
      example: "32",
      doc: "side of the PNG input in pixels",
    },
    "cold-starts": {
      type: "integer",
      min: 1,
      default: 3,
      example: "1",
      doc: "server starts to time before the load rounds",
    },
    backend: { ...BACKEND_FLAGS.backend, default: "wasm", defaultText: undefined, example: "cpu" },
    threads: { ...BACKEND_FLAGS.threads, default: 1, defaultText: undefined },
    "allow-software-adapter": BACKEND_FLAGS["allow-software-adapter"],
    out: {
      type: "string",
      placeholder: "FILE",
      example: "bench-serve.json",
      doc: "also write the results as JSON here",
    },
  },
  renamed: { json: "--json FILE was renamed --out FILE (--json is a switch in other tasks)" },
  notes: "Permissions: --allow-net=127.0.0.1, --allow-read, --allow-write (a temporary folder, " +
    "--out), --allow-run (the servers).",
  examples: ["", "--requests 200 --concurrency 2 --cold-starts 1 --input raw --out bench.json"],
};

async function main(values: Readonly<Record<string, FlagValue>>): Promise<void> {
  const requests = values.requests as number;
  const concurrency = values.concurrency as number;
  const coldStarts = values["cold-starts"] as number;
  const roundCount = values.rounds as number;
  const size = values["image-size"] as number;
  const dir = await Deno.makeTempDir({ prefix: "mfi-bench-serve-" });
  try {
    const model = (values.model as string | undefined) ??
      await makeBundle(dir, values.arch as ResNetArchName, values.width as number);
    const rng = new Rng(7);
    const body = values.input === "raw"
      ? Uint8Array.from({ length: 3072 }, () => rng.int(256))
      : new Uint8Array(encodePng({
        width: size,
        height: size,
        channels: 3,
        data: Uint8Array.from({ length: size * size * 3 }, () => rng.int(256)),
      }));
    const contentType = values.input === "raw" ? "application/octet-stream" : "image/png";
    const serverArgs = [
      "--backend",
      String(values.backend),
      "--threads",
      String(values.threads),
      "--wasm-dir",
      wasmDir(),
      ...(values["allow-software-adapter"] === true ? ["--allow-software-adapter"] : []),
    ];

    // 1. Cold starts.
    const cold: Array<
      { listenMs: number; firstAnswerMs: number; loadTimings: Record<string, number> }
    > = [];
    for (let i = 0; i < coldStarts; i++) {
      const t0 = performance.now();
      const server = await startServer({ model, args: serverArgs });
      const res = await fetch(`${server.base}/classify`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: body.slice(),
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`first request answered ${res.status}`);
      const firstAnswerMs = performance.now() - t0;
      const { loadTimings } = await (await fetch(`${server.base}/healthz`)).json();
      cold.push({ listenMs: server.listenMs, firstAnswerMs, loadTimings });
      await server.close();
    }

    // 2-3. Load rounds and leak check on one server.
    const server = await startServer({ model, args: serverArgs });
    let results;
    try {
      const info = await (await fetch(`${server.base}/model`)).json();
      await round(server.base, body, contentType, Math.min(50, requests), concurrency); // warm-up
      const healths = [await health(server.base)];
      const rounds: Round[] = [];
      for (let i = 0; i < roundCount; i++) {
        rounds.push(await round(server.base, body, contentType, requests, concurrency));
        healths.push(await health(server.base));
      }
      const h0 = healths[0];
      // RSS settles after a few rounds (allocator and GC warm-up); growth over the second half
      // of the rounds is what a leak would show.
      const half = healths[Math.ceil(roundCount / 2)];
      const last = healths[healths.length - 1];
      results = {
        date: new Date().toISOString(),
        model: { name: info.name, parameters: info.parameters, backend: info.backend },
        input: values.input === "raw"
          ? "raw 3072 bytes"
          : `PNG ${size}x${size} RGB (${body.length} bytes)`,
        concurrency,
        coldStart: {
          runs: cold,
          medianListenMs: quantile(cold.map((c) => c.listenMs).sort((a, b) => a - b), 0.5),
          medianFirstAnswerMs: quantile(
            cold.map((c) => c.firstAnswerMs).sort((a, b) => a - b),
            0.5,
          ),
        },
        rounds,
        health: healths.map((h) => ({
          numTensors: h.numTensors,
          rssMB: h.rssBytes / 1e6,
          heapUsedMB: h.heapUsedBytes / 1e6,
          batches: h.batches,
          images: h.images,
        })),
        tensorsFlat: healths.every((h) => h.numTensors === h0.numTensors),
        rssGrowthSecondHalfMB: (last.rssBytes - half.rssBytes) / 1e6,
        imagesPerBatch: (last.images - h0.images) / Math.max(1, last.batches - h0.batches),
        machine: `${navigator.hardwareConcurrency} logical CPUs (shared with other jobs)`,
        // selectBackend warns on the server's stderr when WebGPU runs on a software adapter.
        softwareAdapter: /WARNING: WebGPU runs on a SOFTWARE adapter/.test(server.output()),
      };
    } finally {
      await server.close();
    }
    if (typeof values.out === "string") {
      await Deno.writeTextFile(values.out, JSON.stringify(results, null, 2) + "\n");
    }
    const f = (x: number) => x.toFixed(1);
    console.log(
      [
        `model: ${results.model.name}, ${results.model.parameters} parameters, backend ${results.model.backend}`,
        `input: ${results.input}; ${requests} requests x ${roundCount} rounds, ${concurrency} concurrent`,
        `cold start (median of ${cold.length}): listening ${
          f(results.coldStart.medianListenMs)
        } ms, first answer ${f(results.coldStart.medianFirstAnswerMs)} ms`,
        `  last cold start, inside the server: ${
          Object.entries(cold[cold.length - 1].loadTimings).map(([k, v]) => `${k} ${f(v)}`).join(
            ", ",
          )
        } (bundle and backend overlap)`,
        ...results.rounds.map((r, i) =>
          `round ${i + 1}: ${f(r.requestsPerSecond)} req/s, p50 ${f(r.latencyMs.p50)} ms, p90 ${
            f(r.latencyMs.p90)
          } ms, p99 ${f(r.latencyMs.p99)} ms, max ${f(r.latencyMs.max)} ms, non-200: ${r.non200}`
        ),
        `tensors after warm-up and each round: ${
          results.health.map((h) => h.numTensors).join(" / ")
        } (${results.tensorsFlat ? "flat" : "NOT FLAT"})`,
        `rss MB: ${results.health.map((h) => f(h.rssMB)).join(" / ")}; heap MB: ${
          results.health.map((h) => f(h.heapUsedMB)).join(" / ")
        }; rss growth over the second half of the rounds: ${
          f(results.rssGrowthSecondHalfMB)
        } MB; images per forward pass: ${results.imagesPerBatch.toFixed(2)}`,
      ].join("\n"),
    );
    if (results.softwareAdapter) {
      const note = "SOFTWARE ADAPTER (--allow-software-adapter): the server ran WebGPU on a " +
        "software adapter; these numbers mean nothing, they test that serving runs on WebGPU.";
      console.log(`**${note}**`);
      console.error(`bench:serve: ${note}`);
    }
    if (!results.tensorsFlat || results.rounds.some((r) => r.non200 > 0)) Deno.exitCode = 1;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runCli(BENCH_SERVE_CLI, ({ values }) => main(values));
