/**
 * `deno task aggregate RUN_DIR... [--out FILE]`: combines the reports of runs that differ only in
 * their seed (`<run>/report/results.json`) into mean ± std per model and METHOD.md section 8's
 * verdict (MFI-ResNet >= baseline within the seed spread).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { aggregateMarkdown, aggregateReports, type RunReport } from "@mfi/incubation";

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
  const text = aggregateMarkdown(aggregateReports(reports));
  if (values.out) await Deno.writeTextFile(values.out, text);
  console.log(text);
} catch (e) {
  console.error(`aggregate: ${(e as Error).message}`);
  Deno.exit(2);
}
