/**
 * `deno task params --model resnet50 --classes 10 [--width 1] [--json]`: parameter counts of a
 * model (total, stem, each stage, head), computed from architecture data without allocating
 * the model. Model families plug in through the {@linkcode PARAM_COUNTERS} map below.
 *
 * @module
 */
import {
  countResNetParameters,
  type ParameterReport,
  RESNET_ARCHS,
  type ResNetArchName,
} from "@mfi/resnet";
import { countSpecParameters, defaultSpecs } from "@mfi/incubation";
import { type CliSpec, parseCli, runCli, UsageError } from "./_cli.ts";

/** Counts a model's parameters for a class count and width multiplier. */
export type ParamCounter = (options: { classes: number; width: number }) => ParameterReport;

/**
 * Every model `params` knows, by name. Another family (e.g. `mfi-resnet50`) adds its entries
 * here; nothing registers itself by import side effect.
 */
export const PARAM_COUNTERS: Readonly<Record<string, ParamCounter>> = Object.freeze({
  ...Object.fromEntries(
    (Object.keys(RESNET_ARCHS) as ResNetArchName[]).map((name) => [
      name,
      (o: { classes: number; width: number }) => countResNetParameters(name, o),
    ]),
  ),
  // MFI-ResNet and its meta model with docs/method.md's defaults (stage-4 MeanFlow sized for the
  // paper's reduction: -46.28 % with 10 classes, -45.59 % with 100).
  ...Object.fromEntries(
    (["resnet18", "resnet34", "resnet50", "resnet101"] as const).flatMap((name) => [
      [
        `mfi-${name}`,
        (o: { classes: number; width: number }) => countSpecParameters(defaultSpecs(name, o).mfi),
      ],
      [
        `meta-${name}`,
        (o: { classes: number; width: number }) => countSpecParameters(defaultSpecs(name, o).meta),
      ],
    ]),
  ),
});

/** The `--json` output: one object. */
export interface ParamsResult extends ParameterReport {
  /** Model name. */
  readonly model: string;
  /** Class count. */
  readonly classes: number;
  /** Width multiplier. */
  readonly width: number;
}

/**
 * `deno task params`'s command line.
 *
 * @param counters The model registry (its names are the `--model` choices).
 * @returns The spec.
 */
export function paramsCli(
  counters: Readonly<Record<string, ParamCounter>> = PARAM_COUNTERS,
): CliSpec {
  return {
    name: "params",
    summary: "parameter counts of a model (total, stem, each stage, head), from architecture " +
      "data, without building it",
    flags: {
      model: {
        type: "string",
        placeholder: "NAME",
        defaultText: "required",
        example: "mfi-resnet50",
        doc: `the model: ${Object.keys(counters).join(", ")}`,
      },
      classes: { type: "integer", min: 1, default: 10, example: "100", doc: "classes of the head" },
      width: {
        type: "string",
        placeholder: "W",
        default: "1",
        example: "1/16",
        doc: "width multiplier, a number > 0 or a fraction",
      },
      json: { type: "boolean", default: false, doc: "print JSON instead of a table" },
    },
    examples: ["--model resnet50", "--model mfi-resnet50 --classes 100 --json"],
  };
}

/**
 * Parses the arguments and counts.
 *
 * @param args Command-line arguments.
 * @param counters The model registry (default {@linkcode PARAM_COUNTERS}).
 * @returns The counts with the model, classes and width.
 * @throws {UsageError} On an unknown flag, an unknown model or a malformed number.
 * @example
 * ```ts
 * import { countParams } from "./params.ts";
 * import assert from "node:assert/strict";
 * assert.equal(countParams(["--model", "resnet18", "--classes", "10"]).total, 11_173_962);
 * ```
 */
export function countParams(
  args: string[],
  counters: Readonly<Record<string, ParamCounter>> = PARAM_COUNTERS,
): ParamsResult {
  const values = parseCli(paramsCli(counters), args).values;
  const model = values.model as string | undefined;
  if (model === undefined) {
    throw new UsageError(`--model is required, e.g. --model resnet50; deno task params --help`);
  }
  const counter = Object.hasOwn(counters, model) ? counters[model] : undefined;
  if (counter === undefined) {
    throw new UsageError(
      `--model "${model}" is unknown; known models: ${Object.keys(counters).join(", ")}`,
    );
  }
  const classes = values.classes as number;
  const text = values.width as string;
  const fraction = text.match(/^\s*([0-9.eE+-]+)\s*\/\s*([0-9.eE+-]+)\s*$/);
  const width = fraction ? Number(fraction[1]) / Number(fraction[2]) : Number(text);
  if (text.trim() === "" || !Number.isFinite(width) || width <= 0) {
    throw new UsageError(
      `--width must be a positive number or fraction (0.25, 1/16), got "${text}"`,
    );
  }
  const r = counter({ classes, width });
  return {
    model,
    classes,
    width,
    total: r.total,
    stem: r.stem,
    stages: [...r.stages],
    head: r.head,
  };
}

/**
 * Formats counts as a table (stages named 1-based, as in docs/method.md).
 *
 * @param r The counts.
 * @returns The table text.
 * @example
 * ```ts
 * import { countParams, formatParams } from "./params.ts";
 * import assert from "node:assert/strict";
 * const text = formatParams(countParams(["--model", "resnet50"]));
 * assert.match(text, /stage4\s+14,964,736/);
 * assert.match(text, /total\s+23,520,842/);
 * ```
 */
export function formatParams(r: ParamsResult): string {
  const rows: Array<[string, number]> = [
    ["stem", r.stem],
    ...r.stages.map((n, i) => [`stage${i + 1}`, n] as [string, number]),
    ["head", r.head],
    ["total", r.total],
  ];
  const fmt = (n: number) => n.toLocaleString("en-US");
  const width = Math.max(...rows.map(([, n]) => fmt(n).length), "parameters".length);
  const pct = (n: number) => `${(100 * n / r.total).toFixed(2).padStart(6)} %`;
  return [
    `${r.model}, ${r.classes} classes, width ${r.width}`,
    `${"part".padEnd(8)} ${"parameters".padStart(width)}    share`,
    ...rows.map(([name, n]) => `${name.padEnd(8)} ${fmt(n).padStart(width)} ${pct(n)}`),
  ].join("\n");
}

if (import.meta.main) {
  await runCli(paramsCli(), ({ values }) => {
    const result = countParams(Deno.args);
    console.log(values.json ? JSON.stringify(result) : formatParams(result));
  });
}
