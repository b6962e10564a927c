/**
 * The command-line helper every task uses, so that all tasks behave as one tool:
 *
 * - `--help` / `-h` prints usage with every flag, its type, default and an example, and exits 0;
 * - a usage error (unknown flag, missing or malformed value, out-of-range number, bad choice) is
 *   ONE line on stderr naming the fix, exit code 2, no stack trace; other failures exit 1 with
 *   one line (set `MFI_DEBUG=1` for the stack);
 * - every boolean flag `--x` also takes `--no-x` (and `--x=true|false`);
 * - negative numbers are values (`--epochs -1` reads -1, then fails its range check);
 * - renamed flags give a migration error naming the new spelling.
 *
 * Flags are kebab-case (`--data-dir`, `--batch-size`); YAML keys are camelCase (`batchSize`).
 *
 * @module
 */
import { BACKEND_NAMES, type BackendName, WASM_THREAD_LIMIT } from "@mfi/core";

/** A flag's value type. */
export type FlagType = "string" | "number" | "integer" | "boolean";

/** One flag of a task. Names are kebab-case without the dashes. */
export interface FlagSpec {
  /** Value type; `boolean` flags take no value (`--x`, `--no-x`). */
  readonly type: FlagType;
  /** One-line description. */
  readonly doc: string;
  /** The value when the flag is absent (also shown in the help). */
  readonly default?: string | number | boolean;
  /** Help text for a default computed at run time, e.g. `runs/<preset>-seed<seed>`. */
  readonly defaultText?: string;
  /** Allowed values (strings). */
  readonly choices?: readonly string[];
  /** Inclusive minimum (numbers). */
  readonly min?: number;
  /** Inclusive maximum (numbers). */
  readonly max?: number;
  /** Exclusive minimum (numbers). */
  readonly above?: number;
  /** Repeatable: the value is a list of every occurrence. */
  readonly multiple?: boolean;
  /** A one-letter alias, e.g. `o` for `-o`. */
  readonly short?: string;
  /** An example value for the help (default: a choice, the default or the minimum). */
  readonly example?: string;
  /** Placeholder in the help, e.g. `DIR` (default: derived from the type). */
  readonly placeholder?: string;
}

/** A task's command line. */
export interface CliSpec {
  /** The task name as in `deno task NAME` (also the prefix of error lines). */
  readonly name: string;
  /**
   * How the task is started, for the help and error hints (default `deno task NAME`), e.g.
   * `deno serve tasks/serve_deploy.ts` for an entry point that has no `deno task`.
   */
  readonly command?: string;
  /** One line: what the task does. */
  readonly summary: string;
  /** The usage line after `deno task NAME` (default `[options]`). */
  readonly usage?: string;
  /** Flags by kebab-case name (without `--`). `help` is added. */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Positional arguments allowed (default: none). */
  readonly positionals?: {
    /** Placeholder for the help, e.g. `FILE...`. */
    readonly name: string;
    /** What they are. */
    readonly doc: string;
    /** Fewest allowed. */
    readonly min?: number;
    /** Most allowed (default unlimited). */
    readonly max?: number;
    /** Allowed values of the first positional (a sub-command). */
    readonly choices?: readonly string[];
  };
  /** Old flag names (without `--`) and the migration message, e.g. `{ dir: "renamed --data-dir" }`. */
  readonly renamed?: Readonly<Record<string, string>>;
  /** Extra paragraphs after the flag list. */
  readonly notes?: string;
  /** Whole example command lines (after `deno task NAME`); none: no Examples section. */
  readonly examples: readonly string[];
}

/** A parsed value. */
export type FlagValue = string | number | boolean | readonly (string | number)[] | undefined;

/** What {@linkcode parseCli} returns. */
export interface ParsedCli {
  /** Values by flag name; defaults filled in; repeatable flags are lists (possibly empty). */
  readonly values: Readonly<Record<string, FlagValue>>;
  /** Flags given on the command line (not defaulted), by name. */
  readonly given: ReadonlySet<string>;
  /** Positional arguments in order. */
  readonly positionals: readonly string[];
  /** True if `--help` or `-h` was given (nothing else is checked then). */
  readonly help: boolean;
}

/**
 * A command-line mistake: printed as one line, exit code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./_cli.ts";
 * assert.equal(new UsageError("--seed must be an integer").name, "UsageError");
 * ```
 */
export class UsageError extends Error {
  /** @param message What was wrong and what to do, one line. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

function typeText(spec: FlagSpec): string {
  if (spec.choices) return "choice";
  if (spec.type === "boolean") return "boolean";
  const range: string[] = [];
  if (spec.above !== undefined) range.push(`> ${spec.above}`);
  if (spec.min !== undefined) range.push(`>= ${spec.min}`);
  if (spec.max !== undefined) range.push(`<= ${spec.max}`);
  return `${spec.type}${range.length ? ` ${range.join(", ")}` : ""}`;
}

function placeholder(spec: FlagSpec): string {
  if (spec.placeholder) return spec.placeholder;
  if (spec.choices) return spec.choices.join("|");
  return spec.type === "integer" ? "N" : spec.type === "number" ? "X" : "VALUE";
}

function exampleOf(name: string, spec: FlagSpec): string {
  // A default shown as text only (e.g. one a YAML file may override) still picks the example.
  const def = spec.default ?? spec.defaultText;
  if (spec.type === "boolean") return def === true || def === "true" ? `--no-${name}` : `--${name}`;
  const numeric = def !== undefined && NUMBER.test(String(def)) ? String(def) : undefined;
  const value = spec.example ??
    spec.choices?.find((c) => c !== String(def)) ??
    (spec.type === "string" && spec.default !== undefined ? String(spec.default) : undefined) ??
    (spec.type !== "string" ? numeric : undefined) ??
    (spec.min !== undefined ? String(spec.min) : "1");
  // A value that starts with "-" (and is not a number) can only be given inline.
  return value.startsWith("-") && !NUMBER.test(value) ? `--${name}=${value}` : `--${name} ${value}`;
}

/**
 * The `--help` text: usage, every flag with its type, default and an example, notes, examples.
 *
 * @param spec The task's command line.
 * @returns The text (no trailing newline).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./_cli.ts";
 * const text = helpText({
 *   name: "demo",
 *   summary: "a demo",
 *   flags: { seed: { type: "integer", min: 0, default: 0, doc: "random seed" } },
 *   examples: ["--seed 3"],
 * });
 * assert.match(text, /--seed N\s+integer >= 0\. random seed \(default: 0\); e\.g\. --seed 0/);
 * assert.match(text, /deno task demo --seed 3/);
 * ```
 */
export function helpText(spec: CliSpec): string {
  const lines: string[] = [];
  const command = commandOf(spec);
  lines.push(...wrap(`${command}: ${spec.summary}`, HELP_WIDTH), "");
  lines.push(`Usage: ${command} ${spec.usage ?? "[options]"}`, "");
  if (spec.positionals) lines.push(`  ${spec.positionals.name}  ${spec.positionals.doc}`, "");
  lines.push("Options:");
  const entries = Object.entries(spec.flags);
  const heads = entries.map(([name, f]) => {
    const short = f.short ? `-${f.short}, ` : "";
    return f.type === "boolean"
      ? `${short}--[no-]${name}`
      : `${short}--${name} ${placeholder(f)}${f.multiple ? " ..." : ""}`;
  });
  const width = Math.min(28, Math.max(...heads.map((h) => h.length), 10)) + 2;
  entries.forEach(([name, f], i) => {
    const def = f.defaultText ??
      (f.default !== undefined ? String(f.default) : f.multiple ? "none" : undefined);
    const text = `${typeText(f)}. ${f.doc}${def !== undefined ? ` (default: ${def})` : ""}` +
      `${f.multiple ? "; repeatable" : ""};`;
    const head = heads[i];
    const body = wrap(text, HELP_WIDTH - width - 2, `e.g. ${exampleOf(name, f)}`);
    if (head.length + 2 > width) lines.push(`  ${head}`);
    else body[0] = `${head.padEnd(width)}${body[0]}`, lines.push(`  ${body.shift()}`);
    lines.push(...body.map((l) => `  ${" ".repeat(width)}${l}`));
  });
  lines.push(`  ${"-h, --help".padEnd(width)}show this help and exit`);
  if (spec.notes) {
    const long = (l: string) => (l.length > HELP_WIDTH ? wrap(l, HELP_WIDTH) : [l]);
    lines.push("", ...spec.notes.split("\n").flatMap(long));
  }
  if (spec.examples.length > 0) {
    lines.push("", "Examples:", ...spec.examples.map((e) => `  ${command} ${e}`.trimEnd()));
  }
  return lines.join("\n");
}

/** Help lines are wrapped to this many columns. */
const HELP_WIDTH = 100;

/** Wraps words to `width` columns; `keep` is one last token that is never split. */
function wrap(text: string, width: number, keep?: string): string[] {
  const out: string[] = [];
  let line = "";
  const words = text.split(" ");
  if (keep !== undefined) words.push(keep);
  for (const word of words) {
    if (line !== "" && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length][b.length];
}

function suggestion(name: string, spec: CliSpec): string {
  const names = Object.keys(spec.flags);
  const close = names
    .map((n) => ({
      n,
      d: n.startsWith(name) || name.startsWith(n) || n.endsWith(`-${name}`) ? 1 : distance(n, name),
    }))
    .filter((x) => x.d <= 2)
    .sort((a, b) => a.d - b.d)[0];
  return close ? `did you mean --${close.n}? ` : "";
}

function commandOf(spec: CliSpec): string {
  return spec.command ?? `deno task ${spec.name}`;
}

function helpHint(spec: CliSpec): string {
  return `${commandOf(spec)} --help lists the flags`;
}

function convert(name: string, spec: FlagSpec, text: string): string | number {
  if (spec.type === "string") {
    if (spec.choices && !spec.choices.includes(text)) {
      throw new UsageError(
        `--${name} must be one of ${spec.choices.join(", ")}; got ${JSON.stringify(text)}`,
      );
    }
    return text;
  }
  const n = NUMBER.test(text.trim()) ? Number(text) : NaN;
  const what = spec.type === "integer" ? "a whole number" : "a number";
  if (!Number.isFinite(n) || (spec.type === "integer" && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be ${what}; got ${JSON.stringify(text)}`);
  }
  const range = typeText(spec).replace(/^\w+ ?/, "");
  const bad = (spec.min !== undefined && n < spec.min) ||
    (spec.max !== undefined && n > spec.max) ||
    (spec.above !== undefined && n <= spec.above);
  if (bad) throw new UsageError(`--${name} must be ${what} ${range}; got ${text}`);
  return n;
}

function booleanOf(name: string, text: string): boolean {
  if (/^(true|yes|1)$/i.test(text)) return true;
  if (/^(false|no|0)$/i.test(text)) return false;
  throw new UsageError(`--${name} takes no value (or true/false); use --${name} or --no-${name}`);
}

/**
 * Parses a task's arguments against its spec.
 *
 * @param spec The task's command line.
 * @param args The arguments, e.g. `Deno.args`.
 * @returns Values (defaults filled in), positionals, and whether help was asked for.
 * @throws {UsageError} On an unknown or renamed flag, a missing or malformed value, a value out of
 *   range or not among the choices, or unexpected positional arguments.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCli } from "./_cli.ts";
 * const spec = {
 *   name: "demo",
 *   summary: "a demo",
 *   flags: {
 *     epochs: { type: "integer", min: 1, default: 10, doc: "passes" },
 *     augment: { type: "boolean", default: true, doc: "flip and crop" },
 *   },
 *   renamed: { ep: "--ep was renamed --epochs" },
 *   examples: [],
 * } as const;
 * assert.deepEqual(parseCli(spec, ["--epochs", "3", "--no-augment"]).values, {
 *   epochs: 3,
 *   augment: false,
 * });
 * assert.throws(() => parseCli(spec, ["--epochs", "-1"]), /--epochs must be a whole number >= 1; got -1/);
 * assert.throws(() => parseCli(spec, ["--ep", "3"]), /--ep was renamed --epochs/);
 * assert.equal(parseCli(spec, ["-h"]).help, true);
 * ```
 */
export function parseCli(spec: CliSpec, args: readonly string[]): ParsedCli {
  if (args.some((a) => a === "--help" || a === "-h")) {
    const cut = args.indexOf("--");
    const helpAt = args.findIndex((a) => a === "--help" || a === "-h");
    if (cut === -1 || helpAt < cut) {
      return { values: {}, given: new Set(), positionals: [], help: true };
    }
  }
  const values: Record<string, FlagValue> = {};
  const lists: Record<string, (string | number)[]> = {};
  const given = new Set<string>();
  const positionals: string[] = [];
  const shorts = new Map(
    Object.entries(spec.flags).filter(([, f]) => f.short).map(([n, f]) => [f.short!, n]),
  );
  const set = (name: string, f: FlagSpec, value: string | number | boolean) => {
    given.add(name);
    if (f.multiple) (lists[name] ??= []).push(value as string | number);
    else values[name] = value;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      const long = shorts.get(arg.slice(1));
      if (long === undefined) {
        throw new UsageError(`unknown flag ${arg}; ${helpHint(spec)}`);
      }
      name = long;
    } else {
      positionals.push(arg);
      continue;
    }
    const renamed = spec.renamed?.[name] ??
      (name.startsWith("no-") ? spec.renamed?.[name.slice(3)] : undefined);
    if (renamed !== undefined) throw new UsageError(renamed);
    let f = spec.flags[name];
    let negated = false;
    if (
      f === undefined && name.startsWith("no-") && spec.flags[name.slice(3)]?.type === "boolean"
    ) {
      name = name.slice(3);
      f = spec.flags[name];
      negated = true;
    }
    if (f === undefined) {
      throw new UsageError(`unknown flag --${name}; ${suggestion(name, spec)}${helpHint(spec)}`);
    }
    if (f.type === "boolean") {
      if (negated && inline !== undefined) {
        throw new UsageError(`--no-${name} takes no value; use --no-${name} or --${name}`);
      }
      set(name, f, negated ? false : inline === undefined ? true : booleanOf(name, inline));
      continue;
    }
    let text = inline;
    if (text === undefined) {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("-") && !NUMBER.test(next))) {
        throw new UsageError(`--${name} needs a value, e.g. ${exampleOf(name, f)}`);
      }
      text = next;
      i++;
    }
    set(name, f, convert(name, f, text));
  }
  for (const [name, f] of Object.entries(spec.flags)) {
    if (f.multiple) values[name] = Object.freeze(lists[name] ?? []);
    else if (values[name] === undefined && f.default !== undefined) values[name] = f.default;
  }
  const p = spec.positionals;
  if (p === undefined && positionals.length > 0) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(positionals[0])}; ${
        positionals[0].startsWith("-") ? "flags start with --; " : ""
      }${helpHint(spec)}`,
    );
  }
  if (p !== undefined) {
    if (positionals.length < (p.min ?? 0)) {
      throw new UsageError(`missing ${p.name}: ${p.doc}; ${helpHint(spec)}`);
    }
    if (p.max !== undefined && positionals.length > p.max) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(positionals[p.max])}; ${helpHint(spec)}`,
      );
    }
    if (p.choices && positionals.length > 0 && !p.choices.includes(positionals[0])) {
      throw new UsageError(
        `unknown command ${JSON.stringify(positionals[0])}; expected one of ${
          p.choices.join(", ")
        }`,
      );
    }
  }
  return { values, given, positionals, help: false };
}

/**
 * Runs a task: parses its arguments, prints help (exit 0), runs `main`, and turns errors into one
 * line (a {@linkcode UsageError}: exit 2; anything else: exit 1; `MFI_DEBUG=1` adds the stack).
 * `main` may return an exit code.
 *
 * @param spec The task's command line.
 * @param main The task, given the parsed arguments.
 * @param args The arguments (default `Deno.args`).
 * @returns When `main` returned 0 or nothing (other outcomes exit the process).
 */
export async function runCli(
  spec: CliSpec,
  main: (parsed: ParsedCli) => Promise<number | void> | number | void,
  args: readonly string[] = Deno.args,
): Promise<void> {
  let code: number | void;
  try {
    const parsed = parseCli(spec, args);
    if (parsed.help) {
      console.log(helpText(spec));
      return;
    }
    code = await main(parsed);
  } catch (e) {
    Deno.exit(reportError(spec.name, e));
  }
  if (code) Deno.exit(code);
}

/**
 * Prints an error as one line prefixed with the task name and returns its exit code: 2 for a
 * {@linkcode UsageError}, 1 otherwise. With `MFI_DEBUG=1` the stack follows.
 *
 * @param task The task name.
 * @param e The error.
 * @returns The exit code.
 */
export function reportError(task: string, e: unknown): number {
  const message = e instanceof Error ? e.message : String(e);
  console.error(`${task}: ${message.replace(/\s*\n\s*/g, " ").trim()}`);
  let debug = false;
  try {
    debug =
      Deno.permissions.querySync({ name: "env", variable: "MFI_DEBUG" }).state === "granted" &&
      (Deno.env.get("MFI_DEBUG") ?? "") !== "";
  } catch {
    debug = false;
  }
  if (debug && e instanceof Error && e.stack) console.error(e.stack);
  return e instanceof UsageError ? 2 : 1;
}

/**
 * The flags every task that computes shares: `--backend` and `--threads`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BACKEND_FLAGS, backendOptions, parseCli } from "./_cli.ts";
 * const spec = { name: "x", summary: "x", flags: BACKEND_FLAGS, examples: [] };
 * assert.deepEqual(backendOptions(parseCli(spec, ["--backend", "cpu"]).values), { backend: "cpu" });
 * assert.throws(() => parseCli(spec, ["--backend", "tpu"]), /--backend must be one of webgpu, wasm, cpu/);
 * assert.throws(() => parseCli(spec, ["--threads", "0"]), /--threads must be a whole number >= 1/);
 * ```
 */
export const BACKEND_FLAGS: Readonly<
  Record<"backend" | "threads" | "allow-software-adapter", FlagSpec>
> = Object.freeze({
  backend: {
    type: "string",
    choices: BACKEND_NAMES,
    defaultText: "MFI_BACKEND, else the best available: webgpu on a GPU, wasm, cpu",
    example: "wasm",
    doc: "force a tfjs backend",
  },
  threads: {
    type: "integer",
    min: 1,
    defaultText: `MFI_THREADS, else all cores, at most ${WASM_THREAD_LIMIT}`,
    example: "2",
    doc: "WASM threads",
  },
  "allow-software-adapter": {
    type: "boolean",
    defaultText: "MFI_ALLOW_SOFTWARE_ADAPTER, else off",
    doc: "testing only: let --backend webgpu use a software adapter (llvmpipe)",
  },
});

/** The backend part of `selectBackend`'s options, as parsed from flags. */
export interface BackendCliOptions {
  /** `--backend`; absent when the flag is not given. */
  backend?: BackendName;
  /** `--threads`; absent when the flag is not given. */
  threads?: number;
  /** `--allow-software-adapter`: true when given (so `MFI_ALLOW_SOFTWARE_ADAPTER` still applies). */
  allowSoftwareAdapter?: boolean;
}

/**
 * `{ backend?, threads?, allowSoftwareAdapter? }` for `selectBackend`, from values parsed with {@linkcode BACKEND_FLAGS}.
 *
 * @param values Parsed values (other keys are ignored).
 * @returns The options.
 */
export function backendOptions(values: Readonly<Record<string, FlagValue>>): BackendCliOptions {
  const out: BackendCliOptions = {};
  if (typeof values.backend === "string") out.backend = values.backend as BackendName;
  if (typeof values.threads === "number") out.threads = values.threads;
  if (values["allow-software-adapter"] === true) out.allowSoftwareAdapter = true;
  return out;
}

/**
 * Reads `--backend` and `--threads` from arguments, ignoring every other flag (for child
 * processes and scripts whose other flags another parser reads).
 *
 * @param args Command-line arguments.
 * @returns `{ backend?, threads? }`.
 * @throws {UsageError} If `--backend` or `--threads` has a bad or missing value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendOptionsFromArgs } from "./_cli.ts";
 * assert.deepEqual(backendOptionsFromArgs(["--backend=cpu", "--threads", "2", "--epochs", "1"]), {
 *   backend: "cpu",
 *   threads: 2,
 * });
 * ```
 */
export function backendOptionsFromArgs(args: readonly string[]): BackendCliOptions {
  const picked: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (/^--(backend|threads)=/.test(a)) picked.push(a);
    else if (a === "--allow-software-adapter") picked.push(a);
    else if (a === "--backend" || a === "--threads") {
      picked.push(a);
      if (i + 1 < args.length) picked.push(args[++i]);
    }
  }
  return backendOptions(
    parseCli({ name: "backend", summary: "", flags: BACKEND_FLAGS, examples: [] }, picked).values,
  );
}

/**
 * For top-level scripts: parses the arguments, or prints the help (exit 0) or the usage error
 * (one line, exit 2) and exits.
 *
 * @param spec The task's command line.
 * @param args The arguments (default `Deno.args`).
 * @returns The parsed arguments (never with `help` set).
 */
export function parseCliOrExit(spec: CliSpec, args: readonly string[] = Deno.args): ParsedCli {
  let parsed: ParsedCli;
  try {
    parsed = parseCli(spec, args);
  } catch (e) {
    Deno.exit(reportError(spec.name, e));
  }
  if (parsed.help) {
    console.log(helpText(spec));
    Deno.exit(0);
  }
  return parsed;
}
