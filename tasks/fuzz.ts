/**
 * `deno task fuzz [--cases N] [--seconds S] [--bomb-mib M]`: a bounded, repeatable fuzz run of
 * the serving path. It throws generated decompression bombs, lying headers and corruptions at
 * the image decoders, re-signed and corrupted bundles at the bundle loader, and bombs, malformed
 * and half-sent requests at the HTTP server and handler (on 127.0.0.1 only, a port picked by the
 * system), then prints one table row per target: cases, how many were rejected as expected (an
 * `ImageDecodeError`, a `BundleError`, a 4xx answer or a closed half request), how many were
 * accepted (valid inputs, and corruptions that still decode to an image within the limits), how
 * many did anything else (unexpected: another error type, a 5xx, a bomb accepted, a hang), and
 * the peak resident memory seen (`Deno.memoryUsage().rss`, sampled after every case and every
 * 20 ms). Everything is seeded: the same flags give the same cases. Exits 1 if any case was
 * unexpected.
 *
 * Options: `--cases N` (corruptions per seed input, default 200), `--seconds S` (stop starting
 * new cases after S seconds per target, default 60), `--bomb-mib M` (what the largest bombs
 * inflate to, default 2048), `--seed N` (default 0).
 * Permissions: `--allow-net=127.0.0.1` only.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "@mfi/core";
import { buildModel, countSpecParameters, resnetSpec, validateModelSpec } from "@mfi/incubation";
import { RESNET_ARCHS, type StagedModel } from "@mfi/resnet";
import {
  BundleError,
  createHandler,
  decodeImage,
  ImageDecodeError,
  instantiateBundle,
  loadClassifier,
  readBundle,
  startHttpServer,
  writeBundle,
} from "@mfi/serve";
import {
  corrupt,
  jpegHugeDimensions,
  jpegManyScans,
  pngHugeDimensions,
  pngIccBomb,
  pngInflateBomb,
  resignBundle,
  smallJpeg,
  smallPng,
} from "../serve/testdata/hostile.ts";
import { type CliSpec, runCli } from "./_cli.ts";

/** Outcome counts of one target. */
export interface FuzzRow {
  /** What was fuzzed. */
  readonly target: string;
  /** Cases run. */
  cases: number;
  /** Rejected the way the target promises (typed error, 4xx, closed socket). */
  rejected: number;
  /** Accepted: valid inputs, or corruptions that still decode within the limits. */
  accepted: number;
  /** Anything else; each is listed in `failures`. */
  unexpected: number;
  /** RSS in bytes when this target started. */
  startRss: number;
  /** Peak RSS in bytes seen while this target ran. */
  peakRss: number;
  /** Descriptions of the unexpected cases (at most 10). */
  readonly failures: string[];
}

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Corruptions per seed input. */
  readonly cases: number;
  /** Time budget per target, in seconds (no new case starts after it). */
  readonly seconds: number;
  /** Inflated size of the largest bombs, in MiB. */
  readonly bombMiB: number;
  /** Base seed. */
  readonly seed: number;
}

type Outcome = "rejected" | "accepted" | string;

function row(target: string): FuzzRow {
  return {
    target,
    cases: 0,
    rejected: 0,
    accepted: 0,
    unexpected: 0,
    startRss: Deno.memoryUsage().rss,
    peakRss: 0,
    failures: [],
  };
}

/** Samples RSS every 20 ms (and on demand) into `row.peakRss` while `body` runs. */
async function measured(r: FuzzRow, body: (sample: () => void) => Promise<void>): Promise<void> {
  const sample = () => (r.peakRss = Math.max(r.peakRss, Deno.memoryUsage().rss));
  const timer = setInterval(sample, 20);
  try {
    sample();
    await body(sample);
    sample();
  } finally {
    clearInterval(timer);
  }
}

function record(r: FuzzRow, what: string, outcome: Outcome): void {
  r.cases++;
  if (outcome === "rejected") r.rejected++;
  else if (outcome === "accepted") r.accepted++;
  else {
    r.unexpected++;
    if (r.failures.length < 10) r.failures.push(`${what}: ${outcome}`);
  }
}

/** The image inputs: bombs that must be refused, then corruptions of small files and bombs. */
function imageCases(o: FuzzOptions): [name: string, bytes: () => Uint8Array, bomb: boolean][] {
  const mib = 1024 * 1024;
  const big = o.bombMiB * mib;
  const bombs: [string, () => Uint8Array, boolean][] = [
    [`png IDAT inflating to ${o.bombMiB} MiB, 1x1 declared`, () => pngInflateBomb(big), true],
    [
      `png IDAT inflating to ${o.bombMiB} MiB, 64x64 declared`,
      () => pngInflateBomb(big, 64, 64),
      true,
    ],
    [`png iCCP inflating to ${o.bombMiB} MiB`, () => pngIccBomb(big), true],
    ["png 100000x100000 declared", () => pngHugeDimensions(100_000, 100_000), true],
    ["png 2^31-1 x 1 declared", () => pngHugeDimensions(0x7fffffff, 1), true],
    ["jpeg 65535x65535 declared", () => jpegHugeDimensions(65535, 65535), true],
    ["jpeg 5000 scans", () => jpegManyScans(5000), true],
  ];
  const seeds: [string, Uint8Array][] = [
    ["png", smallPng(o.seed + 1)],
    ["jpeg", smallJpeg(o.seed + 1)],
    ["png bomb", pngInflateBomb(64 * mib, 8, 8)],
    ["png huge", pngHugeDimensions(20_000, 20_000)],
    ["jpeg huge", jpegHugeDimensions(20_000, 20_000)],
    ["jpeg scans", jpegManyScans(150)],
  ];
  const corrupted: [string, () => Uint8Array, boolean][] = [];
  for (const [k, [name, bytes]] of seeds.entries()) {
    for (let i = 0; i < o.cases; i++) {
      corrupted.push([`${name} corruption ${i}`, () => corrupt(bytes, i, o.seed * 100 + k), false]);
    }
  }
  return [...bombs, ...corrupted];
}

async function fuzzImages(o: FuzzOptions): Promise<FuzzRow> {
  const r = row("image decoders (PNG, JPEG)");
  const t0 = performance.now();
  await measured(r, async (sample) => {
    for (const [name, make, bomb] of imageCases(o)) {
      if (performance.now() - t0 > o.seconds * 1000) break;
      const bytes = make();
      let outcome: Outcome;
      try {
        const img = decodeImage(bytes, { maxPixels: 25_000_000 });
        outcome = bomb
          ? `bomb accepted (${img.width}x${img.height})`
          : img.data.length === img.width * img.height * 3
          ? "accepted"
          : "inconsistent image";
      } catch (e) {
        outcome = e instanceof ImageDecodeError ? "rejected" : `${(e as Error).name}: ${e}`;
      }
      record(r, name, outcome);
      sample();
      await Promise.resolve();
    }
  });
  return r;
}

async function tinyBundle(seed: number): Promise<Uint8Array> {
  const spec = resnetSpec("resnet18", 10, 1 / 32);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed });
  });
  try {
    return await writeBundle(model, spec, {
      classNames: Array.from({ length: 10 }, (_, i) => `class${i}`),
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    });
  } finally {
    for (const [, v] of model.namedVariables()) v.dispose();
  }
}

/** Re-signed bundles whose spec asks for too much or does not describe the tensors. */
function hostileSpecs(): [string, unknown][] {
  const base = resnetSpec("resnet18", 10, 1 / 32);
  return [
    ["resnet101 width 64", resnetSpec("resnet101", 10, 64)],
    ["resnet50 width 4 (375M parameters)", resnetSpec("resnet50", 10, 4)],
    ["resnet101 x3, 1000 classes", resnetSpec("resnet101", 1000, 3)],
    ["20000 classes", resnetSpec("resnet18", 20_000, 1 / 32)],
    ["custom arch", { ...base, arch: { ...RESNET_ARCHS.resnet18, depths: [9, 9, 9, 9] } }],
    ["spec of other weights", resnetSpec("resnet18", 10, 1 / 16)],
    ["spec of other classes", resnetSpec("resnet18", 12, 1 / 32)],
    ["resnet34 at the same width", resnetSpec("resnet34", 10, 1 / 32)],
  ];
}

async function fuzzBundles(o: FuzzOptions): Promise<FuzzRow> {
  const r = row("bundle loader (.mfi)");
  const t0 = performance.now();
  const honest = await tinyBundle(o.seed);
  const tensorsBefore = tf.memory().numTensors;
  await measured(r, async (sample) => {
    const attempt = async (name: string, bytes: Uint8Array, valid: boolean) => {
      let outcome: Outcome;
      try {
        const bundle = await readBundle(bytes, { source: name });
        const model = instantiateBundle(bundle, { source: name });
        for (const [, v] of model.namedVariables()) v.dispose();
        outcome = valid ? "accepted" : "loaded although hostile";
      } catch (e) {
        outcome = e instanceof BundleError ? "rejected" : `${(e as Error).name}: ${e}`;
      }
      record(r, name, outcome);
      sample();
    };
    await attempt("the honest bundle", honest, true);
    for (const [name, spec] of hostileSpecs()) {
      const s = validateModelSpec(spec);
      const bytes = await resignBundle(honest, (md) => {
        md.spec = JSON.stringify(spec);
        md.parameters = String(countSpecParameters(s).total);
        md.class_names = JSON.stringify(Array.from({ length: s.classes }, (_, i) => `c${i}`));
      });
      await attempt(`re-signed: ${name}`, bytes, false);
    }
    // Re-signed tensor edits: a dropped, an added and a reshaped tensor.
    const edits: [string, Parameters<typeof resignBundle>[1]][] = [
      ["dropped tensor", (_, t) => void t.delete([...t.keys()][0])],
      ["added tensor", (_, t) => void t.set("extra.weight", [...t.values()][0])],
      ["reshaped tensor", (_, t) => {
        const [k, v] = [...t.entries()][0];
        t.set(k, { ...v, shape: [v.data.length] });
      }],
    ];
    for (const [name, edit] of edits) {
      await attempt(`re-signed: ${name}`, await resignBundle(honest, edit), false);
    }
    for (let i = 0; i < o.cases; i++) {
      if (performance.now() - t0 > o.seconds * 1000) break;
      await attempt(`corruption ${i}`, corrupt(honest, i, o.seed), false);
    }
  });
  if (tf.memory().numTensors !== tensorsBefore) {
    record(r, "tensor count", `leaked ${tf.memory().numTensors - tensorsBefore} tensors`);
  }
  return r;
}

/** Sends raw bytes on a fresh loopback connection; returns the status line's code, or "closed". */
async function rawRequest(port: number, bytes: Uint8Array, waitMs: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(bytes).catch(() => {});
    let text = "";
    const buf = new Uint8Array(4096);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<null>((r) => (timer = setTimeout(() => r(null), waitMs)));
    for (;;) {
      const n = await Promise.race([conn.read(buf).catch(() => null), deadline]);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    clearTimeout(timer);
    const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
    return m ? m[1] : "closed";
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}

async function fuzzHttp(o: FuzzOptions): Promise<FuzzRow> {
  const r = row("HTTP server + handler (127.0.0.1)");
  const t0 = performance.now();
  const classifier = await loadClassifier(await tinyBundle(o.seed + 1), { backend: "cpu" });
  const server = startHttpServer(createHandler(classifier, { maxPixels: 4_000_000 }), {
    hostname: "127.0.0.1",
    port: 0,
    headerTimeoutMs: 300,
    bodyTimeoutMs: 300,
    idleTimeoutMs: 300,
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const tensorsBefore = tf.memory().numTensors;
  const enc = new TextEncoder();
  try {
    await measured(r, async (sample) => {
      const post = async (name: string, body: Uint8Array, expect: "4xx" | "2xx", type?: string) => {
        let outcome: Outcome;
        try {
          const res = await fetch(`${base}/classify`, {
            method: "POST",
            body: body.slice(),
            headers: type ? { "content-type": type } : {},
          });
          await res.body?.cancel();
          const ok = expect === "4xx"
            ? res.status >= 400 && res.status < 500
            : res.status >= 200 && res.status < 300;
          outcome = ok ? (expect === "4xx" ? "rejected" : "accepted") : `status ${res.status}`;
        } catch (e) {
          outcome = `fetch failed: ${e}`;
        }
        record(r, name, outcome);
        sample();
      };
      await post("valid raw input", new Uint8Array(3072), "2xx", "application/octet-stream");
      await post("valid png", smallPng(o.seed), "2xx", "image/png");
      const mib = 1024 * 1024;
      const bombs: [string, Uint8Array][] = [
        // The body limit (5 MiB) bounds the upload; these fit under it and inflate far past it.
        ["png IDAT bomb (512 MiB)", pngInflateBomb(Math.min(o.bombMiB, 512) * mib)],
        ["png iCCP bomb (512 MiB)", pngIccBomb(Math.min(o.bombMiB, 512) * mib)],
        ["png 100000x100000", pngHugeDimensions(100_000, 100_000)],
        ["jpeg 65535x65535", jpegHugeDimensions(65535, 65535)],
        ["jpeg 5000 scans", jpegManyScans(5000)],
      ];
      for (const [name, bytes] of bombs) await post(name, bytes, "4xx", "image/png");
      // Each with the status class it must get (a 408 for the half-sent ones).
      const protocol: [string, string, RegExp?][] = [
        ["half headers", "POST /classify HTTP/1.1\r\nHost: x\r\n", /^408$/],
        ["half body", "POST /classify HTTP/1.1\r\nContent-Length: 3072\r\n\r\nabc", /^408$/],
        ["nothing sent", "", /^408$/],
        ["garbage request line", "\x00\x01\x02 garbage\r\n\r\n"],
        ["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /^(400|505)$/],
        ["header too large", `GET /healthz HTTP/1.1\r\nX: ${"a".repeat(40_000)}\r\n\r\n`],
        ["body over limit", "POST /classify HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"],
        [
          "TE and CL",
          "POST /classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ],
        ["bad chunk", "POST /classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        ["unknown path", "GET /../../etc/passwd HTTP/1.1\r\n\r\n"],
        ["wrong method", "DELETE /classify HTTP/1.1\r\n\r\n"],
      ];
      for (const [name, text, expected = /^4\d\d$/] of protocol) {
        const status = await rawRequest(server.addr.port, enc.encode(text), 3_000);
        record(r, name, expected.test(status) ? "rejected" : `answered ${status}`);
        sample();
      }
      // Corrupted images as request bodies.
      const png = smallPng(o.seed + 7);
      for (let i = 0; i < o.cases; i++) {
        if (performance.now() - t0 > o.seconds * 1000) break;
        const bytes = corrupt(png, i, o.seed + 3);
        let outcome: Outcome;
        try {
          const res = await fetch(`${base}/classify`, { method: "POST", body: bytes.slice() });
          await res.body?.cancel();
          outcome = res.status === 200
            ? "accepted"
            : res.status < 500
            ? "rejected"
            : `status ${res.status}`;
        } catch (e) {
          outcome = `fetch failed: ${e}`;
        }
        record(r, `corrupted png ${i}`, outcome);
        sample();
      }
    });
  } finally {
    await server.shutdown();
    classifier.dispose();
  }
  if (tf.memory().numTensors > tensorsBefore) {
    record(r, "tensor count", `grew by ${tf.memory().numTensors - tensorsBefore}`);
  }
  return r;
}

/**
 * Runs every target in turn.
 *
 * @param options Case counts, time budget, bomb size, seed.
 * @returns One row per target.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzRow[]> {
  await selectBackend({ backend: "cpu" });
  return [await fuzzImages(options), await fuzzBundles(options), await fuzzHttp(options)];
}

/**
 * Formats the rows as a Markdown table.
 *
 * @param rows Results of {@linkcode runFuzz}.
 * @returns The table.
 */
export function formatFuzzTable(rows: readonly FuzzRow[]): string {
  const lines = [
    "| target | cases | rejected as expected | accepted (valid) | unexpected | RSS at start -> peak |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.target} | ${r.cases} | ${r.rejected} | ${r.accepted} | ${r.unexpected} | ${
        (r.startRss / 1024 / 1024).toFixed(0)
      } -> ${(r.peakRss / 1024 / 1024).toFixed(0)} MiB |`
    ),
  ];
  for (const r of rows) for (const f of r.failures) lines.push(`unexpected in ${r.target}: ${f}`);
  return lines.join("\n");
}

/** `deno task fuzz`'s command line. */
export const FUZZ_CLI: CliSpec = {
  name: "fuzz",
  summary: "a bounded, seeded fuzz run of the serving path (image decoders, bundle loader, HTTP " +
    "server on 127.0.0.1); one table row per target; exit 1 if any case was unexpected",
  flags: {
    cases: {
      type: "integer",
      min: 0,
      default: 200,
      example: "20",
      doc: "corruptions per seed input",
    },
    seconds: {
      type: "integer",
      min: 1,
      default: 60,
      example: "10",
      doc: "stop starting new cases after this many seconds per target",
    },
    "bomb-mib": {
      type: "integer",
      min: 1,
      default: 2048,
      example: "64",
      doc: "what the largest decompression bombs inflate to, in MiB",
    },
    seed: { type: "integer", min: 0, default: 0, example: "3", doc: "base seed of every case" },
  },
  notes: "Permissions: --allow-net=127.0.0.1 only.",
  examples: ["", "--cases 20 --bomb-mib 64 --seed 3"],
};

if (import.meta.main) {
  await runCli(FUZZ_CLI, async ({ values }) => {
    const options: FuzzOptions = {
      cases: values.cases as number,
      seconds: values.seconds as number,
      bombMiB: values["bomb-mib"] as number,
      seed: values.seed as number,
    };
    const t0 = performance.now();
    const rows = await runFuzz(options);
    console.log(formatFuzzTable(rows));
    console.log(
      `(${((performance.now() - t0) / 1000).toFixed(1)} s; --cases ${options.cases} ` +
        `--bomb-mib ${options.bombMiB} --seed ${options.seed}; Deno ${Deno.version.deno}, ` +
        `${Deno.build.os}/${Deno.build.arch})`,
    );
    return rows.some((r) => r.unexpected > 0) ? 1 : 0;
  });
}
