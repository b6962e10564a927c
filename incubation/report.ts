/**
 * The run report: `results.json` (machine-readable), `results.md` (the tables a reader wants:
 * the models with parameters and top-1, the paired tests of MFI-ResNet against the baseline and
 * the compute-matched baseline, the stage fits with their one-step error and in-situ accuracy per
 * objective, every phase) and SVG plots. Built from phase results only, so it can be regenerated
 * from a run folder.
 *
 * @module
 */
import {
  labelSaysSoftwareAdapter,
  type LinePlotOptions,
  linePlotSvg,
  type PlotSeries,
} from "@mfi/core";
import type { AblationVariant, PipelineConfig } from "./config.ts";
import { countSpecParameters } from "./model_spec.ts";
import { objectiveName } from "./objective.ts";
import type { GradNormRecord, PhaseResult } from "./phase_output.ts";
import { type CompressPhase, matchedEpochs, type Phase } from "./plan.ts";
import { pairedCounts, type PairedTest, poolPaired, unpackCorrect } from "./statistics.ts";

/** One of the compared models. */
export interface ModelRow {
  /** `baseline`, `matched` (compute-matched baseline), `meta` or `mfi-resnet`. */
  readonly model: string;
  /** The phase that produced it. */
  readonly phase: string;
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
  /** Phase kind. */
  readonly kind: Phase["kind"];
  /** Trainable parameters. */
  readonly trainableParameters: number;
  /** Epochs run. */
  readonly epochs: number;
  /** Training images processed. */
  readonly imagesProcessed: number;
  /** Wall-clock seconds. */
  readonly wallSeconds: number;
  /** Test top-1 at the end (compress: in situ). */
  readonly top1: number | null;
  /** Test top-1 before training (null where not measured). */
  readonly initialTop1: number | null;
  /** Finetune: test top-1 after batch-norm recalibration, before training. */
  readonly recalibratedTop1: number | null;
  /** Compress: fit MSE relative to the teacher output's variance. */
  readonly fitRelative: number | null;
  /** The backend the phase ran on (null: not run). */
  readonly backend: string | null;
}

/** The four stage fits of one objective (the run's own, or an ablation variant's). */
export interface StageFitRow {
  /** `main` for the run's own fits, else the variant. */
  readonly variant: "main" | AblationVariant;
  /** The objective, for people. */
  readonly objective: string;
  /** Per stage 1-4: one-step test MSE over the teacher output's variance (null: not fitted). */
  readonly fitRelative: readonly (number | null)[];
  /** Per stage 1-4: top-1 of the baseline with only that stage replaced by its fit. */
  readonly inSitu: readonly (number | null)[];
  /** Per stage 1-4: gradient norms of the loss terms at the start and end of the fit. */
  readonly gradNorms: ReadonlyArray<
    { readonly start: GradNormRecord; readonly end: GradNormRecord } | null
  >;
  /** Wall-clock seconds of the four fits. */
  readonly wallSeconds: number;
}

/** Paired comparisons of MFI-ResNet on the same test images (McNemar's exact test). */
export interface PairedReport {
  /** MFI-ResNet (a) vs the baseline (b). */
  readonly mfiVsBaseline: PairedTest | null;
  /** MFI-ResNet (a) vs the compute-matched baseline (b). */
  readonly mfiVsMatched: PairedTest | null;
}

/** The content of `results.json`. */
export interface RunReport {
  /** Format tag. */
  readonly format: "mfi-results/2";
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
  /** Test images behind every accuracy (the same images for every model). */
  readonly testImages: number;
  /** Baseline, compute-matched baseline, meta model, MFI-ResNet. */
  readonly models: readonly ModelRow[];
  /** Paired tests. */
  readonly paired: PairedReport;
  /** Per model (by `ModelRow.model`), which test images it got right (see `packCorrect`). */
  readonly correct: Readonly<Record<string, string | null>>;
  /** Stage fits: the run's own objective first, then each ablation variant. */
  readonly stageFits: readonly StageFitRow[];
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
}

function paired(a?: PhaseResult, b?: PhaseResult): PairedTest | null {
  if (!a?.correct || !b?.correct || a.testImages !== b.testImages) return null;
  const n = a.testImages;
  return poolPaired([pairedCounts(unpackCorrect(a.correct, n), unpackCorrect(b.correct, n))]);
}

function stageFitRows(
  phases: readonly Phase[],
  results: Readonly<Record<string, PhaseResult>>,
): StageFitRow[] {
  const fits = phases.filter((p): p is CompressPhase => p.kind === "compress");
  const variants = [...new Set(fits.map((p) => p.variant))];
  return variants.map((variant) => {
    const mine = fits.filter((p) => p.variant === variant);
    const at = (l: number) => {
      const p = mine.find((q) => q.stage === l);
      return p === undefined ? undefined : results[p.id];
    };
    return {
      variant: variant ?? "main",
      objective: objectiveName(mine[0].objective),
      fitRelative: [1, 2, 3, 4].map((l) => at(l)?.fitRelative ?? null),
      inSitu: [1, 2, 3, 4].map((l) => at(l)?.testAccuracy ?? null),
      gradNorms: [1, 2, 3, 4].map((l) => at(l)?.gradNorms ?? null),
      wallSeconds: mine.reduce((s, p) => s + (results[p.id]?.wallSeconds ?? 0), 0),
    };
  });
}

/**
 * Builds the report of a run from its plan and phase results (complete or not).
 *
 * @param inputs Config, plan, results, data description, backend.
 * @returns The report.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, planPhases } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const report = buildReport({
 *   config: DEFAULT_CONFIG, phases: planPhases(DEFAULT_CONFIG), results: {},
 *   data: "none", sample: false, backend: "cpu",
 * });
 * assert.deepEqual(report.models.map((m) => m.model), ["baseline", "matched", "meta", "mfi-resnet"]);
 * assert.ok(Math.abs(report.models[3].changePercent - -46.28) < 0.05);
 * ```
 */
export function buildReport(inputs: ReportInputs): RunReport {
  const { config, phases, results } = inputs;
  const byId = (id: string) => phases.find((p) => p.id === id);
  const baseline = byId("baseline")!;
  const base = countSpecParameters(baseline.spec).total;
  const acc = (id: string) => results[id]?.testAccuracy ?? null;
  const baseTop1 = acc("baseline");
  // The phases that produce each model: itself and everything it depends on.
  const lineage = (id: string): Set<string> => {
    const out = new Set<string>();
    const visit = (x: string) => {
      if (out.has(x)) return;
      out.add(x);
      byId(x)?.dependsOn.forEach(visit);
    };
    visit(id);
    return out;
  };
  const row = (model: string, phase: Phase): ModelRow => {
    const top1 = acc(phase.id);
    const used = [...lineage(phase.id)].map((id) => results[id]).filter((r) => r !== undefined);
    const parameters = countSpecParameters(phase.spec).total;
    return {
      model,
      phase: phase.id,
      parameters,
      changePercent: 100 * (parameters / base - 1),
      top1,
      deltaPoints: top1 !== null && baseTop1 !== null ? 100 * (top1 - baseTop1) : null,
      imagesProcessed: used.reduce((s, r) => s + r.imagesProcessed, 0),
      wallSeconds: used.reduce((s, r) => s + r.wallSeconds, 0),
    };
  };
  const named: Array<[string, string]> = [
    ["baseline", "baseline"],
    ["matched", "matched"],
    ["meta", "meta"],
    ["mfi-resnet", "finetune"],
  ];
  const models = named.flatMap(([model, id]) => {
    const p = byId(id);
    return p === undefined ? [] : [row(model, p)];
  });
  const phaseRows = phases.map((p): PhaseRow => {
    const r = results[p.id];
    return {
      phase: p.id,
      kind: p.kind,
      trainableParameters: r?.trainableParameters ?? 0,
      epochs: r?.history.length ?? 0,
      imagesProcessed: r?.imagesProcessed ?? 0,
      wallSeconds: r?.wallSeconds ?? 0,
      top1: r?.testAccuracy ?? null,
      initialTop1: r?.initialTestAccuracy ?? null,
      recalibratedTop1: r?.recalibratedTestAccuracy ?? null,
      fitRelative: r?.fitRelative ?? null,
      backend: r?.backend ?? null,
    };
  });
  const full = config.model.width === 1 && config.data.trainPerClass === null;
  const meta = byId("meta")!;
  const metaCounts = countSpecParameters(meta.spec);
  const baseCounts = countSpecParameters(baseline.spec);
  const meanflowStages = meta.spec.stages.flatMap((st, i) =>
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
  const testImages = Object.values(results).find((r) => r.testImages > 0)?.testImages ?? 0;
  return {
    format: "mfi-results/2",
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
      } training images per class, ${testImages.toLocaleString("en-US")} test images`,
    testImages,
    models,
    paired: {
      mfiVsBaseline: paired(results.finetune, results.baseline),
      mfiVsMatched: paired(results.finetune, results.matched),
    },
    correct: Object.fromEntries(named.map(([model, id]) => [model, results[id]?.correct ?? null])),
    stageFits: stageFitRows(phases, results),
    phases: phaseRows,
    meanflowStages,
    totalWallSeconds: phaseRows.reduce((s, r) => s + r.wallSeconds, 0),
    totalImages: phaseRows.reduce((s, r) => s + r.imagesProcessed, 0),
    writtenAt: new Date().toISOString(),
  };
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

const p3 = (p: number): string => (p < 0.001 ? p.toExponential(1) : p.toFixed(3));

function pairedLine(name: string, t: PairedTest | null): string {
  if (t === null) return `| ${name} | - | - | - | - |`;
  return `| ${name} | ${t.aOnly} | ${t.bOnly} | ${t.aOnly - t.bOnly >= 0 ? "+" : ""}${
    (100 * (t.aOnly - t.bOnly) / t.n).toFixed(2)
  } pts | ${p3(t.p)} |`;
}

function pairedSection(report: RunReport): string[] {
  const { mfiVsBaseline, mfiVsMatched } = report.paired;
  if (mfiVsBaseline === null && mfiVsMatched === null) return [];
  return [
    "## Paired test on the same test images",
    "",
    "McNemar's exact test: of the images exactly one of the two models gets right, how many go",
    "each way; p is the two-sided probability of a split at least this uneven if both models were",
    "equally good.",
    "",
    "| comparison | only MFI-ResNet right | only the other right | difference | p |",
    "| --- | ---: | ---: | ---: | ---: |",
    pairedLine("MFI-ResNet vs baseline", mfiVsBaseline),
    pairedLine("MFI-ResNet vs compute-matched baseline", mfiVsMatched),
    "",
  ];
}

function stageFitSection(report: RunReport): string[] {
  const rows = report.stageFits;
  if (rows.length === 0) return [];
  const base = report.models.find((m) => m.model === "baseline")?.top1 ?? null;
  const f3 = (x: number | null) => (x === null ? "-" : x.toFixed(3));
  const a1 = (x: number | null) => (x === null ? "-" : (100 * x).toFixed(1));
  const ratio = (g: StageFitRow["gradNorms"][number]) =>
    g === null || g.end.endpoint === 0 || g.end.meanflow === 0
      ? "-"
      : (g.end.meanflow / g.end.endpoint).toPrecision(2);
  return [
    "## Stage fits",
    "",
    "Each MeanFlow stage is fitted to the frozen baseline's stage (same initialisation and batches",
    "for every objective). One-step error = test MSE of the fitted stage over the variance of the",
    "teacher's stage output (0 = perfect, 1 = no better than the mean). In-situ top-1 = the",
    `baseline (top-1 ${pct(base)}) with only that stage replaced by its fit, before any further`,
    "training: the main readout of a fit. Gradient ratio = norm of the MeanFlow term's gradient",
    "over the (lambda-weighted) endpoint term's, at the end of the fit (- when a term is off).",
    "",
    "| objective | one-step error (stages 1-4) | in-situ top-1 % (stages 1-4) | gradient ratio MF/EP (1-4) | fit time |",
    "| --- | --- | --- | --- | ---: |",
    ...rows.map((r) =>
      `| ${r.variant === "main" ? "**this run**: " : `${r.variant}: `}${r.objective} | ${
        r.fitRelative.map(f3).join(" / ")
      } | ${r.inSitu.map(a1).join(" / ")} | ${r.gradNorms.map(ratio).join(" / ")} | ${
        (r.wallSeconds / 60).toFixed(1)
      } min |`
    ),
    "",
  ];
}

/**
 * The report as Markdown.
 *
 * @param report A report from {@linkcode buildReport}.
 * @returns Markdown text.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, planPhases, reportMarkdown } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const md = reportMarkdown(buildReport({
 *   config: DEFAULT_CONFIG, phases: planPhases(DEFAULT_CONFIG), results: {},
 *   data: "none", sample: false, backend: "cpu",
 * }));
 * assert.match(md, /\| mfi-resnet \| 12,635,082 \| -46.28 % \|/);
 * ```
 */
export function reportMarkdown(report: RunReport): string {
  const c = report.config;
  const matched = report.phases.find((p) => p.phase === "matched");
  const software = labelSaysSoftwareAdapter(report.backend) ||
    report.phases.some((p) => p.backend !== null && labelSaysSoftwareAdapter(p.backend));
  const lines = [
    `# MFI-ResNet run: ${c.name}`,
    "",
    ...(software
      ? [
        "> **WARNING: phases of this run ran on a SOFTWARE WebGPU adapter**",
        "> (`--allow-software-adapter`, testing only): it shows that the pipeline runs on WebGPU;",
        "> its wall times mean nothing.",
        "",
      ]
      : []),
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
    `Top-1 is measured on ${int(report.testImages)} test images, the same for every model. ` +
    "Images processed and wall time of a model count every phase that produced it (MFI-ResNet:",
    "all phases, the baseline's included)." +
    (matched
      ? " The compute-matched baseline (`matched`) is the baseline trained further with the " +
        `fine-tune's hyperparameters for as many epochs as MFI-ResNet trains after the baseline.`
      : ""),
    "",
    "The paper reports -46.28 % parameters / +0.23 points (CIFAR-10) and -45.59 % / +0.17 points",
    "(CIFAR-100) for MFI-ResNet-50 at full scale.",
    "",
    ...pairedSection(report),
    ...stageFitSection(report),
    "## Phases",
    "",
    "| phase | trainable params | epochs | images | wall time | top-1 before | top-1 after | stage fit (rel. MSE) | backend |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...report.phases.map((p) =>
      `| ${p.phase} | ${int(p.trainableParameters)} | ${p.epochs} | ${int(p.imagesProcessed)} | ${
        p.wallSeconds.toFixed(1)
      } s | ${pct(p.initialTop1)}${
        p.recalibratedTop1 === null ? "" : ` (${pct(p.recalibratedTop1)} recalibrated)`
      } | ${pct(p.top1)}${p.kind === "compress" && p.top1 !== null ? " in situ" : ""} | ${
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
    `Stage-fit objective: ${report.stageFits[0]?.objective ?? "-"}. Incubated stages: ${
      c.incubate.stages.join(", ")
    } (init: ${c.incubate.init}); meta fine-tunes ${
      c.meta.trainable === "head" ? "the head" : "everything"
    }; batch-norm recalibration before fine-tuning: ${
      c.finetune.recalibrateBatches > 0 ? `${c.finetune.recalibrateBatches} batches` : "off"
    }.`,
    "",
    "| phase | epochs | batch | optimiser | lr | weight decay |",
    "| --- | ---: | ---: | --- | ---: | ---: |",
    ...report.phases.filter((p, i, all) =>
      p.kind !== "compress" && p.kind !== "incubate" ||
      all.findIndex((q) => q.kind === p.kind) === i
    ).map((p) => {
      const k = p.kind === "matched" ? "matched" : p.kind;
      const t = k === "matched"
        ? { ...c.finetune, epochs: matchedEpochs(c) }
        : c[k as "baseline" | "compress" | "meta" | "incubate" | "finetune"];
      return `| ${k} | ${t.epochs} | ${t.batchSize} | ${t.optimizer}${
        t.optimizer === "sgd" ? ` (momentum ${t.momentum}${t.nesterov ? ", Nesterov" : ""})` : ""
      } | ${t.lr} | ${t.weightDecay} |`;
    }),
    "",
    "Plots: [accuracy vs parameters](accuracy_vs_parameters.svg), " +
    "[stage fits](stage_fits.svg), [in-situ accuracy](in_situ.svg), " +
    "[test accuracy per phase](phase_curves.svg).",
    "",
  ];
  return lines.join("\n");
}

/**
 * Writes `results.json`, `results.md` and the plots that have data into `dir`.
 *
 * @param dir The report folder (created).
 * @param report The report.
 * @param results The phase results (for the per-phase curves).
 * @returns The files written.
 * @example
 * ```ts
 * import { buildReport, DEFAULT_CONFIG, planPhases, writeReport } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * const report = buildReport({
 *   config: DEFAULT_CONFIG, phases: planPhases(DEFAULT_CONFIG), results: {},
 *   data: "none", sample: false, backend: "cpu",
 * });
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
  // Stage-fit error and in-situ accuracy per stage: one line per stage-fit objective.
  const label = (r: StageFitRow) => (r.variant === "main" ? "this run" : r.variant);
  await plot(
    "in_situ.svg",
    report.stageFits.map((r) => ({
      name: label(r),
      points: r.inSitu.flatMap((a, i) => (a === null ? [] : [[i + 1, 100 * a] as const])),
    })).filter((f) => f.points.length > 0),
    {
      title: "In-situ top-1: the baseline with one stage replaced by its MeanFlow fit",
      xLabel: "stage",
      yLabel: "test top-1 (%)",
    },
  );
  await plot(
    "stage_fits.svg",
    report.stageFits.map((r) => ({
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
