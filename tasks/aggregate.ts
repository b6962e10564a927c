/**
 * `deno task aggregate RUN_DIR... [--out FILE]`: combines the reports of runs that differ only in
 * their seed (`<run>/report/results.json`) into mean ± std per model, MFI-ResNet vs the baseline
 * and the compute-matched baseline (per seed and pooled McNemar tests) and the verdict; with
 * `--out FILE` it also writes `summary.json` (machine-readable) in FILE's folder.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { aggregateMarkdown, aggregateReports, type RunReport, summaryJson } from "@mfi/incubation";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string" } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  console.error("usage: deno task aggregate runs/quick-seed0 runs/quick-seed1 ... [--out FILE]");
  Deno.exit(2);
}
try {
  const reports: RunReport[] = [];
  for (const dir of positionals) {
    const path = dir.endsWith(".json") ? dir : `${dir}/report/results.json`;
    reports.push(JSON.parse(await Deno.readTextFile(path)));
  }
  const summary = aggregateReports(reports);
  const text = aggregateMarkdown(summary);
  if (values.out) {
    await Deno.writeTextFile(values.out, text);
    // The machine-readable digest beside it.
    const dir = values.out.includes("/") ? values.out.slice(0, values.out.lastIndexOf("/")) : ".";
    await Deno.writeTextFile(
      `${dir}/summary.json`,
      JSON.stringify(summaryJson(summary), null, 2) + "\n",
    );
  }
  console.log(text);
} catch (e) {
  console.error(`aggregate: ${(e as Error).message}`);
  Deno.exit(2);
}
