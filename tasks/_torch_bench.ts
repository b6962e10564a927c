/**
 * The PyTorch side of `deno task bench --torch`: runs `tasks/bench_torch.py` with a Python
 * interpreter and reads its one-line JSON report. A Python without torch (or no Python at all) is
 * an answer, {@linkcode TorchMissing}, not a failure: the bench then says so and prints no
 * reference numbers.
 *
 * @module
 */

/** One PyTorch measurement, named as the bench's own row it pairs with. */
export interface TorchRow {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

/** PyTorch ran: its version, the thread count it used and its rows. */
export interface TorchMeasured {
  readonly kind: "measured";
  readonly version: string;
  readonly threads: number;
  readonly rows: TorchRow[];
}

/** PyTorch is not available to that interpreter, and why. */
export interface TorchMissing {
  readonly kind: "missing";
  readonly reason: string;
}

/** What one run of the PyTorch script found. */
export type TorchReport = TorchMeasured | TorchMissing;

/** Debian's own interpreter, which `apt-get install python3-torch` serves. */
export const DEFAULT_PYTHON = "/usr/bin/python3";

/** The script, next to this file. */
export const TORCH_SCRIPT: URL = new URL("./bench_torch.py", import.meta.url);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Reads the script's output: the last line that starts with `{`.
 *
 * @param stdout The script's standard output.
 * @returns The report.
 * @throws {Error} If no line is JSON of the expected form (naming what is wrong).
 */
export function parseTorchReport(stdout: string): TorchReport {
  const line = stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("{")).pop();
  if (line === undefined) {
    throw new Error(`bench_torch.py printed no JSON report; its output was: ${stdout.slice(-200)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch (e) {
    throw new Error(`bench_torch.py printed malformed JSON (${(e as Error).message}): ${line}`);
  }
  if (!isRecord(data)) throw new Error(`bench_torch.py's report is not an object: ${line}`);
  if (data.torch === null) {
    return { kind: "missing", reason: typeof data.error === "string" ? data.error : "unknown" };
  }
  if (typeof data.torch !== "string") {
    throw new Error(`bench_torch.py's report has no torch version (string or null): ${line}`);
  }
  if (!Number.isInteger(data.threads) || (data.threads as number) < 1) {
    throw new Error(`bench_torch.py's report has no valid threads count: ${line}`);
  }
  if (!Array.isArray(data.rows)) throw new Error(`bench_torch.py's report has no rows: ${line}`);
  const rows = data.rows.map((r, i): TorchRow => {
    if (
      !isRecord(r) || typeof r.name !== "string" || typeof r.unit !== "string" ||
      typeof r.value !== "number" || !(r.value > 0)
    ) {
      throw new Error(
        `bench_torch.py's row ${i} needs a name, a unit and a positive value: ${JSON.stringify(r)}`,
      );
    }
    return { name: r.name, value: r.value, unit: r.unit };
  });
  return { kind: "measured", version: data.torch, threads: data.threads as number, rows };
}

/** Options of {@linkcode runTorchBench}. */
export interface TorchBenchOptions {
  /** The interpreter (default {@linkcode DEFAULT_PYTHON}). */
  readonly python?: string;
  /** Interpreter flags before the script (e.g. `-S`). */
  readonly pythonArgs?: readonly string[];
  /** `torch.set_num_threads`. */
  readonly threads: number;
  /** Fewer repetitions. */
  readonly quick?: boolean;
  /** Measurements to run (`conv`, `resnet18`, `resnet50`). */
  readonly only: readonly string[];
}

/**
 * Runs the PyTorch script once.
 *
 * @param options Interpreter, threads, measurements.
 * @returns The measurements, or why PyTorch is missing (also when the interpreter does not exist).
 * @throws {Error} If the script fails or prints no valid report.
 */
export async function runTorchBench(options: TorchBenchOptions): Promise<TorchReport> {
  const python = options.python ?? DEFAULT_PYTHON;
  const args = [
    ...(options.pythonArgs ?? []),
    TORCH_SCRIPT.pathname,
    "--threads",
    String(options.threads),
    "--only",
    options.only.join(","),
    ...(options.quick ? ["--quick"] : []),
  ];
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { kind: "missing", reason: `${python} does not exist` };
    }
    throw e;
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" / ");
    throw new Error(`bench_torch.py failed under ${python} (exit ${out.code}): ${err}`);
  }
  return parseTorchReport(new TextDecoder().decode(out.stdout));
}
