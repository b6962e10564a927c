/**
 * Training checkpoints: weights (every named variable, batch-norm running statistics included) and
 * optimizer tensors (under `optim.`) in one safetensors file, plus a JSON sidecar with the resolved
 * config, epoch, step, optimizer step count, RNG state and metrics history.
 *
 * Writes are atomic ({@linkcode writeFileAtomic}: an exclusive, uniquely named `*.part` file,
 * flushed and renamed); the sidecar is renamed last and is the commit marker. A checkpoint is complete only if both files exist and the
 * sidecar's SHA-256 and byte size match the weights file, so a crash at any point leaves the
 * previous checkpoint loadable.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { NamedVariables } from "./module.ts";
import type { OptimizerState } from "./optimizer.ts";
import type { RngState } from "./random.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from "./safetensors.ts";
import { sha256Hex } from "./sha256.ts";
import { writeFileAtomic } from "./atomic_file.ts";

/** Prefix of optimizer tensors inside the checkpoint's safetensors file. */
export const OPTIMIZER_PREFIX = "optim.";

const FORMAT = "mfi-checkpoint";
const VERSION = 1;

/** What a checkpoint records besides the weights. */
export interface CheckpointState {
  /** Completed epochs. */
  readonly epoch: number;
  /** Completed optimizer steps. */
  readonly step: number;
  /** The resolved run config (JSON-serialisable). */
  readonly config?: unknown;
  /** Optimizer state (its tensors go to the safetensors file under `optim.`). */
  readonly optimizer?: OptimizerState;
  /** State of the training loop's random generator. */
  readonly rng?: RngState;
  /** Metrics history, e.g. one record per epoch. */
  readonly history?: readonly unknown[];
  /** Anything else a caller wants to keep (JSON-serialisable). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** The JSON sidecar of a checkpoint. */
export interface CheckpointSidecar {
  /** Always `"mfi-checkpoint"`. */
  readonly format: string;
  /** Sidecar format version. */
  readonly version: number;
  /** Checkpoint name (file stem), e.g. `epoch-0003`. */
  readonly name: string;
  /** Weights file name, relative to the sidecar's directory. */
  readonly weightsFile: string;
  /** SHA-256 of the weights file, hex. */
  readonly sha256: string;
  /** Size of the weights file in bytes. */
  readonly bytes: number;
  /** Completed epochs. */
  readonly epoch: number;
  /** Completed optimizer steps. */
  readonly step: number;
  /** The resolved run config. */
  readonly config: unknown;
  /** Optimizer kind and step count (tensors are in the weights file), or null. */
  readonly optimizer: { readonly kind: string; readonly iterations: number } | null;
  /** RNG state, or null. */
  readonly rng: RngState | null;
  /** Metrics history. */
  readonly history: readonly unknown[];
  /** Extra caller data. */
  readonly extra: Readonly<Record<string, unknown>>;
  /** ISO time of writing. */
  readonly savedAt: string;
}

/** A checkpoint read back from disk. */
export interface LoadedCheckpoint {
  /** Path of the sidecar it was read from. */
  readonly path: string;
  /** The sidecar. */
  readonly sidecar: CheckpointSidecar;
  /** Model variables by name (no `optim.` entries). */
  readonly weights: ReadonlyMap<string, SafetensorsTensor>;
  /** Optimizer state, if one was saved. */
  readonly optimizer: OptimizerState | undefined;
}

/** Options of {@linkcode saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** File stem (default `epoch-NNNN` from the state's epoch). Letters, digits, `.`, `_`, `-`. */
  readonly name?: string;
  /** How many complete checkpoints to keep in the directory, newest by step (default 2; 0 = all). */
  readonly keep?: number;
}

/** Lists complete checkpoints of a directory. */
export interface CheckpointEntry {
  /** Sidecar path. */
  readonly path: string;
  /** Checkpoint name. */
  readonly name: string;
  /** Completed epochs. */
  readonly epoch: number;
  /** Completed steps. */
  readonly step: number;
}

function join(dir: string, file: string): string {
  return dir.endsWith("/") ? dir + file : `${dir}/${file}`;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Reads named variables as float32 safetensors entries (asynchronous reads, safe on WebGPU).
 *
 * @param variables Named variables, e.g. `model.namedVariables()`.
 * @returns The tensors by name, in order.
 * @throws {Error} If a name repeats or a variable is not float32.
 */
export async function variablesToTensors(
  variables: NamedVariables,
): Promise<Map<string, SafetensorsTensor>> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, v] of variables) {
    if (out.has(name)) throw new Error(`Cannot save variable "${name}": the name appears twice`);
    if (v.dtype !== "float32") {
      throw new Error(
        `Cannot save variable "${name}": dtype ${v.dtype}, only float32 is supported`,
      );
    }
    const data = Float32Array.from(await v.data() as Float32Array);
    out.set(name, { dtype: "F32", shape: [...v.shape], data });
  }
  return out;
}

/**
 * Writes tensors into named variables after checking that names and shapes match exactly.
 *
 * @param variables The variables to fill, e.g. `model.namedVariables()`.
 * @param tensors Saved tensors by name.
 * @param source A name for messages (e.g. the file path).
 * @throws {Error} Listing missing names, unexpected names and shape mismatches; nothing is
 * written unless everything matches.
 * @example
 * ```ts
 * import { restoreVariables } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]));
 * restoreVariables([["w", w]], new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]));
 * assert.deepEqual(Array.from(await w.data()), [1, 2]);
 * assert.throws(() => restoreVariables([["w", w]], new Map()), /missing: w/);
 * w.dispose();
 * ```
 */
export function restoreVariables(
  variables: NamedVariables,
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  source = "checkpoint",
): void {
  const names = new Set(variables.map(([n]) => n));
  const missing = variables.map(([n]) => n).filter((n) => !tensors.has(n));
  const unexpected = [...tensors.keys()].filter((n) => !names.has(n));
  const shapes: string[] = [];
  for (const [name, v] of variables) {
    const t = tensors.get(name);
    if (t === undefined) continue;
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      shapes.push(`${name}: saved [${t.shape}], model [${v.shape}]`);
    } else if (t.dtype !== "F32") {
      shapes.push(`${name}: saved dtype ${t.dtype}, expected F32`);
    }
  }
  if (missing.length + unexpected.length + shapes.length > 0) {
    const list = (xs: string[]): string =>
      xs.slice(0, 8).join(", ") + (xs.length > 8 ? ` (and ${xs.length - 8} more)` : "");
    const parts = [];
    if (missing.length) parts.push(`missing: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected: ${list(unexpected)}`);
    if (shapes.length) parts.push(`shape mismatch: ${list(shapes)}`);
    throw new Error(
      `Cannot load ${source} into the model: ${parts.join("; ")}. ` +
        `Was it saved from the same architecture and width?`,
    );
  }
  for (const [name, v] of variables) {
    const t = tensors.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, [...t.shape], "float32")));
  }
}

/**
 * Saves a checkpoint into `dir` atomically and prunes older ones beyond `keep`.
 *
 * @param dir The run's checkpoint directory (created if missing).
 * @param variables Every named variable of the model (buffers included).
 * @param state Epoch, step, config, optimizer and RNG state, history.
 * @param options File stem and retention.
 * @returns The sidecar path.
 * @throws {Error} On an invalid name, duplicate variable names or a name under `optim.`.
 * @example
 * ```ts
 * import { latestCheckpoint, readCheckpoint, saveCheckpoint } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const w = tf.variable(tf.ones([3]));
 * await saveCheckpoint(dir, [["w", w]], { epoch: 1, step: 10, config: { lr: 0.1 } });
 * const ckpt = await readCheckpoint((await latestCheckpoint(dir))!);
 * assert.equal(ckpt.sidecar.step, 10);
 * assert.deepEqual(ckpt.weights.get("w")!.shape, [3]);
 * w.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  variables: NamedVariables,
  state: CheckpointState,
  options: SaveCheckpointOptions = {},
): Promise<string> {
  for (const key of ["epoch", "step"] as const) {
    if (!Number.isInteger(state[key]) || state[key] < 0) {
      throw new Error(`Cannot save checkpoint: ${key} must be an integer >= 0, got ${state[key]}`);
    }
  }
  const name = options.name ?? `epoch-${String(state.epoch).padStart(4, "0")}`;
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith(".")) {
    throw new Error(
      `Cannot save checkpoint: name "${name}" must use letters, digits, ".", "_" or "-"`,
    );
  }
  const keep = options.keep ?? 2;
  if (!Number.isInteger(keep) || keep < 0) {
    throw new Error(`Cannot save checkpoint: keep must be an integer >= 0, got ${keep}`);
  }
  const tensors = await variablesToTensors(variables);
  for (const n of tensors.keys()) {
    if (n.startsWith(OPTIMIZER_PREFIX)) {
      throw new Error(
        `Cannot save checkpoint: variable "${n}" uses the reserved prefix "${OPTIMIZER_PREFIX}"`,
      );
    }
  }
  if (state.optimizer) {
    for (const [n, t] of state.optimizer.tensors) tensors.set(OPTIMIZER_PREFIX + n, t);
  }
  const bytes = encodeSafetensors(tensors, {
    format: FORMAT,
    checkpoint: name,
    step: String(state.step),
  });
  await Deno.mkdir(dir, { recursive: true });
  const weightsFile = `${name}.safetensors`;
  const sidecarPath = join(dir, `${name}.json`);
  // Replacing a checkpoint of the same name: withdraw its commit marker first.
  await Deno.remove(sidecarPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await writeFileAtomic(join(dir, weightsFile), bytes);
  const sidecar: CheckpointSidecar = {
    format: FORMAT,
    version: VERSION,
    name,
    weightsFile,
    sha256: await sha256Hex(bytes),
    bytes: bytes.length,
    epoch: state.epoch,
    step: state.step,
    config: state.config ?? null,
    optimizer: state.optimizer
      ? { kind: state.optimizer.kind, iterations: state.optimizer.iterations }
      : null,
    rng: state.rng ?? null,
    history: state.history ?? [],
    extra: state.extra ?? {},
    savedAt: new Date().toISOString(),
  };
  await writeFileAtomic(sidecarPath, new TextEncoder().encode(JSON.stringify(sidecar, null, 1)));
  if (keep > 0) {
    const all = await listCheckpoints(dir);
    const stale = all.filter((c) => c.name !== name).slice(0, Math.max(0, all.length - keep));
    for (const c of stale) {
      await Deno.remove(c.path); // the commit marker first
      await Deno.remove(join(dir, `${c.name}.safetensors`)).catch(() => {});
    }
  }
  return sidecarPath;
}

async function parseSidecar(path: string): Promise<CheckpointSidecar> {
  let sidecar: CheckpointSidecar;
  try {
    sidecar = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`Cannot read checkpoint sidecar ${path}: ${(e as Error).message}`);
  }
  if (
    typeof sidecar !== "object" || sidecar === null || sidecar.format !== FORMAT ||
    typeof sidecar.weightsFile !== "string" || typeof sidecar.sha256 !== "string" ||
    !Number.isInteger(sidecar.step) || !Number.isInteger(sidecar.epoch)
  ) {
    throw new Error(`Cannot read checkpoint sidecar ${path}: not an ${FORMAT} sidecar`);
  }
  if (sidecar.version !== VERSION) {
    throw new Error(
      `Cannot read checkpoint ${path}: sidecar version ${sidecar.version}, this code reads ${VERSION}`,
    );
  }
  if (sidecar.weightsFile.includes("/")) {
    throw new Error(`Cannot read checkpoint ${path}: weightsFile must be a bare file name`);
  }
  return sidecar;
}

/**
 * Reads a checkpoint and checks that it is complete: the sidecar is valid, the weights file exists
 * and its size and SHA-256 match the sidecar.
 *
 * @param path The sidecar path (`<dir>/<name>.json`), e.g. from {@linkcode latestCheckpoint}.
 * @returns Sidecar, model weights and optimizer state.
 * @throws {Error} If a file is missing, the files disagree, or the weights file is malformed.
 */
export async function readCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const sidecar = await parseSidecar(path);
  const weightsPath = join(dirname(path), sidecar.weightsFile);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(weightsPath);
  } catch (e) {
    throw new Error(
      `Checkpoint ${path} is incomplete: cannot read its weights ${weightsPath} (${
        (e as Error).message
      })`,
    );
  }
  if (bytes.length !== sidecar.bytes || (await sha256Hex(bytes)) !== sidecar.sha256) {
    throw new Error(
      `Checkpoint ${path} is incomplete: ${weightsPath} does not match its sidecar (size or ` +
        `SHA-256 differ; the run was probably killed while writing). Use an earlier checkpoint.`,
    );
  }
  const file = decodeSafetensors(bytes, weightsPath);
  const weights = new Map<string, SafetensorsTensor>();
  const optim = new Map<string, SafetensorsTensor>();
  for (const [n, t] of file.tensors) {
    if (n.startsWith(OPTIMIZER_PREFIX)) optim.set(n.slice(OPTIMIZER_PREFIX.length), t);
    else weights.set(n, t);
  }
  const optimizer = sidecar.optimizer
    ? { kind: sidecar.optimizer.kind, iterations: sidecar.optimizer.iterations, tensors: optim }
    : undefined;
  return { path, sidecar, weights, optimizer };
}

/**
 * Lists the complete checkpoints of a directory (sidecar valid, weights present with the
 * recorded size), oldest first by step. Partial files (`*.part`) and orphaned weights are ignored.
 * The SHA-256 is verified by {@linkcode readCheckpoint}.
 *
 * @param dir The checkpoint directory.
 * @returns The entries, sorted by step then name; empty if the directory does not exist.
 */
export async function listCheckpoints(dir: string): Promise<CheckpointEntry[]> {
  const out: CheckpointEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = join(dir, entry.name);
      let sidecar: CheckpointSidecar;
      try {
        sidecar = await parseSidecar(path);
      } catch {
        continue;
      }
      const weights = join(dir, sidecar.weightsFile);
      if (!(await exists(weights)) || (await Deno.stat(weights)).size !== sidecar.bytes) continue;
      out.push({ path, name: sidecar.name, epoch: sidecar.epoch, step: sidecar.step });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return out.sort((a, b) => a.step - b.step || a.name.localeCompare(b.name));
}

/**
 * Finds the newest complete checkpoint of a directory whose weights verify.
 *
 * @param dir The checkpoint directory.
 * @returns The sidecar path, or undefined if there is none.
 */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  const all = await listCheckpoints(dir);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      await readCheckpoint(all[i].path);
      return all[i].path;
    } catch {
      // incomplete or corrupt: fall back to the previous one
    }
  }
  return undefined;
}

/**
 * Whether every value of a loaded checkpoint (weights and optimizer tensors) is finite.
 *
 * @param checkpoint A checkpoint from {@linkcode readCheckpoint}.
 * @returns The names of the first few tensors holding NaN or infinity (empty when finite).
 * @example
 * ```ts
 * import { nonFiniteTensors } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const t = (v: number) => ({ dtype: "F32" as const, shape: [1], data: new Float32Array([v]) });
 * const ckpt = { weights: new Map([["a", t(1)], ["b", t(NaN)]]), optimizer: undefined };
 * assert.deepEqual(nonFiniteTensors(ckpt), ["b"]);
 * ```
 */
export function nonFiniteTensors(
  checkpoint: Pick<LoadedCheckpoint, "weights" | "optimizer">,
): string[] {
  const bad: string[] = [];
  const scan = (prefix: string, tensors: ReadonlyMap<string, SafetensorsTensor>): void => {
    for (const [name, t] of tensors) {
      if (bad.length >= 8) return;
      if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
      const data = t.data;
      for (let i = 0; i < data.length; i++) {
        // x - x is 0 for finite x and NaN for NaN and +-Infinity.
        if (data[i] - data[i] !== 0) {
          bad.push(prefix + name);
          break;
        }
      }
    }
  };
  scan("", checkpoint.weights);
  if (checkpoint.optimizer) scan(OPTIMIZER_PREFIX, checkpoint.optimizer.tensors);
  return bad;
}

/** What {@linkcode latestFiniteCheckpoint} found. */
export interface FiniteCheckpointSearch {
  /** The newest complete checkpoint whose every value is finite, or undefined. */
  readonly path: string | undefined;
  /** That checkpoint, as read and checked (so a caller need not read it again). */
  readonly loaded: LoadedCheckpoint | undefined;
  /** Newer complete checkpoints skipped because they hold NaN or infinity, newest first. */
  readonly nonFinite: readonly { readonly path: string; readonly tensors: readonly string[] }[];
}

/**
 * Finds the newest complete checkpoint of a directory whose weights and optimizer state are all
 * finite (read and checked, not assumed): the one to resume from after a NaN stop.
 *
 * @param dir The checkpoint directory.
 * @returns Its path (or undefined) and the newer non-finite checkpoints that were skipped.
 * @example
 * ```ts
 * import { latestFiniteCheckpoint, saveCheckpoint } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const w = tf.variable(tf.ones([2]));
 * const good = await saveCheckpoint(dir, [["w", w]], { epoch: 1, step: 1 });
 * w.assign(tf.tensor1d([NaN, 1]));
 * const bad = await saveCheckpoint(dir, [["w", w]], { epoch: 2, step: 2 });
 * const found = await latestFiniteCheckpoint(dir);
 * assert.equal(found.path, good);
 * assert.deepEqual(found.nonFinite, [{ path: bad, tensors: ["w"] }]);
 * w.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function latestFiniteCheckpoint(dir: string): Promise<FiniteCheckpointSearch> {
  const all = await listCheckpoints(dir);
  const nonFinite: { path: string; tensors: string[] }[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    let ckpt: LoadedCheckpoint;
    try {
      ckpt = await readCheckpoint(all[i].path);
    } catch {
      continue; // incomplete or corrupt
    }
    const bad = nonFiniteTensors(ckpt);
    if (bad.length === 0) return { path: all[i].path, loaded: ckpt, nonFinite };
    nonFinite.push({ path: all[i].path, tensors: bad });
  }
  return { path: undefined, loaded: undefined, nonFinite };
}
