/**
 * Typed run configs from layers of values (YAML files, parsed flags), validated once: a schema
 * lists every key with its type, range and default; unknown keys and wrong types are errors that
 * name the key, say where it came from and list the valid keys; the resolved config is frozen.
 *
 * Keys are camelCase (`batchSize`); a layer may also spell them `batch-size` or `batch_size`.
 * Command lines are the entry points' business (the repository's `tasks/_cli.ts`).
 *
 * @module
 */
import yaml from "js-yaml";

/** A numeric key. */
export interface NumberField {
  /** Type tag. */
  readonly type: "number";
  /** Default value; without one the key is optional (undefined) unless `required`. */
  readonly default?: number;
  /** Inclusive minimum. */
  readonly min?: number;
  /** Inclusive maximum. */
  readonly max?: number;
  /** Only whole numbers. */
  readonly integer?: boolean;
  /** Must be given. */
  readonly required?: boolean;
  /** One-line help. */
  readonly doc?: string;
}

/** A string key, optionally restricted to choices. */
export interface StringField {
  /** Type tag. */
  readonly type: "string";
  /** Default value. */
  readonly default?: string;
  /** Allowed values. */
  readonly choices?: readonly string[];
  /** Must be given. */
  readonly required?: boolean;
  /** One-line help. */
  readonly doc?: string;
}

/** A boolean key (a flag on the command line). */
export interface BooleanField {
  /** Type tag. */
  readonly type: "boolean";
  /** Default value. */
  readonly default?: boolean;
  /** Must be given. */
  readonly required?: boolean;
  /** One-line help. */
  readonly doc?: string;
}

/** A list of numbers (comma-separated on the command line). */
export interface NumberListField {
  /** Type tag. */
  readonly type: "number[]";
  /** Default value. */
  readonly default?: readonly number[];
  /** Inclusive minimum of each element. */
  readonly min?: number;
  /** Inclusive maximum of each element. */
  readonly max?: number;
  /** Only whole numbers. */
  readonly integer?: boolean;
  /** Must be given. */
  readonly required?: boolean;
  /** One-line help. */
  readonly doc?: string;
}

/** One key of a {@linkcode ConfigSchema}. */
export type FieldSpec = NumberField | StringField | BooleanField | NumberListField;

/** A config schema: camelCase key to field spec. */
export type ConfigSchema = Readonly<Record<string, FieldSpec>>;

/** The value type of a field spec (choices narrow strings to their union). */
export type FieldValue<F> = F extends { readonly type: "number" } ? number
  : F extends { readonly type: "boolean" } ? boolean
  : F extends { readonly type: "number[]" } ? readonly number[]
  : F extends { readonly choices: readonly (infer C)[] } ? C
  : string;

/** The resolved config of a schema: keys with a default or `required` are always present. */
export type ConfigOf<S extends ConfigSchema> = {
  readonly [K in keyof S]: S[K] extends { readonly default: unknown } | { readonly required: true }
    ? FieldValue<S[K]>
    : FieldValue<S[K]> | undefined;
};

/** One layer of settings and where it came from (for error messages). */
export interface ConfigLayer {
  /** Where the values came from, e.g. `configs/a.yaml` or `the command line`. */
  readonly source: string;
  /** Raw values by key (camelCase, kebab-case or snake_case). */
  readonly values: Readonly<Record<string, unknown>>;
}

/**
 * Normalises a key to camelCase: `batch-size` and `batch_size` become `batchSize`.
 *
 * @param key A key.
 * @returns The camelCase key.
 * @example
 * ```ts
 * import { camelKey } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(camelKey("limit-test"), "limitTest");
 * assert.equal(camelKey("batch_size"), "batchSize");
 * ```
 */
export function camelKey(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Turns a camelCase key into its flag name: `batchSize` becomes `batch-size`.
 *
 * @param key A camelCase key.
 * @returns The kebab-case flag name (without dashes in front).
 */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function describe(field: FieldSpec): string {
  switch (field.type) {
    case "number": {
      const kind = field.integer ? "an integer" : "a number";
      const range = field.min !== undefined || field.max !== undefined
        ? ` in [${field.min ?? "-inf"}, ${field.max ?? "inf"}]`
        : "";
      return kind + range;
    }
    case "string":
      return field.choices ? `one of ${field.choices.join(", ")}` : "a string";
    case "boolean":
      return "true or false";
    case "number[]":
      return `a list of ${field.integer ? "integers" : "numbers"}${
        field.min !== undefined || field.max !== undefined
          ? ` in [${field.min ?? "-inf"}, ${field.max ?? "inf"}]`
          : ""
      }`;
  }
}

function checkNumber(field: NumberField | NumberListField, value: unknown): boolean {
  return typeof value === "number" && Number.isFinite(value) &&
    (!field.integer || Number.isInteger(value)) &&
    (field.min === undefined || value >= field.min) &&
    (field.max === undefined || value <= field.max);
}

function checkValue(field: FieldSpec, value: unknown): unknown {
  switch (field.type) {
    case "number":
      return checkNumber(field, value) ? value : undefined;
    case "string":
      return typeof value === "string" && (!field.choices || field.choices.includes(value))
        ? value
        : undefined;
    case "boolean":
      return typeof value === "boolean" ? value : undefined;
    case "number[]":
      return Array.isArray(value) && value.every((v) => checkNumber(field, v))
        ? Object.freeze([...value])
        : undefined;
  }
}

/**
 * Resolves a config: merges layers in order (later layers override earlier ones), validates every
 * key and value, applies defaults and freezes the result.
 *
 * @param schema The keys with types, ranges and defaults.
 * @param layers Settings, lowest priority first (e.g. a YAML file, then the command line).
 * @returns The frozen, fully typed config.
 * @throws {Error} On an unknown key (listing the valid keys), a key given twice in one layer
 * under different spellings, a missing required key.
 * @throws {TypeError} On a value of the wrong type or out of range (naming key, source and the
 * expected type).
 * @example
 * ```ts
 * import { resolveConfig } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const schema = {
 *   epochs: { type: "number", integer: true, min: 1, default: 200 },
 *   model: { type: "string", choices: ["resnet18", "resnet50"], default: "resnet18" },
 * } as const;
 * const config = resolveConfig(schema, [
 *   { source: "run.yaml", values: { epochs: 30, model: "resnet50" } },
 *   { source: "the command line", values: { epochs: 5 } },
 * ]);
 * assert.deepEqual(config, { epochs: 5, model: "resnet50" });
 * assert.ok(Object.isFrozen(config));
 * assert.throws(() => resolveConfig(schema, [{ source: "x", values: { epoch: 1 } }]), /unknown key "epoch"/);
 * ```
 */
export function resolveConfig<S extends ConfigSchema>(
  schema: S,
  layers: readonly ConfigLayer[],
): ConfigOf<S> {
  const valid = Object.keys(schema);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    if (field.default !== undefined) {
      const ok = checkValue(field, field.default);
      if (ok === undefined) {
        throw new TypeError(`Config schema: default of "${key}" is not ${describe(field)}`);
      }
      out[key] = ok;
    }
  }
  for (const layer of layers) {
    const seen = new Map<string, string>();
    for (const [raw, value] of Object.entries(layer.values)) {
      if (value === undefined) continue;
      const key = camelKey(raw);
      const field = schema[key];
      if (field === undefined || !Object.hasOwn(schema, key)) {
        throw new Error(
          `Invalid config in ${layer.source}: unknown key "${raw}". Valid keys: ${
            valid.join(", ")
          }`,
        );
      }
      const previous = seen.get(key);
      if (previous !== undefined) {
        throw new Error(
          `Invalid config in ${layer.source}: "${raw}" and "${previous}" are the same key; give it once`,
        );
      }
      seen.set(key, raw);
      const ok = checkValue(field, value);
      if (ok === undefined) {
        throw new TypeError(
          `Invalid config in ${layer.source}: "${raw}" must be ${describe(field)}, got ${
            JSON.stringify(value)
          }`,
        );
      }
      out[key] = ok;
    }
  }
  for (const [key, field] of Object.entries(schema)) {
    if (field.required && out[key] === undefined) {
      throw new Error(
        `Invalid config: "${key}" is required (${describe(field)}); set it in the config file or ` +
          `with --${flagName(key)}`,
      );
    }
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/**
 * Reads a YAML config file: it must hold a mapping (keys to values).
 *
 * @param path The file.
 * @returns The raw values (validate them with {@linkcode resolveConfig}).
 * @throws {Error} If the file cannot be read, is not YAML, or is not a mapping.
 * @example
 * ```ts
 * import { loadYamlConfig } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const path = await Deno.makeTempFile({ suffix: ".yaml" });
 * await Deno.writeTextFile(path, "epochs: 3\nbatch-size: 64\n");
 * assert.deepEqual(await loadYamlConfig(path), { epochs: 3, "batch-size": 64 });
 * await Deno.remove(path);
 * ```
 */
export async function loadYamlConfig(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read config file ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = yaml.load(text, { filename: path, schema: yaml.JSON_SCHEMA });
  } catch (e) {
    throw new Error(`Cannot parse config file ${path} as YAML: ${(e as Error).message}`);
  }
  if (data === undefined || data === null) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new Error(`Config file ${path} must hold a mapping of keys to values`);
  }
  return data as Record<string, unknown>;
}
