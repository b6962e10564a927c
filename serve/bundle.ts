/**
 * The single-file model bundle (`.mfi`): everything inference needs, nothing else. A bundle is a
 * safetensors file whose tensors are the model's trainable weights and batch-norm running
 * statistics (float32, named as `model.namedVariables()` names them; no optimizer state) and whose
 * string metadata holds:
 *
 * | key | value |
 * | --- | --- |
 * | `format` | `"mfi-bundle/1"` |
 * | `spec` | the {@linkcode ModelSpec} as JSON (architecture as data) |
 * | `class_names` | JSON array of `spec.classes` label strings |
 * | `normalization` | JSON `{ "mean": [r, g, b], "std": [r, g, b] }` applied to pixels / 255 |
 * | `parameters` | trainable parameter count, decimal |
 * | `accuracy` | JSON `{ "top1", "dataset", "split", "examples", "subset"? }` recorded at export, or `null` |
 * | `name` | free text describing the model |
 * | `backend` | JSON `{ "label", "softwareAdapter" }`: the backend that produced the weights, or `null` if unknown (optional: bundles written before it existed lack it) |
 * | `tensor_sha256` | hex SHA-256 of the tensor data section (every byte after the header) |
 * | `header_sha256` | hex SHA-256 of the canonical header: the other metadata and the tensor table |
 *
 * Reading never evaluates anything from the file (`JSON.parse` only) and rejects truncated,
 * padded or tampered files: the safetensors layout is validated, both hashes are recomputed, every
 * metadata field is validated, and {@linkcode instantiateBundle} checks the tensor names, shapes
 * and dtypes against the model the spec builds.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  activeBackend,
  backendLabel,
  countParameters,
  decodeSafetensors,
  encodeSafetensors,
  labelSaysSoftwareAdapter,
  type Module,
  type SafetensorsTensor,
  sha256Hex,
  variableMap,
} from "@mfi/core";
import { RESNET_ARCHS, type StagedModel } from "@mfi/resnet";
import {
  buildModel,
  countSpecParameters,
  type ModelSpec,
  validateModelSpec,
} from "@mfi/incubation";

/** The bundle format tag written into, and required in, every bundle. */
export const BUNDLE_FORMAT = "mfi-bundle/1";

/** Per-channel input normalisation: `x = (pixel / 255 - mean) / std`. */
export interface Normalization {
  /** Channel means (R, G, B) of pixels scaled to [0, 1]. */
  readonly mean: readonly [number, number, number];
  /** Channel standard deviations (R, G, B), all > 0. */
  readonly std: readonly [number, number, number];
}

/** The accuracy a model reached when it was evaluated (recorded, not recomputed). */
export interface BundleAccuracy {
  /** Top-1 accuracy as a fraction in [0, 1]. */
  readonly top1: number;
  /** Dataset name, e.g. `"cifar10"`. */
  readonly dataset: string;
  /** Split, e.g. `"test"`. */
  readonly split: string;
  /** Number of evaluated examples. */
  readonly examples: number;
  /**
   * Which examples of the split: `all`, the `first` `examples` images, or the first
   * `examples / classes` images of each class (`first-per-class`). Default `all`.
   */
  readonly subset?: "all" | "first" | "first-per-class";
}

/** The backend that produced a bundle's weights (trained them), as recorded in the bundle. */
export interface BundleBackend {
  /**
   * The backend as results record it (`backendLabel` in `@mfi/core`), e.g.
   * `wasm (SIMD, 2 threads)` or `webgpu (software adapter: llvmpipe ..., vendor 65541, device 0)`.
   */
  readonly label: string;
  /**
   * True when the weights were made with WebGPU on a software adapter, which only
   * `--allow-software-adapter` (`MFI_ALLOW_SOFTWARE_ADAPTER=1`) allows: a test run, not a model.
   */
  readonly softwareAdapter: boolean;
}

/** What a caller supplies besides the model and its spec. */
export interface BundleMeta {
  /** One label per class, in class-index order. */
  readonly classNames: readonly string[];
  /** Input normalisation the model was trained with. */
  readonly normalization: Normalization;
  /** Recorded accuracy, or `null`/absent if unknown. */
  readonly accuracy?: BundleAccuracy | null;
  /** Free-text name (default: `"<family> <arch> x<width>"`). */
  readonly name?: string;
  /**
   * The backend that produced the weights; `null` records "unknown". Default: the backend
   * `selectBackend` chose, if it is still the active one (the weights were trained in this
   * process), else `null`. Pass it when the weights come from elsewhere (a checkpoint).
   */
  readonly backend?: BundleBackend | null;
}

/** The validated description of a bundle. */
export interface BundleInfo {
  /** Always {@linkcode BUNDLE_FORMAT}. */
  readonly format: typeof BUNDLE_FORMAT;
  /** The architecture. */
  readonly spec: ModelSpec;
  /** Labels by class index. */
  readonly classNames: readonly string[];
  /** Input normalisation. */
  readonly normalization: Normalization;
  /** Trainable parameter count. */
  readonly parameters: number;
  /** Recorded accuracy, or `null`. */
  readonly accuracy: BundleAccuracy | null;
  /** Free-text name. */
  readonly name: string;
  /**
   * The backend that produced the weights, or `null` when the bundle does not say (unknown, or
   * written before bundles recorded it).
   */
  readonly backend: BundleBackend | null;
  /** Hex SHA-256 of the tensor data. */
  readonly tensorSha256: string;
}

/** A read and verified bundle: its description and its tensors. */
export interface Bundle {
  /** The validated metadata. */
  readonly info: BundleInfo;
  /** Weights and buffers by variable name. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>;
}

/**
 * What a bundle's spec may ask for. A bundle's SHA-256s prove integrity, not authenticity: anyone
 * can write a bundle whose spec declares a huge model. These limits are checked from the spec
 * alone (counting, never building) before any model is built.
 */
export interface BundleLimits {
  /** Most trainable parameters (default 200,000,000: ResNet-101 x2 on 1,000 classes fits). */
  readonly maxParameters?: number;
  /** Largest width multiplier (default 4). */
  readonly maxWidth?: number;
  /** Most classes (default 10,000). */
  readonly maxClasses?: number;
  /** Most residual blocks in one MeanFlow velocity network (default 64). */
  readonly maxMeanFlowBlocks?: number;
  /**
   * Accept architectures given as data instead of a known name (`resnet18`, `resnet34`,
   * `resnet50`, `resnet101`); default false. Custom architectures still obey the other limits
   * and may have at most 64 blocks per stage.
   */
  readonly customArchitectures?: boolean;
}

/** The limits {@linkcode readBundle} and {@linkcode instantiateBundle} apply by default. */
export const DEFAULT_BUNDLE_LIMITS: Readonly<Required<BundleLimits>> = Object.freeze({
  maxParameters: 200_000_000,
  maxWidth: 4,
  maxClasses: 10_000,
  maxMeanFlowBlocks: 64,
  customArchitectures: false,
});

const MAX_CUSTOM_STAGE_DEPTH = 64;

/** Options of {@linkcode readBundle}. */
export interface ReadBundleOptions {
  /** A name for error messages (a path or URL; default `"bundle"`). */
  readonly source?: string;
  /** What the spec may ask for (defaults: {@linkcode DEFAULT_BUNDLE_LIMITS}). */
  readonly limits?: BundleLimits;
}

/** True for batch-norm running statistics: buffers stored in a bundle but not parameters. */
function isBuffer(name: string): boolean {
  return name.endsWith(".running_mean") || name.endsWith(".running_var");
}

/**
 * Checks a validated spec against limits and against the tensors a bundle holds, without building
 * anything: a known architecture (unless custom ones are allowed), width, class count and
 * MeanFlow depth within limits, the parameter count computed from the spec within the maximum and
 * equal to the number of parameter values in the tensors (batch-norm running statistics aside).
 * Runs in microseconds whatever the spec claims, so a bundle declaring a huge model is refused
 * before building it could take gigabytes.
 *
 * @param spec A spec that passed `validateModelSpec`.
 * @param tensors The bundle's tensors by name.
 * @param options A source name for messages and the limits.
 * @throws {BundleError} Naming the limit or the mismatch, and how to lift a limit.
 * @example
 * ```ts
 * import { resnetSpec } from "@mfi/incubation";
 * import { BundleError, checkBundleSpec } from "@mfi/serve";
 * import assert from "node:assert/strict";
 * const huge = resnetSpec("resnet101", 10, 64);
 * assert.throws(() => checkBundleSpec(huge, new Map()), BundleError);
 * assert.throws(() => checkBundleSpec(huge, new Map()), /width 64 exceeds the limit of 4/);
 * ```
 */
export function checkBundleSpec(
  spec: ModelSpec,
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  options: ReadBundleOptions = {},
): void {
  const source = options.source ?? "bundle";
  const limits = { ...DEFAULT_BUNDLE_LIMITS, ...options.limits };
  const bad = (what: string): never => {
    throw new BundleError(`Cannot load ${source}: ${what}`);
  };
  if (typeof spec.arch !== "string") {
    if (!limits.customArchitectures) {
      bad(
        `its spec describes a custom architecture; only ${
          Object.keys(RESNET_ARCHS).join(", ")
        } are accepted (set limits.customArchitectures to allow custom ones)`,
      );
    }
    const deepest = Math.max(...spec.arch.depths);
    if (deepest > MAX_CUSTOM_STAGE_DEPTH) {
      bad(
        `its custom architecture has a stage of ${deepest} blocks (limit ${MAX_CUSTOM_STAGE_DEPTH})`,
      );
    }
  } else if (!Object.hasOwn(RESNET_ARCHS, spec.arch)) {
    bad(`unknown architecture ${JSON.stringify(spec.arch)}`);
  }
  if (spec.width > limits.maxWidth) {
    bad(`width ${spec.width} exceeds the limit of ${limits.maxWidth} (limits.maxWidth)`);
  }
  if (spec.classes > limits.maxClasses) {
    bad(`${spec.classes} classes exceed the limit of ${limits.maxClasses} (limits.maxClasses)`);
  }
  for (const [i, stage] of spec.stages.entries()) {
    if (stage.kind === "meanflow" && stage.config.blocks > limits.maxMeanFlowBlocks) {
      bad(
        `stage ${i} has ${stage.config.blocks} MeanFlow blocks, over the limit of ` +
          `${limits.maxMeanFlowBlocks} (limits.maxMeanFlowBlocks)`,
      );
    }
  }
  const expected = countSpecParameters(spec).total;
  if (!(expected <= limits.maxParameters)) {
    bad(
      `its spec describes ${expected} parameters, over the limit of ${limits.maxParameters} ` +
        `(limits.maxParameters)`,
    );
  }
  let stored = 0;
  let buffers = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (isBuffer(name)) buffers += n;
    else stored += n;
  }
  if (stored !== expected || buffers > stored) {
    bad(
      `its spec describes ${expected} parameters but its tensors hold ${stored} parameter values ` +
        `(and ${buffers} batch-norm statistics): the spec does not describe these weights`,
    );
  }
}

/** Thrown when a bundle is malformed, tampered or does not match its spec. */
export class BundleError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong, naming the source.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BundleError";
  }
}

const META_KEYS = [
  "format",
  "spec",
  "class_names",
  "normalization",
  "parameters",
  "accuracy",
  "name",
  "tensor_sha256",
  "header_sha256",
] as const;
/** Metadata a bundle may lack: added after bundles existed, so older bundles still load. */
const OPTIONAL_META_KEYS = ["backend"] as const;
const HASH_KEYS = new Set(["tensor_sha256", "header_sha256"]);

type TableEntry = readonly [name: string, dtype: string, shape: readonly number[], begin: number];

/** The canonical bytes `header_sha256` covers: sorted non-hash metadata + the tensor table. */
function canonicalHeader(
  metadata: Record<string, string>,
  table: readonly TableEntry[],
): Uint8Array {
  const meta = Object.keys(metadata).filter((k) => !HASH_KEYS.has(k)).sort().map((k) => [
    k,
    metadata[k],
  ]);
  const tensors = [...table].sort((a, b) => a[3] - b[3]);
  return new TextEncoder().encode(JSON.stringify({ metadata: meta, tensors }));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(what: string, value: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(value)) {
    if (!keys.includes(k)) {
      throw new TypeError(`${what}: unknown key "${k}"; allowed keys are ${keys.join(", ")}`);
    }
  }
  for (const k of keys) {
    if (value[k] === undefined) throw new TypeError(`${what}: "${k}" is missing`);
  }
}

/**
 * Validates bundle metadata supplied by a caller or read from a file.
 *
 * @param raw Candidate {@linkcode BundleMeta}.
 * @param classes The spec's class count.
 * @returns A frozen, validated copy (accuracy `null` when absent).
 * @throws {TypeError} On a wrong type, a missing or unknown key.
 * @throws {RangeError} On an out-of-range value.
 */
function validateMeta(
  raw: BundleMeta,
  classes: number,
): Required<Omit<BundleMeta, "name" | "backend">> & {
  name: string | undefined;
  backend: BundleBackend | null | undefined;
} {
  const names = raw.classNames;
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string" && n.length > 0)) {
    throw new TypeError(`Bundle meta: classNames must be an array of non-empty strings`);
  }
  if (names.length !== classes) {
    throw new RangeError(
      `Bundle meta: classNames has ${names.length} labels but the spec has ${classes} classes`,
    );
  }
  const norm = raw.normalization as unknown;
  if (!isRecord(norm)) throw new TypeError(`Bundle meta: normalization must be an object`);
  checkKeys("Bundle meta normalization", norm, ["mean", "std"]);
  for (const k of ["mean", "std"] as const) {
    const v = norm[k];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isFinite(x))) {
      throw new TypeError(
        `Bundle meta: normalization.${k} must be 3 finite numbers, got ${JSON.stringify(v)}`,
      );
    }
    if (k === "std" && !v.every((x) => x > 0)) {
      throw new RangeError(`Bundle meta: normalization.std must be > 0, got ${JSON.stringify(v)}`);
    }
  }
  const acc = raw.accuracy ?? null;
  if (acc !== null) {
    if (!isRecord(acc)) throw new TypeError(`Bundle meta: accuracy must be an object or null`);
    const subset = acc.subset;
    const { subset: _, ...required } = acc;
    checkKeys("Bundle meta accuracy", required, ["top1", "dataset", "split", "examples"]);
    if (subset !== undefined && !["all", "first", "first-per-class"].includes(subset as string)) {
      throw new TypeError(
        `Bundle meta: accuracy.subset must be all, first or first-per-class, got ${
          JSON.stringify(subset)
        }`,
      );
    }
    if (typeof acc.top1 !== "number" || !(acc.top1 >= 0 && acc.top1 <= 1)) {
      throw new RangeError(`Bundle meta: accuracy.top1 must be in [0, 1], got ${acc.top1}`);
    }
    for (const k of ["dataset", "split"] as const) {
      if (typeof acc[k] !== "string") {
        throw new TypeError(`Bundle meta: accuracy.${k} must be a string`);
      }
    }
    if (!Number.isInteger(acc.examples) || (acc.examples as number) < 1) {
      throw new RangeError(
        `Bundle meta: accuracy.examples must be a positive integer, got ${acc.examples}`,
      );
    }
  }
  if (raw.name !== undefined && typeof raw.name !== "string") {
    throw new TypeError(`Bundle meta: name must be a string`);
  }
  const backend = raw.backend === undefined ? undefined : validateBackend(raw.backend);
  const n = norm as unknown as Normalization;
  return Object.freeze({
    classNames: Object.freeze([...names]),
    normalization: Object.freeze({
      mean: Object.freeze([...n.mean]) as unknown as Normalization["mean"],
      std: Object.freeze([...n.std]) as unknown as Normalization["std"],
    }),
    accuracy: acc === null ? null : Object.freeze({ ...acc }) as unknown as BundleAccuracy,
    name: raw.name,
    backend,
  });
}

/**
 * Validates a recorded backend: `null`, or a non-empty label and a software-adapter flag that
 * agree (only a WebGPU label can be a software adapter, and a label naming one needs the flag).
 */
function validateBackend(raw: unknown): BundleBackend | null {
  if (raw === null) return null;
  if (!isRecord(raw)) {
    throw new TypeError(`Bundle meta: backend must be { label, softwareAdapter } or null`);
  }
  checkKeys("Bundle meta backend", raw, ["label", "softwareAdapter"]);
  const { label, softwareAdapter } = raw;
  if (typeof label !== "string" || label.trim() === "") {
    throw new TypeError(
      `Bundle meta: backend.label must be a non-empty string, got ${JSON.stringify(label)}`,
    );
  }
  if (typeof softwareAdapter !== "boolean") {
    throw new TypeError(
      `Bundle meta: backend.softwareAdapter must be true or false, got ${
        JSON.stringify(softwareAdapter)
      }`,
    );
  }
  if (softwareAdapter && !label.startsWith("webgpu")) {
    throw new RangeError(
      `Bundle meta: backend.softwareAdapter is true but the backend is ${JSON.stringify(label)}; ` +
        `only webgpu runs on a software adapter`,
    );
  }
  if (!softwareAdapter && labelSaysSoftwareAdapter(label)) {
    throw new RangeError(
      `Bundle meta: backend.label ${JSON.stringify(label)} names a software adapter but ` +
        `backend.softwareAdapter is false`,
    );
  }
  return Object.freeze({ label, softwareAdapter });
}

/** The backend that made the weights in this process: the one selectBackend chose, if active. */
function currentBackend(): BundleBackend | null {
  const choice = activeBackend();
  return choice === undefined
    ? null
    : { label: backendLabel(choice), softwareAdapter: choice.softwareAdapter === true };
}

function defaultName(spec: ModelSpec): string {
  const arch = typeof spec.arch === "string" ? spec.arch : "custom";
  return `${spec.family} ${arch} x${spec.width} (${spec.classes} classes)`;
}

/**
 * Serialises a model into a bundle (see the module doc for the layout): every named variable
 * (weights and batch-norm running statistics) as float32, plus the spec, labels, normalisation,
 * parameter count, recorded accuracy, the backend that produced the weights and two SHA-256
 * digests. Reads variables asynchronously, so it works on every backend. Returns bytes (write them
 * with `Deno.writeFile` where allowed).
 *
 * @param model The trained model, e.g. from {@linkcode buildModel}.
 * @param spec The spec the model was built from.
 * @param meta Labels, normalisation, accuracy, name and backend.
 * @returns The bundle's bytes.
 * @throws {BundleError} If the model's variables do not match what `spec` builds (names, shapes)
 *   or the parameter counts disagree.
 * @throws {TypeError | RangeError} If the spec or the metadata is invalid.
 * @example
 * ```ts
 * import { buildModel, resnetSpec } from "@mfi/incubation";
 * import { readBundle, writeBundle } from "@mfi/serve";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 2, 1 / 32);
 * const model = buildModel(spec, { seed: 1 });
 * const bytes = await writeBundle(model, spec, {
 *   classNames: ["cat", "dog"],
 *   normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
 *   backend: { label: "cpu", softwareAdapter: false },
 * });
 * const bundle = await readBundle(bytes);
 * assert.deepEqual(bundle.info.classNames, ["cat", "dog"]);
 * assert.deepEqual(bundle.info.backend, { label: "cpu", softwareAdapter: false });
 * disposeModule(model);
 * ```
 */
export async function writeBundle(
  model: Module,
  spec: ModelSpec,
  meta: BundleMeta,
): Promise<Uint8Array> {
  const s = validateModelSpec(spec);
  const m = validateMeta(meta, s.classes);
  const vars = variableMap(model.namedVariables());
  const expected = countSpecParameters(s).total;
  const actual = countParameters(model);
  if (actual !== expected) {
    throw new BundleError(
      `Cannot write bundle: the model has ${actual} parameters but its spec describes ${expected}; ` +
        `pass the spec the model was built from`,
    );
  }
  const tensors = new Map<string, SafetensorsTensor>();
  const table: TableEntry[] = [];
  let offset = 0;
  for (const [name, v] of vars) {
    if (v.dtype !== "float32") {
      throw new BundleError(`Cannot write bundle: variable "${name}" is ${v.dtype}, not float32`);
    }
    const data = new Float32Array(await v.data() as Float32Array);
    tensors.set(name, { dtype: "F32", shape: v.shape, data });
    table.push([name, "F32", [...v.shape], offset]);
    offset += data.byteLength;
  }
  const metadata: Record<string, string> = {
    format: BUNDLE_FORMAT,
    spec: JSON.stringify(s),
    class_names: JSON.stringify(m.classNames),
    normalization: JSON.stringify(m.normalization),
    parameters: String(actual),
    accuracy: JSON.stringify(m.accuracy),
    name: m.name ?? defaultName(s),
    backend: JSON.stringify(m.backend === undefined ? currentBackend() : m.backend),
  };
  const dataBytes = new Uint8Array(offset);
  let pos = 0;
  for (const t of tensors.values()) {
    dataBytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  metadata.tensor_sha256 = await sha256Hex(dataBytes);
  metadata.header_sha256 = await sha256Hex(canonicalHeader(metadata, table));
  return encodeSafetensors(tensors, metadata);
}

function parseJson(source: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BundleError(
      `Cannot read ${source}: metadata "${key}" is not valid JSON (${(e as Error).message})`,
    );
  }
}

/**
 * Reads and verifies a bundle: safetensors layout, metadata keys and values, both SHA-256
 * digests, the spec against limits and the tensors' total size ({@linkcode checkBundleSpec}),
 * float32 dtypes, and the parameter count against the spec. Nothing in the file is executed;
 * JSON is only parsed. Creates no tensors.
 *
 * @param bytes The whole `.mfi` file.
 * @param options A source name for error messages, limits on the spec.
 * @returns The verified bundle.
 * @throws {BundleError} If the file is truncated, padded, tampered with, of another format,
 *   inconsistent, or its spec is over a limit; the message names the source and the problem.
 * @example
 * ```ts
 * import { readBundle } from "@mfi/serve";
 * import assert from "node:assert/strict";
 * await assert.rejects(readBundle(new Uint8Array(3), { source: "x.mfi" }), /x\.mfi/);
 * ```
 */
export async function readBundle(
  bytes: Uint8Array,
  options: ReadBundleOptions = {},
): Promise<Bundle> {
  const source = options.source ?? "bundle";
  let file;
  try {
    file = decodeSafetensors(bytes, source);
  } catch (e) {
    throw new BundleError((e as Error).message, { cause: e });
  }
  const md = file.metadata;
  const bad = (what: string): never => {
    throw new BundleError(`Cannot read ${source}: ${what}`);
  };
  if (md.format !== BUNDLE_FORMAT) {
    bad(
      `format is ${JSON.stringify(md.format)}, expected "${BUNDLE_FORMAT}" ` +
        `(is this a training checkpoint? convert it with \`deno task export\`)`,
    );
  }
  const known: readonly string[] = [...META_KEYS, ...OPTIONAL_META_KEYS];
  for (const k of Object.keys(md)) {
    if (!known.includes(k)) bad(`unknown metadata key "${k}"`);
  }
  for (const k of META_KEYS) if (md[k] === undefined) bad(`metadata "${k}" is missing`);
  // Hashes first: a tampered file is reported as tampered, not as whatever it now looks like.
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const table: TableEntry[] = Object.entries(header).filter(([k]) => k !== "__metadata__").map((
    [name, e],
  ) => [name, e.dtype, e.shape, e.data_offsets[0]]);
  const dataHash = await sha256Hex(bytes.subarray(8 + headerLen));
  if (dataHash !== md.tensor_sha256) {
    bad(
      `tensor data SHA-256 is ${dataHash} but the bundle records ${md.tensor_sha256}: ` +
        `the weights were modified or corrupted; export the bundle again`,
    );
  }
  const headerHash = await sha256Hex(canonicalHeader(md, table));
  if (headerHash !== md.header_sha256) {
    bad(
      `header SHA-256 is ${headerHash} but the bundle records ${md.header_sha256}: ` +
        `the metadata or tensor table was modified; export the bundle again`,
    );
  }
  let spec: ModelSpec;
  try {
    spec = validateModelSpec(parseJson(source, "spec", md.spec));
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(`Cannot read ${source}: ${(e as Error).message}`, { cause: e });
  }
  checkBundleSpec(spec, file.tensors, options);
  let meta;
  try {
    meta = validateMeta({
      classNames: parseJson(source, "class_names", md.class_names) as string[],
      normalization: parseJson(source, "normalization", md.normalization) as Normalization,
      accuracy: parseJson(source, "accuracy", md.accuracy) as BundleAccuracy | null,
      name: md.name,
      // Absent in bundles written before the field existed: unknown.
      backend: md.backend === undefined
        ? null
        : parseJson(source, "backend", md.backend) as BundleBackend | null,
    }, spec.classes);
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(`Cannot read ${source}: ${(e as Error).message}`, { cause: e });
  }
  if (!/^\d+$/.test(md.parameters)) bad(`parameters is not a count: ${md.parameters}`);
  const parameters = Number(md.parameters);
  const expected = countSpecParameters(spec).total;
  if (parameters !== expected) {
    bad(`parameters says ${parameters} but the spec describes ${expected}`);
  }
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "F32") bad(`tensor "${name}" is ${t.dtype}; bundles hold F32 only`);
  }
  return Object.freeze({
    info: Object.freeze({
      format: BUNDLE_FORMAT,
      spec,
      classNames: meta.classNames,
      normalization: meta.normalization,
      parameters,
      accuracy: meta.accuracy,
      name: meta.name ?? defaultName(spec),
      backend: meta.backend ?? null,
      tensorSha256: md.tensor_sha256,
    }),
    tensors: file.tensors,
  });
}

/** Options of {@linkcode instantiateBundle}. */
export interface InstantiateBundleOptions {
  /** A name for error messages (default `"bundle"`). */
  readonly source?: string;
  /** What the spec may ask for (defaults: {@linkcode DEFAULT_BUNDLE_LIMITS}). */
  readonly limits?: BundleLimits;
}

/**
 * Builds the model a bundle's spec describes and loads the bundle's tensors into it, after
 * checking that the names, shapes and dtypes match exactly (no missing, unexpected or misshapen
 * tensor). Select the backend before calling this: it creates the model's variables.
 *
 * @param bundle A bundle from {@linkcode readBundle}.
 * @param options Limits on the spec (checked again before building, see
 *   {@linkcode checkBundleSpec}).
 * @returns The model in inference-ready state (call `model.apply(x, { training: false })`).
 * @throws {BundleError} If the spec is over a limit or the tensors do not match the model built
 *   from the spec.
 * @example
 * ```ts
 * import { buildModel, resnetSpec } from "@mfi/incubation";
 * import { instantiateBundle, readBundle, writeBundle } from "@mfi/serve";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 2, 1 / 32);
 * const model = buildModel(spec, { seed: 1 });
 * const bytes = await writeBundle(model, spec, {
 *   classNames: ["a", "b"],
 *   normalization: { mean: [0, 0, 0], std: [1, 1, 1] },
 * });
 * const copy = instantiateBundle(await readBundle(bytes));
 * const [w] = model.namedVariables()[0];
 * assert.equal(w, copy.namedVariables()[0][0]);
 * disposeModule(model);
 * disposeModule(copy);
 * ```
 */
export function instantiateBundle(
  bundle: Bundle,
  options: InstantiateBundleOptions = {},
): StagedModel {
  // Checked again here: a Bundle can be assembled by hand, and building is what costs memory.
  checkBundleSpec(bundle.info.spec, bundle.tensors, options);
  // Built inside tidy: layers create their variables from temporary initial tensors, which
  // tidy frees (variables themselves survive tidy).
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(bundle.info.spec, { seed: 0 });
  });
  try {
    const vars = variableMap(model.namedVariables());
    const missing = [...vars.keys()].filter((k) => !bundle.tensors.has(k));
    const unexpected = [...bundle.tensors.keys()].filter((k) => !vars.has(k));
    if (missing.length || unexpected.length) {
      throw new BundleError(
        `Cannot load bundle: its tensors do not match the model its spec builds` +
          (missing.length ? `; missing ${missing.slice(0, 5).join(", ")}` : "") +
          (missing.length > 5 ? ` and ${missing.length - 5} more` : "") +
          (unexpected.length ? `; unexpected ${unexpected.slice(0, 5).join(", ")}` : "") +
          (unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ""),
      );
    }
    for (const [name, v] of vars) {
      const t = bundle.tensors.get(name)!;
      if (
        t.dtype !== "F32" || t.shape.length !== v.shape.length ||
        t.shape.some((d, i) => d !== v.shape[i])
      ) {
        throw new BundleError(
          `Cannot load bundle: tensor "${name}" is ${t.dtype} [${t.shape}], the spec's model needs F32 [${v.shape}]`,
        );
      }
    }
    for (const [name, v] of vars) {
      const t = bundle.tensors.get(name)!;
      const value = tf.tensor(t.data as Float32Array, v.shape, "float32");
      v.assign(value);
      value.dispose();
    }
    return model;
  } catch (e) {
    for (const [, v] of model.namedVariables()) v.dispose();
    throw e;
  }
}
