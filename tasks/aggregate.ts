/**
 * `deno task aggregate RUN_DIR... [--out FILE]`: combines the reports of runs that differ only in
 * their seed (`<run>/report/results.json`) into mean ± std per model, MFI-ResNet vs the baseline
 * and the compute-matched baseline (per seed and pooled McNemar tests) and the verdict of
 * docs/method.md's evaluation protocol; with `--out FILE` it also writes `summary.json`
 * (machine-readable) in FILE's folder.
 *
 * @module
 */
import { aggregateMarkdown, aggregateReports, type RunReport, summaryJson } from "@mfi/incubation";
import { type CliSpec, runCli, UsageError } from "./_cli.ts";

/** `deno task aggregate`'s command line. */
export const AGGREGATE_CLI: CliSpec = {
  name: "aggregate",
  summary:
    "combine the reports of runs that differ only in their seed into mean ± std per model, " +
    "paired McNemar tests against the baseline and the compute-matched baseline, and the verdict",
  usage: "RUN_DIR... [--out FILE]",
  positionals: {
    name: "RUN_DIR...",
    doc: "run folders (their report/results.json) or results.json files, one per seed",
    min: 1,
  },
  flags: {
    out: {
      type: "string",
      placeholder: "FILE",
      example: "docs/results/quick/aggregate.md",
      doc: "also write the markdown here, and summary.json beside it",
    },
  },
  examples: ["runs/quick-seed0 runs/quick-seed1 runs/quick-seed2 --out aggregate.md"],
};

if (import.meta.main) {
  await runCli(AGGREGATE_CLI, async ({ values, positionals }) => {
    const reports: RunReport[] = [];
    for (const dir of positionals) {
      const path = dir.endsWith(".json") ? dir : `${dir}/report/results.json`;
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (e) {
        throw new UsageError(
          `cannot read ${path} (${(e as Error).message}); pass run folders that hold ` +
            "report/results.json",
        );
      }
      reports.push(JSON.parse(text));
    }
    const summary = aggregateReports(reports);
    const text = aggregateMarkdown(summary);
    if (typeof values.out === "string") {
      const out = values.out;
      await Deno.writeTextFile(out, text);
      // The machine-readable digest beside it.
      const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : ".";
      await Deno.writeTextFile(
        `${dir}/summary.json`,
        JSON.stringify(summaryJson(summary), null, 2) + "\n",
      );
    }
    console.log(text);
  });
}
