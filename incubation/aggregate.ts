/**
 * Seeds together: the reports of runs that differ only in their seed, combined into mean ± std
 * per model, MFI-ResNet's difference to the baseline and to the compute-matched baseline per seed,
 * McNemar's exact test per seed and pooled over seeds (the same test images, so the discordant
 * counts add up), the stage fits' in-situ accuracy per objective, and the verdict: the claim
 * holds if MFI-ResNet >= the compute-matched baseline (or, without one, the baseline) within the
 * seed spread. {@linkcode summaryJson} is the machine-readable digest.
 *
 * @module
 */
import type { RunReport } from "./report.ts";
import { type PairedTest, poolPaired } from "./statistics.ts";

/** Mean and sample standard deviation of one quantity over seeds. */
export interface SeedStat {
  /** Mean. */
  readonly mean: number;
  /** Sample standard deviation (0 for one seed). */
  readonly std: number;
  /** The values, in run order. */
  readonly values: readonly number[];
}

/** MFI-ResNet against one baseline, over seeds. */
export interface Comparison {
  /** `baseline` or `matched`. */
  readonly against: string;
  /** MFI-ResNet top-1 minus the other's, per seed, in points. */
  readonly deltaPoints: SeedStat;
  /** Paired test per seed. */
  readonly perSeed: readonly PairedTest[];
  /** Paired test of the pooled discordant counts. */
  readonly pooled: PairedTest;
  /** Mean delta >= -(its std): MFI-ResNet at least as good within the seed spread. */
  readonly withinSpread: boolean;
}

/** The combined runs. */
export interface SeedSummary {
  /** Config name shared by the runs. */
  readonly name: string;
  /** Seeds, in run order. */
  readonly seeds: readonly number[];
  /** Scale of the runs. */
  readonly scale: string;
  /** Test images per run. */
  readonly testImages: number;
  /** Per model: parameters (equal across seeds) and top-1 statistics. */
  readonly models: ReadonlyArray<{
    readonly model: string;
    readonly parameters: number;
    readonly changePercent: number;
    readonly top1: SeedStat;
  }>;
  /** MFI-ResNet vs the baseline, and vs the compute-matched baseline when the runs have one. */
  readonly comparisons: readonly Comparison[];
  /** The comparison the verdict rests on: `matched` when present, else `baseline`. */
  readonly decisive: string;
  /** The decisive comparison is within the spread. */
  readonly claimHolds: boolean;
  /** Stage fits per objective: mean one-step error and in-situ top-1 per stage over seeds. */
  readonly stageFits: ReadonlyArray<{
    readonly variant: string;
    readonly objective: string;
    /** The seeds whose runs fitted this objective (ablation variants may run on fewer). */
    readonly seeds: readonly number[];
    readonly fitRelative: readonly (number | null)[];
    readonly inSitu: readonly (number | null)[];
  }>;
  /** Provenance notes (e.g. a baseline loaded from a checkpoint instead of trained in the run). */
  readonly notes: readonly string[];
}

function stat(values: number[]): SeedStat {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1
    ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1)
    : 0;
  return { mean, std: Math.sqrt(variance), values };
}

/**
 * Config keys that may differ between the runs of one aggregate: the seed; `ablation` (which
 * extra stage-fit variants ran; the main pipeline does not read it); `baseline.checkpoint` (where
 * the baseline's weights came from: a run that loads a baseline trained with the same config
 * instead of training it; reported as a note).
 */
const FREE_KEYS = new Set(["seed", "ablation", "baseline.checkpoint"]);

function flatConfig(value: unknown, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      for (const [kk, vv] of flatConfig(v, prefix === "" ? k : `${prefix}.${k}`)) out.set(kk, vv);
    }
  } else out.set(prefix, JSON.stringify(value));
  return out;
}

function configDifferences(a: RunReport, b: RunReport): string[] {
  const fa = flatConfig(a.config);
  const fb = flatConfig(b.config);
  return [...new Set([...fa.keys(), ...fb.keys()])]
    .filter((k) => !FREE_KEYS.has(k) && fa.get(k) !== fb.get(k))
    .sort();
}

function meanOrNull(values: ReadonlyArray<number | null>): number | null {
  return values.some((v) => v === null) ? null : stat(values as number[]).mean;
}

/**
 * Combines runs of one config that differ only in their seed.
 *
 * @param reports Each run's `results.json`.
 * @returns The summary.
 * @throws {Error} On no reports, repeated seeds, configs that differ beyond the seed, runs on
 *   different test sets, or unfinished runs.
 * @example
 * ```ts
 * import { aggregateReports, type RunReport } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.throws(() => aggregateReports([] as RunReport[]), /no reports/);
 * ```
 */
export function aggregateReports(reports: readonly RunReport[]): SeedSummary {
  if (reports.length === 0) throw new Error("aggregateReports: no reports given");
  const first = reports[0];
  if (first.format !== "mfi-results/2") {
    throw new Error(
      `aggregateReports: results of format ${JSON.stringify(first.format)}; this version reads ` +
        '"mfi-results/2" (regenerate the report with this version)',
    );
  }
  const seeds = reports.map((r) => r.config.seed);
  if (new Set(seeds).size !== seeds.length) {
    throw new Error(`aggregateReports: seeds repeat (${seeds.join(", ")}); give one run per seed`);
  }
  for (const r of reports) {
    const differ = configDifferences(first, r);
    if (differ.length > 0) {
      throw new Error(
        `aggregateReports: run with seed ${r.config.seed} has another config than seed ` +
          `${first.config.seed} (beyond the seed) at ${differ.join(", ")}; aggregate runs of ` +
          "one config only",
      );
    }
    if (r.sample !== first.sample || r.testImages !== first.testImages) {
      throw new Error(
        "aggregateReports: the runs were evaluated on different test sets " +
          "(sample or test-image count differ)",
      );
    }
    for (const m of r.models) {
      if (m.top1 === null) {
        throw new Error(
          `aggregateReports: run with seed ${r.config.seed} has no top-1 for ${m.model}; finish it first`,
        );
      }
    }
  }
  const models = first.models.map((m, i) => ({
    model: m.model,
    parameters: m.parameters,
    changePercent: m.changePercent,
    top1: stat(reports.map((r) => r.models[i].top1!)),
  }));
  const top1 = (r: RunReport, model: string) => r.models.find((m) => m.model === model)!.top1!;
  const comparisons = (["baseline", "matched"] as const).flatMap((against): Comparison[] => {
    if (!first.models.some((m) => m.model === against)) return [];
    const key = against === "baseline" ? "mfiVsBaseline" : "mfiVsMatched";
    const perSeed = reports.map((r) => {
      const t = r.paired[key];
      if (t === null) {
        throw new Error(
          `aggregateReports: run with seed ${r.config.seed} has no paired test against ` +
            `${against}; finish it first`,
        );
      }
      return t;
    });
    const deltaPoints = stat(reports.map((r) => 100 * (top1(r, "mfi-resnet") - top1(r, against))));
    return [{
      against,
      deltaPoints,
      perSeed,
      pooled: poolPaired(perSeed),
      withinSpread: deltaPoints.mean >= -deltaPoints.std,
    }];
  });
  const decisive = comparisons.find((c) => c.against === "matched") ?? comparisons[0];
  // Stage-fit objectives: the runs' own (`main`) in every run; ablation variants in the runs
  // that ran them (each row says over which seeds it is averaged).
  const variants = [...new Set(reports.flatMap((r) => r.stageFits.map((f) => f.variant)))];
  const stageFits = variants.map((variant) => {
    const having = reports.filter((r) => r.stageFits.some((f) => f.variant === variant));
    const rows = having.map((r) => r.stageFits.find((f) => f.variant === variant)!);
    if (new Set(rows.map((x) => x.objective)).size > 1) {
      throw new Error(
        `aggregateReports: stage-fit variant ${variant} has different objectives across the runs`,
      );
    }
    return {
      variant,
      objective: rows[0].objective,
      seeds: having.map((r) => r.config.seed),
      fitRelative: [0, 1, 2, 3].map((l) => meanOrNull(rows.map((x) => x.fitRelative[l]))),
      inSitu: [0, 1, 2, 3].map((l) => meanOrNull(rows.map((x) => x.inSitu[l]))),
    };
  });
  const notes = reports.flatMap((r) =>
    (r.config.baseline?.checkpoint ?? null) === null ? [] : [
      `seed ${r.config.seed}: the baseline was trained in its own run with the same config and ` +
      "loaded (`baseline.checkpoint`), not trained inside this run",
    ]
  );
  return {
    name: first.config.name,
    seeds,
    scale: first.scale,
    testImages: first.testImages,
    models,
    comparisons,
    decisive: decisive.against,
    claimHolds: decisive.withinSpread,
    stageFits,
    notes,
  };
}

/**
 * The machine-readable digest of a summary (`summary.json`): top-1 in percent (mean and sample
 * std over seeds) of the baseline, the compute-matched baseline and MFI-ResNet, the pooled
 * McNemar p-values, and the mean in-situ top-1 (percent) per stage for each stage-fit objective
 * (`main` = the runs' own objective; the others are ablation variants).
 *
 * @param s The summary.
 * @returns A JSON-serialisable object.
 * @example
 * ```ts
 * import { summaryJson, type SeedSummary } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const stat = (mean: number) => ({ mean, std: 0, values: [mean] });
 * const s = {
 *   name: "quick", seeds: [0], scale: "reduced", testImages: 10000, decisive: "baseline",
 *   claimHolds: true, stageFits: [], comparisons: [{ against: "baseline", pooled: { p: 0.5 } }],
 *   models: [{ model: "baseline", top1: stat(0.5) }, { model: "mfi-resnet", top1: stat(0.51) }],
 * } as unknown as SeedSummary;
 * const j = summaryJson(s) as { mfi: { mean: number }; baselineMatched: unknown };
 * assert.equal(j.mfi.mean, 51);
 * assert.equal(j.baselineMatched, null);
 * ```
 */
export function summaryJson(s: SeedSummary): unknown {
  const model = (name: string) => {
    const m = s.models.find((x) => x.model === name);
    return m === undefined ? null : { mean: 100 * m.top1.mean, std: 100 * m.top1.std };
  };
  const p = (against: string) => s.comparisons.find((c) => c.against === against)?.pooled.p ?? null;
  return {
    preset: s.name,
    seeds: s.seeds,
    testImages: s.testImages,
    scale: s.scale,
    unit: "top-1 accuracy in percent",
    baseline: model("baseline"),
    baselineMatched: model("matched"),
    meta: model("meta"),
    mfi: model("mfi-resnet"),
    mcnemarPooled: { mfiVsMatched: p("matched"), mfiVsBaseline: p("baseline") },
    claimHolds: s.claimHolds,
    decisiveComparison: s.decisive,
    inSitu: Object.fromEntries(
      s.stageFits.map((f) => [f.variant, f.inSitu.map((a) => (a === null ? null : 100 * a))]),
    ),
    objectives: Object.fromEntries(s.stageFits.map((f) => [f.variant, f.objective])),
    inSituSeeds: Object.fromEntries(s.stageFits.map((f) => [f.variant, f.seeds])),
    notes: s.notes,
  };
}

/**
 * The summary as Markdown.
 *
 * @param s The summary.
 * @returns Markdown text.
 * @example
 * ```ts
 * import { aggregateMarkdown, type SeedSummary } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const md = aggregateMarkdown({
 *   name: "x", seeds: [0], scale: "reduced", testImages: 10, models: [], comparisons: [],
 *   decisive: "baseline", claimHolds: true, stageFits: [], notes: [],
 * } as SeedSummary);
 * assert.match(md, /^# x: 1 seed/);
 * ```
 */
export function aggregateMarkdown(s: SeedSummary): string {
  const pm = (x: SeedStat, scale = 100) =>
    `${(scale * x.mean).toFixed(2)} ± ${(scale * x.std).toFixed(2)}`;
  const p3 = (p: number) => (p < 0.001 ? p.toExponential(1) : p.toFixed(3));
  const name = (against: string) => against === "matched" ? "compute-matched baseline" : "baseline";
  return [
    `# ${s.name}: ${s.seeds.length} seed(s) (${s.seeds.join(", ")})`,
    "",
    `Scale: ${s.scale}. Every model is evaluated on the same ${
      s.testImages.toLocaleString("en-US")
    } test images.`,
    "",
    "| model | parameters | vs baseline | top-1 (%) mean ± std | per seed |",
    "| --- | ---: | ---: | ---: | --- |",
    ...s.models.map((m) =>
      `| ${m.model} | ${m.parameters.toLocaleString("en-US")} | ${m.changePercent.toFixed(2)} % | ${
        pm(m.top1)
      } | ${m.top1.values.map((v) => (100 * v).toFixed(2)).join(", ")} |`
    ),
    "",
    "| MFI-ResNet vs | difference (pts), mean ± std | per seed | McNemar p per seed | pooled: only MFI right / only other right | pooled p |",
    "| --- | ---: | --- | --- | ---: | ---: |",
    ...s.comparisons.map((c) =>
      `| ${name(c.against)} | ${pm(c.deltaPoints, 1)} | ${
        c.deltaPoints.values.map((v) => v.toFixed(2)).join(", ")
      } | ${c.perSeed.map((t) => p3(t.p)).join(", ")} | ${c.pooled.aOnly} / ${c.pooled.bOnly} | ${
        p3(c.pooled.p)
      } |`
    ),
    "",
    `Claim (MFI-ResNet >= the ${name(s.decisive)} within the seed spread): ${
      s.claimHolds ? "**holds**" : "**does not hold**"
    }${s.seeds.length < 2 ? " (one seed: no spread; run more seeds)" : ""}.`,
    "",
    ...(s.stageFits.length === 0 ? [] : [
      "## Stage fits (mean over seeds)",
      "",
      "| objective | one-step error (stages 1-4) | in-situ top-1 % (stages 1-4) |",
      "| --- | --- | --- |",
      ...s.stageFits.map((f) =>
        `| ${f.variant === "main" ? "**runs' own**" : f.variant}: ${f.objective}${
          f.seeds.length === s.seeds.length
            ? ""
            : ` (seed${f.seeds.length > 1 ? "s" : ""} ${f.seeds.join(", ")} only)`
        } | ${f.fitRelative.map((x) => (x === null ? "-" : x.toFixed(3))).join(" / ")} | ${
          f.inSitu.map((x) => (x === null ? "-" : (100 * x).toFixed(1))).join(" / ")
        } |`
      ),
      "",
    ]),
    ...(s.notes.length === 0 ? [] : ["Notes:", "", ...s.notes.map((n) => `- ${n}`), ""]),
  ].join("\n");
}
