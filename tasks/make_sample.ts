/**
 * `deno run -A tasks/make_sample.ts [--data-dir DIR] [--out FILE] [--train-per-class N]
 * [--test-per-class N]`: regenerates the embedded CIFAR-10 sample
 * `data/sample/cifar-10-sample.tar.gz` from the unpacked official binaries.
 *
 * The sample is stratified and deterministic: the first `train` records of each class in the
 * official order of `data_batch_1..5.bin` (default 200, so 2,000 records) and the first N
 * records of each class in `test_batch.bin` (default 50, so 500). The training records keep their
 * official order and are split evenly over five files, so the archive has the official layout
 * (`cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`, `batches.meta.txt`) and any
 * reader of the official `cifar-10-binary.tar.gz` reads it unchanged. Tar headers carry fixed
 * metadata (mtime 0, uid 0) and gzip runs at level 9, so the same input gives the same bytes.
 *
 * @module
 */
import { gzipSync } from "node:zlib";
import { defaultDataDir } from "@mfi/data";
import { type CliSpec, runCli, UsageError } from "./_cli.ts";

/** `tasks/make_sample.ts`'s command line. */
export const MAKE_SAMPLE_CLI: CliSpec = {
  name: "make_sample",
  summary: "regenerate the embedded CIFAR-10 sample (stratified, deterministic, official layout) " +
    "from the unpacked official binaries",
  flags: {
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      defaultText: "MFI_DATA_DIR, else ~/.cache/mfi-resnet",
      example: "/tmp/cifar",
      doc: "folder holding cifar-10-batches-bin/ (or its files)",
    },
    out: {
      type: "string",
      placeholder: "FILE",
      default: "data/sample/cifar-10-sample.tar.gz",
      example: "/tmp/sample.tar.gz",
      doc: "archive to write",
    },
    "train-per-class": {
      type: "integer",
      min: 1,
      default: 200,
      example: "100",
      doc: "training records per class (10 x N must divide by 5: one fifth per batch file)",
    },
    "test-per-class": { type: "integer", min: 1, default: 50, doc: "test records per class" },
  },
  renamed: {
    from: "--from was renamed --data-dir (one spelling across tasks); use --data-dir DIR",
    train: "--train was renamed --train-per-class; use --train-per-class N",
    test: "--test was renamed --test-per-class; use --test-per-class N",
  },
  examples: ["--data-dir /tmp/cifar", "--data-dir /tmp/cifar --train-per-class 100 --out s.tar.gz"],
};

const RECORD = 3073;
const CLASSES = 10;

function pickPerClass(records: Uint8Array, perClass: number, what: string): Uint8Array[] {
  const counts = new Array<number>(CLASSES).fill(0);
  const picked: Uint8Array[] = [];
  for (let off = 0; off + RECORD <= records.length; off += RECORD) {
    const label = records[off];
    if (label >= CLASSES) throw new Error(`${what}: label ${label} out of range at byte ${off}`);
    if (counts[label] < perClass) {
      counts[label]++;
      picked.push(records.subarray(off, off + RECORD));
    }
  }
  const short = counts.findIndex((c) => c < perClass);
  if (short >= 0) {
    throw new Error(
      `${what}: only ${counts[short]} records of class ${short}, need ${perClass}; lower the count`,
    );
  }
  return picked;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** One ustar header block (512 bytes) with fixed, reproducible metadata. */
function tarHeader(name: string, size: number, type: "0" | "5"): Uint8Array {
  const h = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (text: string, off: number) => h.set(enc.encode(text), off);
  if (name.length > 100) throw new Error(`tar: name too long: ${name}`);
  put(name, 0);
  put(octal(type === "5" ? 0o755 : 0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(0, 12), 136);
  put("        ", 148);
  put(type, 156);
  put("ustar\0", 257);
  put("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + " ", 148);
  return h;
}

function tar(entries: Array<{ name: string; data?: Uint8Array }>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { name, data } of entries) {
    if (data === undefined) {
      parts.push(tarHeader(name, 0, "5"));
      continue;
    }
    parts.push(tarHeader(name, data.length, "0"), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}

async function main(values: Readonly<Record<string, unknown>>): Promise<void> {
  const trainPer = values["train-per-class"] as number;
  const testPer = values["test-per-class"] as number;
  if ((trainPer * CLASSES) % 5 !== 0) {
    throw new UsageError(
      `--train-per-class ${trainPer}: 10 x N must divide by 5 (one fifth per batch file), e.g. 200`,
    );
  }
  const from = (values["data-dir"] as string | undefined) ?? defaultDataDir();
  let dir = `${from}/cifar-10-batches-bin`;
  try {
    await Deno.stat(dir);
  } catch {
    dir = from;
  }
  const read = async (f: string) => {
    try {
      return await Deno.readFile(`${dir}/${f}`);
    } catch {
      throw new Error(
        `Cannot read ${dir}/${f}: unpack the official cifar-10-binary.tar.gz there first ` +
          "(tar xzf cifar-10-binary.tar.gz -C DIR), or pass --data-dir",
      );
    }
  };
  const train = concat(
    await Promise.all([1, 2, 3, 4, 5].map((i) => read(`data_batch_${i}.bin`))),
  );
  const trainPicked = pickPerClass(train, trainPer, "training batches");
  const testPicked = pickPerClass(await read("test_batch.bin"), testPer, "test_batch.bin");
  const perFile = trainPicked.length / 5;
  const entries: Array<{ name: string; data?: Uint8Array }> = [{ name: "cifar-10-batches-bin/" }];
  entries.push({
    name: "cifar-10-batches-bin/batches.meta.txt",
    data: await read("batches.meta.txt"),
  });
  for (let i = 0; i < 5; i++) {
    entries.push({
      name: `cifar-10-batches-bin/data_batch_${i + 1}.bin`,
      data: concat(trainPicked.slice(i * perFile, (i + 1) * perFile)),
    });
  }
  entries.push({ name: "cifar-10-batches-bin/test_batch.bin", data: concat(testPicked) });
  const gz = gzipSync(tar(entries), { level: 9 });
  const out = values.out as string;
  await Deno.mkdir(out.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await Deno.writeFile(out, gz);
  console.log(
    `wrote ${out}: ${trainPicked.length} training records (${trainPer}/class, ${perFile}/file), ` +
      `${testPicked.length} test records (${testPer}/class), ${gz.length} bytes`,
  );
}

if (import.meta.main) await runCli(MAKE_SAMPLE_CLI, ({ values }) => main(values));
