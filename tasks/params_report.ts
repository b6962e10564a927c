/**
 * `deno task params:report [--out docs/results/params.md] [--check]`: writes the parameter
 * report of the paper presets (or, with `--check`, fails if the file is out of date).
 *
 * @module
 */
import { paramsReportMarkdown } from "@mfi/incubation";
import { type CliSpec, runCli } from "./_cli.ts";

/** `deno task params:report`'s command line. */
export const PARAMS_REPORT_CLI: CliSpec = {
  name: "params:report",
  summary: "write the parameter report of the paper presets (docs/results/params.md)",
  flags: {
    out: {
      type: "string",
      placeholder: "FILE",
      default: "docs/results/params.md",
      example: "/tmp/params.md",
      doc: "where to write it",
    },
    check: {
      type: "boolean",
      default: false,
      doc: "write nothing; exit 1 if the file is out of date",
    },
  },
  examples: ["", "--check"],
};

if (import.meta.main) {
  await runCli(PARAMS_REPORT_CLI, async ({ values }) => {
    const out = values.out as string;
    const text = paramsReportMarkdown();
    if (values.check) {
      const current = await Deno.readTextFile(out).catch(() => "");
      if (current !== text) {
        console.error(`params:report: ${out} is out of date: run deno task params:report`);
        return 1;
      }
      console.log(`${out} is up to date`);
      return;
    }
    const dir = out.includes("/") ? out.replace(/\/[^/]*$/, "") : ".";
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(out, text);
    console.log(text);
  });
}
