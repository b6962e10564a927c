/**
 * The run report: `results.json` (machine-readable), `results.md` (the table a reader wants:
 * parameters, reduction vs the baseline, top-1, images processed and wall time per phase) and
 * two SVG plots (accuracy vs parameters of the three models; test accuracy per epoch of every
 * phase). Built from phase results only, so it can be regenerated from a run folder.
 *
 * @module
 */
import { type LinePlotOptions, linePlotSvg, type PlotSeries } from "@mfi/core";
import { type AblationRow, ablationRow } from "./ablation.ts";
import type { PipelineConfig } from "./config.ts";
import { countSpecParameters } from "./model_spec.ts";
import type { PhaseResult } from "./phase_runner.ts";
import type { PipelineSpecs } from "./pipeline_specs.ts";
import type { Phase } from "./plan.ts";

/** One of the three compared models. */
export interface ModelRow {
  /** `baseline`, `meta` or `mfi-resnet`. */
  readonly model: string;
  /** Exact parameter count (from the spec). */
  readonly parameters: number;
  /** Parameter change vs the baseline, in percent (negative = smaller). */
  readonly changePercent: number;
  /** Test top-1 accuracy, or null if the phase has not run. */
  readonly top1: number | null;
  /** Top-1 minus the baseline's, in points, or null. */
  readonly deltaPoints: number | null;
  /** Training images processed by every phase that produced this model. */
  readonly imagesProcessed: number;
  /** Wall-clock seconds of every phase that produced this model. */
  readonly wallSeconds: number;
}

/** One phase row of the report. */
export interface PhaseRow {
  /** Phase id. */
  readonly phase: string;
  /** Trainable parameters. */
  readonly trainableParameters: number;
  /** Epochs run. */
  readonly epochs: number;
  /** Training images processed. */
  readonly imagesProcessed: number;
  /** Wall-clock seconds. */
  readonly wallSeconds: number;
  /** Test top-1 at the end (null for compress). */
  readonly top1: number | null;
  /** Test top-1 before training (null where not measured). */
  readonly initialTop1: number | null;
  /** Compress: fit MSE relative to the teacher output's variance. */
  readonly fitRelative: number | null;
  /** The backend the phase ran on (null: not run, or not recorded by older outputs). */
  readonly backend: string | null;
}

/** The content of `results.json`. */
export interface RunReport {
  /** Format tag. */
  readonly format: "mfi-results/1";
  /** The config of the run. */
  readonly config: PipelineConfig;
  /** Where the data came from. */
  readonly data: string;
  /** True if the embedded sample replaced the real dataset. */
  readonly sample: boolean;
  /**
   * The backend the phases ran on when they all recorded the same one; otherwise the backend of
   * the command that wrote the report, saying so (per-phase backends are in `phases`).
   */
  readonly backend: string;
  /** The scale this run represents (for the reader). */
  readonly scale: string;
  /** Baseline, meta model, MFI-ResNet. */
  readonly models: readonly ModelRow[];
  /** Every phase of the plan. */
  readonly phases: readonly PhaseRow[];
  /** The MeanFlow stage of each position (the meta model's; stage 4 is also MFI-ResNet's). */
  readonly meanflowStages: ReadonlyArray<{
    readonly stage: number;
    readonly hidden: number;
    readonly modules: number;
    readonly parameters: number;
    readonly residualParameters: number;
  }>;
  /**
   * Stage-fit ablation (when the config names variants): one row per variant, then this run's
   * own objective; empty without an ablation. Reports written before the ablation existed lack it.
   */
  readonly ablation: readonly AblationRow[];
  /** Total wall-clock seconds of all phases. */
  readonly totalWallSeconds: number;
  /** Total training images processed. */
  readonly totalImages: number;
  /** ISO time of writing. */
  readonly writtenAt: string;
}

/** Inputs of {@linkcode buildReport}. */
export interface ReportInputs {
  /** The config. */
  readonly config: PipelineConfig;
  /** The run's specs. */
  readonly specs: PipelineSpecs;
  /** The plan. */
  readonly phases: readonly Phase[];
  /** Results of complete phases by id. */
  readonly results: Readonly<Record<string, PhaseResult>>;
  /** Data description. */
  readonly data: string;
  /** Whether the sample stood in for the dataset. */
  readonly sample: boolean;
  /** Backend description. */
  readonly backend: string;
  /** Rows of the ablation's sub-runs ({@linkcode ablationRow}); this run's own row is added. */
  readonly ablation?: readonly AblationRow[];
}

/**
 * Builds the report object from phase results (pure).
 *
 * @param inputs Config, specs, plan, results and run facts.
 * @returns The report.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, pipelineSpecs, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const r = buildReport({
 *   config: DEFAULT_CONFIG,
 *   specs: pipelineSpecs(DEFAULT_CONFIG),
 *   phases: planPhases(DEFAULT_CONFIG),
 *   results: {},
 *   data: "none",
 *   sample: false,
 *   backend: "cpu",
 * });
 * assert.equal(r.models[2].changePercent.toFixed(2), "-46.28");
 * assert.equal(r.models[2].top1, null);
 * ```
 */
export function buildReport(inputs: ReportInputs): RunReport {
  const { config, specs, phases, results } = inputs;
  const base = countSpecParameters(specs.baseline).total;
  const acc = (id: string) => results[id]?.testAccuracy ?? null;
  const baseTop1 = acc("baseline");
  // The phases that produce each model: itself and everything it depends on.
  const lineage = (id: string): Set<string> => {
    const out = new Set<string>();
    const visit = (x: string) => {
      if (out.has(x)) return;
      out.add(x);
      phases.find((p) => p.id === x)?.dependsOn.forEach(visit);
    };
    visit(id);
    return out;
  };
  const row = (model: string, phase: string, parameters: number): ModelRow => {
    const top1 = acc(phase);
    const used = [...lineage(phase)].map((id) => results[id]).filter((r) => r !== undefined);
    return {
      model,
      parameters,
      changePercent: 100 * (parameters / base - 1),
      top1,
      deltaPoints: top1 !== null && baseTop1 !== null ? 100 * (top1 - baseTop1) : null,
      imagesProcessed: used.reduce((s, r) => s + r.imagesProcessed, 0),
      wallSeconds: used.reduce((s, r) => s + r.wallSeconds, 0),
    };
  };
  const models = [
    row("baseline", "baseline", base),
    row("meta", "meta", countSpecParameters(specs.meta).total),
    row("mfi-resnet", "finetune", countSpecParameters(specs.mfi).total),
  ];
  const phaseRows = phases.map((p): PhaseRow => {
    const r = results[p.id];
    return {
      phase: p.id,
      trainableParameters: r?.trainableParameters ?? 0,
      epochs: r?.history.length ?? 0,
      imagesProcessed: r?.imagesProcessed ?? 0,
      wallSeconds: r?.wallSeconds ?? 0,
      top1: r?.testAccuracy ?? null,
      initialTop1: r?.initialTestAccuracy ?? null,
      fitRelative: r?.fitRelative ?? null,
      backend: r?.backend ?? null,
    };
  });
  const full = config.model.width === 1 && config.data.trainPerClass === null;
  const metaCounts = countSpecParameters(specs.meta);
  const baseCounts = countSpecParameters(specs.baseline);
  const meanflowStages = specs.meta.stages.flatMap((st, i) =>
    st.kind === "meanflow"
      ? [{
        stage: i + 1,
        hidden: st.config.hidden,
        modules: st.config.modules,
        parameters: metaCounts.stages[i],
        residualParameters: baseCounts.stages[i],
      }]
      : []
  );
  const report: RunReport = {
    format: "mfi-results/1",
    config,
    data: inputs.data,
    sample: inputs.sample,
    backend: runBackend(phaseRows, inputs.backend),
    scale: inputs.sample
      ? "EMBEDDED SAMPLE (not CIFAR results)"
      : full
      ? "paper scale (full width, full training set)"
      : `reduced scale: width ${config.model.width}, ${
        config.data.trainPerClass ?? "all"
      } training images per class`,
    models,
    phases: phaseRows,
    meanflowStages,
    ablation: [],
    totalWallSeconds: phaseRows.reduce((s, r) => s + r.wallSeconds, 0),
    totalImages: phaseRows.reduce((s, r) => s + r.imagesProcessed, 0),
    writtenAt: new Date().toISOString(),
  };
  const variants = inputs.ablation ?? [];
  return variants.length === 0
    ? report
    : { ...report, ablation: [...variants, ablationRow(report, "main", baseTop1)] };
}

function runBackend(rows: readonly PhaseRow[], writer: string): string {
  const ran = rows.filter((r) => r.epochs > 0 || r.top1 !== null || r.fitRelative !== null);
  const seen = [...new Set(ran.map((r) => r.backend))];
  if (seen.length === 0) return `${writer} (no phase has run yet)`;
  if (seen.length === 1 && seen[0] !== null) return seen[0];
  return `${writer} (the command that wrote this report; ${
    seen.length > 1
      ? "the phases ran on several, see the phase table"
      : "phases did not record theirs"
  })`;
}

const pct = (x: number | null): string => (x === null ? "-" : `${(100 * x).toFixed(2)} %`);
const int = (x: number): string => x.toLocaleString("en-US");
const pts = (x: number | null): string =>
  x === null ? "-" : `${x >= 0 ? "+" : ""}${x.toFixed(2)} pts`;

function ablationSection(report: RunReport): string[] {
  const rows = report.ablation ?? [];
  if (rows.length === 0) return [];
  const baseTop1 = report.models.find((m) => m.model === "baseline")?.top1 ?? null;
  return [
    "## Stage-fit ablation",
    "",
    "METHOD.md section 5: MeanFlow loss, one-step endpoint regression, or both? Each variant is a",
    `sub-run from this run's baseline (top-1 ${pct(baseTop1)}) with the same seed, data and`,
    "schedules; only the objective of the stage fits differs. Stage fit = one-step test MSE of the",
    "fitted stage over the variance of the teacher's stage output (0 = perfect, 1 = no better than",
    "the mean).",
    "",
    "| stage-fit objective | stage fit, rel. MSE (stages 1-4) | meta top-1 | MFI-ResNet top-1 | vs baseline | wall time | report |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ...rows.map((r) =>
      `| ${r.objective}${r.variant === "main" ? " (this run)" : ""} | ${
        r.fitRelative.map((f) => (f === null ? "-" : f.toFixed(3))).join(" / ")
      } | ${pct(r.metaTop1)} | ${pct(r.mfiTop1)} | ${pts(r.mfiDeltaPoints)} | ${
        (r.wallSeconds / 60).toFixed(1)
      } min | ${r.report === null ? "this one" : `[${r.variant}](../${r.report})`} |`
    ),
    "",
    "Wall time counts a row's phases after the baseline (the baseline is trained once).",
    "",
  ];
}

/**
 * Renders the report as Markdown.
 *
 * @param report The report.
 * @returns `results.md` text.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, pipelineSpecs, planPhases, reportMarkdown } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const md = reportMarkdown(buildReport({
 *   config: DEFAULT_CONFIG,
 *   specs: pipelineSpecs(DEFAULT_CONFIG),
 *   phases: planPhases(DEFAULT_CONFIG),
 *   results: {},
 *   data: "none",
 *   sample: false,
 *   backend: "cpu",
 * }));
 * assert.match(md, /\| mfi-resnet \| 12,635,082 \| -46\.28 % \| - \| - \|/);
 * ```
 */
export function reportMarkdown(report: RunReport): string {
  const c = report.config;
  const lines = [
    `# MFI-ResNet run: ${c.name}`,
    "",
    ...(report.sample
      ? [
        "> **WARNING: this run used the embedded 2,000-image CIFAR-10 SAMPLE** (no dataset and no",
        "> network were available). Its numbers only show that the pipeline works; they are not",
        "> CIFAR-10 results.",
        "",
      ]
      : []),
    `- ${c.description}`,
    `- Scale: ${report.scale}`,
    `- Model: ${c.model.arch} at width ${c.model.width}, ${c.data.dataset}; seed ${c.seed}`,
    `- Data: ${report.data}`,
    `- Backend: ${report.backend}`,
    `- Total: ${int(report.totalImages)} training images processed, ` +
    `${(report.totalWallSeconds / 60).toFixed(1)} min of phase wall time`,
    "",
    "## Models",
    "",
    "| model | parameters | vs baseline | top-1 | vs baseline top-1 | images processed | wall time |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...report.models.map((m) =>
      `| ${m.model} | ${int(m.parameters)} | ${m.changePercent.toFixed(2)} % | ${pct(m.top1)} | ${
        pts(m.deltaPoints)
      } | ${int(m.imagesProcessed)} | ${(m.wallSeconds / 60).toFixed(1)} min |`
    ),
    "",
    "Images processed and wall time of a model count every phase that produced it (MFI-ResNet:",
    "all phases, the baseline's included).",
    "",
    "The paper reports -46.28 % parameters / +0.23 points (CIFAR-10) and -45.59 % / +0.17 points",
    "(CIFAR-100) for MFI-ResNet-50 at full scale.",
    "",
    ...ablationSection(report),
    "## Phases",
    "",
    "| phase | trainable params | epochs | images | wall time | top-1 before | top-1 after | stage fit (rel. MSE) | backend |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...report.phases.map((p) =>
      `| ${p.phase} | ${int(p.trainableParameters)} | ${p.epochs} | ${int(p.imagesProcessed)} | ${
        p.wallSeconds.toFixed(1)
      } s | ${pct(p.initialTop1)} | ${pct(p.top1)} | ${
        p.fitRelative === null ? "-" : p.fitRelative.toFixed(3)
      } | ${p.backend ?? "-"} |`
    ),
    "",
    "## Configuration",
    "",
    "| stage | MeanFlow hidden h | modules | MeanFlow params | residual params |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...report.meanflowStages.map((m) =>
      `| ${m.stage} | ${m.hidden} | ${m.modules} | ${int(m.parameters)} | ${
        int(m.residualParameters)
      } |`
    ),
    "",
    `MeanFlow objective: ${c.meanflow.meanflow ? "MeanFlow loss" : "no MeanFlow loss"} + ` +
    `${c.meanflow.lambda} x endpoint loss. Incubated stages: ${c.incubate.stages.join(", ")} ` +
    `(init: ${c.incubate.init}); meta fine-tunes ${
      c.meta.trainable === "head" ? "the head" : "everything"
    }.`,
    "",
    "| phase | epochs | batch | optimiser | lr | weight decay |",
    "| --- | ---: | ---: | --- | ---: | ---: |",
    ...(["baseline", "compress", "meta", "incubate", "finetune"] as const).map((k) => {
      const t = c[k];
      return `| ${k} | ${t.epochs} | ${t.batchSize} | ${t.optimizer}${
        t.optimizer === "sgd" ? ` (momentum ${t.momentum}${t.nesterov ? ", Nesterov" : ""})` : ""
      } | ${t.lr} | ${t.weightDecay} |`;
    }),
    "",
    "Plots: [accuracy vs parameters](accuracy_vs_parameters.svg), " +
    "[stage fits](stage_fits.svg), [test accuracy per phase](phase_curves.svg).",
    "",
  ];
  return lines.join("\n");
}

/**
 * Writes `results.json`, `results.md`, `accuracy_vs_parameters.svg`, `stage_fits.svg` (one line
 * per stage-fit objective) and `phase_curves.svg`; a plot without data is left out.
 *
 * @param dir The report folder (created).
 * @param report The report.
 * @param results Phase results (for the per-epoch curves).
 * @returns The paths written.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, pipelineSpecs, planPhases, writeReport } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const report = buildReport({
 *   config: DEFAULT_CONFIG,
 *   specs: pipelineSpecs(DEFAULT_CONFIG),
 *   phases: planPhases(DEFAULT_CONFIG),
 *   results: {},
 *   data: "none",
 *   sample: false,
 *   backend: "cpu",
 * });
 * const dir = await Deno.makeTempDir();
 * const written = await writeReport(dir, report, {});
 * assert.deepEqual(written, [`${dir}/results.json`, `${dir}/results.md`]); // no accuracies: no plots
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeReport(
  dir: string,
  report: RunReport,
  results: Readonly<Record<string, PhaseResult>>,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    written.push(`${dir}/${name}`);
  };
  await write("results.json", JSON.stringify(report, null, 2) + "\n");
  await write("results.md", reportMarkdown(report));
  // A plot is written only when it has data.
  const plot = async (name: string, series: PlotSeries[], options: LinePlotOptions) => {
    if (series.length > 0) await write(name, linePlotSvg(series, options));
  };
  await plot(
    "accuracy_vs_parameters.svg",
    report.models.filter((m) => m.top1 !== null).map((m) => ({
      name: m.model,
      points: [[m.parameters / 1e6, 100 * m.top1!]],
    })),
    {
      title: `Top-1 vs parameters (${report.config.name})`,
      xLabel: "parameters (millions)",
      yLabel: "test top-1 (%)",
    },
  );
  // Stage-fit error per stage: one line per stage-fit objective (the ablation), else the run's.
  const fitRows = report.ablation.length > 0
    ? report.ablation
    : [ablationRow(report, "main", null)];
  await plot(
    "stage_fits.svg",
    fitRows.map((r) => ({
      name: r.objective,
      points: r.fitRelative.flatMap((f, i) => (f === null ? [] : [[i + 1, f] as const])),
    })).filter((f) => f.points.length > 0),
    {
      title: "MeanFlow stage fits: one-step test error",
      xLabel: "stage",
      yLabel: "MSE / variance of the teacher's output",
    },
  );
  await plot(
    "phase_curves.svg",
    Object.values(results)
      .filter((r) => r.history.some((h) => h.testAccuracy !== null))
      .map((r) => ({
        name: r.phase,
        points: r.history.filter((h) => h.testAccuracy !== null).map((h) =>
          [h.epoch, 100 * h.testAccuracy!] as const
        ),
      })),
    {
      title: "Test accuracy per epoch, by phase",
      xLabel: "epoch of the phase",
      yLabel: "test top-1 (%)",
    },
  );
  return written;
}
