/**
 * `deno task params:report [--out docs/results/params.md] [--check]`: writes the parameter
 * report of the paper presets (or, with `--check`, fails if the file is out of date).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { paramsReportMarkdown } from "@mfi/incubation";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "docs/results/params.md" },
    check: { type: "boolean", default: false },
  },
});
const text = paramsReportMarkdown();
if (values.check) {
  const current = await Deno.readTextFile(values.out!).catch(() => "");
  if (current !== text) {
    console.error(`${values.out} is out of date: run deno task params:report`);
    Deno.exit(1);
  }
  console.log(`${values.out} is up to date`);
} else {
  await Deno.mkdir(values.out!.replace(/\/[^/]*$/, ""), { recursive: true });
  await Deno.writeTextFile(values.out!, text);
  console.log(text);
}
