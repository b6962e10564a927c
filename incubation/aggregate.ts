/**
 * Seeds together: METHOD.md section 8 asks for MFI-ResNet's accuracy against its own baseline as
 * mean and spread over seeds. {@linkcode aggregateReports} combines the `results.json` of runs
 * that differ only in their seed; {@linkcode aggregateMarkdown} renders the verdict.
 *
 * @module
 */
import type { RunReport } from "./report.ts";

/** Mean and sample standard deviation of one quantity over seeds. */
export interface SeedStat {
  /** Mean. */
  readonly mean: number;
  /** Sample standard deviation (0 for one seed). */
  readonly std: number;
  /** The values, in run order. */
  readonly values: readonly number[];
}

/** The combined runs. */
export interface SeedSummary {
  /** Config name shared by the runs. */
  readonly name: string;
  /** Seeds, in run order. */
  readonly seeds: readonly number[];
  /** Scale of the runs. */
  readonly scale: string;
  /** Per model: parameters (equal across seeds) and top-1 statistics. */
  readonly models: ReadonlyArray<{
    readonly model: string;
    readonly parameters: number;
    readonly changePercent: number;
    readonly top1: SeedStat;
  }>;
  /** MFI-ResNet top-1 minus the baseline's, per seed, in points. */
  readonly deltaPoints: SeedStat;
  /** The claim holds if mean delta >= -(the delta's std), i.e. MFI >= baseline within the spread. */
  readonly claimHolds: boolean;
  /**
   * The stage-fit ablation over seeds, one row per objective (empty if the runs have none):
   * mean relative stage-fit MSE per stage, meta-model and MFI-ResNet top-1.
   */
  readonly ablation: ReadonlyArray<{
    readonly objective: string;
    readonly fitRelative: readonly (number | null)[];
    readonly metaTop1: SeedStat;
    readonly mfiTop1: SeedStat;
    /** MFI-ResNet top-1 minus the seed's baseline, in points. */
    readonly mfiDeltaPoints: SeedStat;
  }>;
}

function stat(values: number[]): SeedStat {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1
    ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1)
    : 0;
  return { mean, std: Math.sqrt(variance), values };
}

function withoutSeed(report: RunReport): string {
  const { seed: _seed, ...rest } = report.config;
  return JSON.stringify(rest);
}

/**
 * Combines run reports that differ only in their seed.
 *
 * @param reports Parsed `results.json` of each run.
 * @returns Means and spreads, and whether MFI-ResNet >= baseline within the seed spread.
 * @throws {Error} If there are no reports, a run is incomplete, the configs differ beyond the
 *   seed, or a seed repeats.
 * @example
 * ```ts
 * import { aggregateReports, type RunReport } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const run = (seed: number, base: number, mfi: number) => ({
 *   config: { seed, name: "q" }, scale: "s", sample: false,
 *   models: [
 *     { model: "baseline", parameters: 10, changePercent: 0, top1: base },
 *     { model: "meta", parameters: 5, changePercent: -50, top1: 0.5 },
 *     { model: "mfi-resnet", parameters: 6, changePercent: -40, top1: mfi },
 *   ],
 * }) as unknown as RunReport;
 * const s = aggregateReports([run(0, 0.9, 0.91), run(1, 0.9, 0.89)]);
 * assert.equal(s.deltaPoints.mean.toFixed(6), "0.000000");
 * assert.equal(s.claimHolds, true);
 * ```
 */
export function aggregateReports(reports: readonly RunReport[]): SeedSummary {
  if (reports.length === 0) throw new Error("aggregateReports: no reports given");
  const first = reports[0];
  const seeds = reports.map((r) => r.config.seed);
  if (new Set(seeds).size !== seeds.length) {
    throw new Error(`aggregateReports: seeds repeat (${seeds.join(", ")}); give one run per seed`);
  }
  for (const r of reports) {
    if (withoutSeed(r) !== withoutSeed(first)) {
      throw new Error(
        `aggregateReports: run with seed ${r.config.seed} has another config than seed ` +
          `${first.config.seed} (beyond the seed); aggregate runs of one config only`,
      );
    }
    if (r.sample !== first.sample) {
      throw new Error("aggregateReports: some runs used the embedded sample and some did not");
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
  const ablation = aggregateAblation(reports);
  const base = first.models.findIndex((m) => m.model === "baseline");
  const mfi = first.models.findIndex((m) => m.model === "mfi-resnet");
  const deltaPoints = stat(
    reports.map((r) => 100 * (r.models[mfi].top1! - r.models[base].top1!)),
  );
  return {
    name: first.config.name,
    seeds,
    scale: first.scale,
    models,
    deltaPoints,
    claimHolds: deltaPoints.mean >= -deltaPoints.std,
    ablation,
  };
}

function aggregateAblation(reports: readonly RunReport[]): SeedSummary["ablation"] {
  const rows = reports.map((r) => r.ablation ?? []);
  if (rows[0].length === 0) return [];
  return rows[0].map((row, i) => {
    const all = rows.map((rs, k) => {
      const r = rs[i];
      if (r === undefined || r.objective !== row.objective) {
        throw new Error(
          `aggregateReports: run with seed ${reports[k].config.seed} has no "${row.objective}" ` +
            "ablation row; run the same ablation in every run",
        );
      }
      if (r.metaTop1 === null || r.mfiTop1 === null || r.mfiDeltaPoints === null) {
        throw new Error(
          `aggregateReports: the "${row.objective}" ablation of seed ${
            reports[k].config.seed
          } is not finished; finish it first`,
        );
      }
      return r;
    });
    return {
      objective: row.objective,
      fitRelative: row.fitRelative.map((_, l) => {
        const v = all.map((r) => r.fitRelative[l]);
        return v.some((x) => x === null) ? null : stat(v as number[]).mean;
      }),
      metaTop1: stat(all.map((r) => r.metaTop1!)),
      mfiTop1: stat(all.map((r) => r.mfiTop1!)),
      mfiDeltaPoints: stat(all.map((r) => r.mfiDeltaPoints!)),
    };
  });
}

/**
 * Renders a seed summary as Markdown.
 *
 * @param s The summary.
 * @returns Markdown text.
 */
export function aggregateMarkdown(s: SeedSummary): string {
  const pm = (x: SeedStat, scale = 100) =>
    `${(scale * x.mean).toFixed(2)} ± ${(scale * x.std).toFixed(2)}`;
  return [
    `# ${s.name}: ${s.seeds.length} seed(s) (${s.seeds.join(", ")})`,
    "",
    `Scale: ${s.scale}.`,
    "",
    "| model | parameters | vs baseline | top-1 (%) mean ± std | per seed |",
    "| --- | ---: | ---: | ---: | --- |",
    ...s.models.map((m) =>
      `| ${m.model} | ${m.parameters.toLocaleString("en-US")} | ${m.changePercent.toFixed(2)} % | ${
        pm(m.top1)
      } | ${m.top1.values.map((v) => (100 * v).toFixed(2)).join(", ")} |`
    ),
    "",
    `MFI-ResNet minus baseline: ${pm(s.deltaPoints, 1)} points (per seed: ${
      s.deltaPoints.values.map((v) => v.toFixed(2)).join(", ")
    }).`,
    "",
    `Claim (METHOD.md section 8: MFI-ResNet >= baseline within the seed spread): ${
      s.claimHolds ? "**holds**" : "**does not hold**"
    }${s.seeds.length < 2 ? " (one seed: no spread; run more seeds)" : ""}.`,
    "",
    ...(s.ablation.length === 0 ? [] : [
      "## Stage-fit ablation",
      "",
      "Same baseline per seed; only the objective of the stage fits differs. Stage fit = one-step",
      "test MSE over the teacher output's variance, mean over seeds.",
      "",
      "| stage-fit objective | stage fit, rel. MSE (stages 1-4) | meta top-1 (%) | MFI-ResNet top-1 (%) | MFI-ResNet per seed | MFI-ResNet vs baseline (pts) |",
      "| --- | --- | ---: | ---: | --- | ---: |",
      ...s.ablation.map((a) =>
        `| ${a.objective} | ${
          a.fitRelative.map((f) => (f === null ? "-" : f.toFixed(3))).join(" / ")
        } | ${pm(a.metaTop1)} | ${pm(a.mfiTop1)} | ${
          a.mfiTop1.values.map((v) => (100 * v).toFixed(2)).join(", ")
        } | ${pm(a.mfiDeltaPoints, 1)} |`
      ),
      "",
    ]),
  ].join("\n");
}
