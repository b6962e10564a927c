/**
 * `deno task data <command>`: the CIFAR data cache and a data check.
 *
 *     deno task data check [--dataset cifar10|cifar100] [--data-dir D | --archive F]
 *                          [--split train|test|all] [--labels fine|coarse] [--json]
 *     deno task data download [--dataset cifar10|cifar100] [--data-dir D] [--url U] [--md5 M]
 *
 * `check` loads each requested split (default: both) and prints, as a table (or JSON with
 * `--json`), record counts, images per class (min/max), per-channel mean and std, and the md5 of
 * every file read (compared with the published md5 where the file is an official one), then
 * every problem found: a split missing, an md5 that differs from the published one, a file
 * larger or smaller than the official one (an oversized file is refused before it is read), a
 * file that cannot be read. It exits 0 only when there is no problem, 1 otherwise (2 on usage
 * errors). With neither `--data-dir` nor `--archive` it reads the data cache (`MFI_DATA_DIR`,
 * default `~/.cache/mfi-resnet`).
 * `download` fetches the official archive into the cache (size-limited, read timeout, md5-verified;
 * partial files left by a killed download are removed).
 *
 * @module
 */
import {
  type CifarLabelKind,
  cifarSpec,
  type CifarSplitName,
  type DataProblem,
  ensureCifar,
  formatProblems,
  loadCifar,
  loadProblem,
  publishedMd5,
  splitProblems,
  type SplitSummary,
  splitSummary,
} from "@mfi/data";
import { type CliSpec, type FlagValue, runCli, UsageError } from "./_cli.ts";

/** `deno task data`'s command line. */
export const DATA_CLI: CliSpec = {
  name: "data",
  summary: "the CIFAR data cache: download the official archive (md5-verified), or check a copy " +
    "(records, images per class, channel statistics, file md5s)",
  usage: "check|download [options]",
  positionals: {
    name: "check|download",
    doc: "check: load and summarise the data; download: fetch the archive into the cache",
    min: 1,
    max: 1,
    choices: ["check", "download"],
  },
  flags: {
    dataset: {
      type: "string",
      choices: ["cifar10", "cifar100"],
      default: "cifar10",
      doc: "which CIFAR",
    },
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      defaultText: "MFI_DATA_DIR, else ~/.cache/mfi-resnet",
      example: "/data/cifar",
      doc: "the data folder (check: official binaries or the cache; download: the cache)",
    },
    archive: {
      type: "string",
      placeholder: "FILE",
      example: "cifar-10-binary.tar.gz",
      doc: "check only: read an official .tar.gz instead of a folder",
    },
    split: {
      type: "string",
      choices: ["train", "test", "all"],
      default: "all",
      doc: "check only: which split",
    },
    labels: {
      type: "string",
      choices: ["fine", "coarse"],
      defaultText: "fine",
      doc: "check only: CIFAR-100 label kind",
    },
    json: { type: "boolean", default: false, doc: "check only: print JSON instead of tables" },
    url: {
      type: "string",
      placeholder: "URL",
      defaultText: "the official archive's URL",
      example: "https://mirror.example/cifar-10-binary.tar.gz",
      doc: "download only: fetch from this URL",
    },
    md5: {
      type: "string",
      placeholder: "HEX",
      defaultText: "the published md5",
      example: "c32a1d4ab5d03f1284b67883e8d87530",
      doc: "download only: expected md5 of the archive",
    },
  },
  renamed: {
    dir: "--dir was renamed --data-dir (one spelling across tasks); use --data-dir DIR",
  },
  examples: ["download", "check", "check --dataset cifar100 --labels coarse --json"],
};

type SplitReport =
  | ({ readonly split: CifarSplitName; readonly status: "ok" } & SplitSummary)
  | {
    readonly split: CifarSplitName;
    readonly status: "missing" | "unreadable";
    readonly message: string;
  };

function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c])).join(" | ")} |`;
  return [line(rows[0]), line(widths.map((w) => "-".repeat(w))), ...rows.slice(1).map(line)]
    .join("\n");
}

async function check(values: Readonly<Record<string, FlagValue>>): Promise<number> {
  const dataset = values.dataset as "cifar10" | "cifar100";
  const spec = cifarSpec(dataset);
  const which = values.split as string;
  if (values["data-dir"] && values.archive) {
    throw new UsageError("pass either --data-dir or --archive, not both");
  }
  const splits: CifarSplitName[] = which === "all" ? ["train", "test"] : [which as CifarSplitName];
  const labels = values.labels as CifarLabelKind | undefined;
  const reports: SplitReport[] = [];
  const problems: DataProblem[] = [];
  for (const split of splits) {
    try {
      const data = await loadCifar({
        dataset,
        split,
        dir: values["data-dir"] as string | undefined,
        archive: values.archive as string | undefined,
        labels,
      });
      reports.push({ split, status: "ok", ...splitSummary(data) });
      problems.push(...splitProblems(data));
    } catch (error) {
      const problem = loadProblem(error, dataset, split);
      problems.push(problem);
      reports.push({
        split,
        status: problem.kind === "missing" ? "missing" : "unreadable",
        message: (error as Error).message,
      });
    }
  }
  // Files shared by both splits (the archive, label names) are reported once.
  const seenProblems = new Set<string>();
  const unique = problems.filter((p) => {
    const key = `${p.kind}:${p.path || p.message}`;
    if (seenProblems.has(key)) return false;
    seenProblems.add(key);
    return true;
  });
  const ok = unique.length === 0;
  const printProblems = (): void => {
    if (ok) return;
    console.error(
      `\n${unique.length} problem(s): this is not the official ${spec.title} distribution.\n` +
        `${formatProblems(unique)}\nFix: download it again (\`deno task data download ` +
        `--dataset ${dataset}\`) or unpack the official files; see ${spec.url}.`,
    );
  };
  if (values.json) {
    console.log(JSON.stringify(
      {
        dataset,
        source: values.archive ?? values["data-dir"] ?? "cache",
        published: { mean: spec.mean, std: spec.std },
        splits: reports.map((r) =>
          r.status === "ok"
            ? {
              ...r,
              files: r.files.map((f) => ({
                ...f,
                publishedMd5: publishedMd5(dataset, f.path) ?? null,
              })),
            }
            : r
        ),
        ok,
        problems: unique,
      },
      null,
      2,
    ));
    printProblems();
    return ok ? 0 : 1;
  }
  const f4 = (v: number) => v.toFixed(4);
  console.log(`${spec.title} (${values.archive ?? values["data-dir"] ?? "data cache"})\n`);
  const rows = [[
    "split",
    "records",
    "expected",
    "per class min/max",
    "mean R, G, B",
    "std R, G, B",
  ]];
  for (const r of reports) {
    rows.push(
      r.status === "ok"
        ? [
          r.split,
          String(r.records),
          String(r.expectedRecords),
          `${r.perClassMin}/${r.perClassMax} (${r.classes} classes)`,
          r.channels.mean.map(f4).join(", "),
          r.channels.std.map(f4).join(", "),
        ]
        : [r.split, r.status, String(spec.records[r.split]), "-", "-", "-"],
    );
  }
  rows.push(["published", "", "", "", spec.mean.map(f4).join(", "), spec.std.map(f4).join(", ")]);
  console.log(formatTable(rows));
  const files = reports.flatMap((r) => r.status === "ok" ? r.files : []);
  const seen = new Set<string>();
  const fileRows = [["file", "bytes", "md5", "published md5"]];
  for (const f of files) {
    if (seen.has(f.path)) continue;
    seen.add(f.path);
    const published = publishedMd5(dataset, f.path);
    const verdict = published === undefined
      ? "-"
      : published === f.md5
      ? "matches"
      : `DIFFERS (${published})`;
    fileRows.push([f.path, String(f.bytes), f.md5, verdict]);
  }
  if (fileRows.length > 1) console.log(`\n${formatTable(fileRows)}`);
  for (const r of reports) {
    if (r.status !== "ok") console.log(`\n${r.split}: ${r.status}. ${r.message}`);
  }
  printProblems();
  return ok ? 0 : 1;
}

async function download(values: Readonly<Record<string, FlagValue>>): Promise<number> {
  const result = await ensureCifar({
    dataset: values.dataset as "cifar10" | "cifar100",
    dir: values["data-dir"] as string | undefined,
    url: values.url as string | undefined,
    md5: values.md5 as string | undefined,
  });
  console.log(
    `${result.downloaded ? "downloaded" : "already cached"}: ${result.path} ` +
      `(${result.bytes} bytes, md5 ${result.md5} verified)`,
  );
  return 0;
}

if (import.meta.main) {
  await runCli(DATA_CLI, async ({ values, positionals, given }) => {
    const command = positionals[0];
    const checkOnly = ["archive", "split", "labels", "json"].filter((f) => given.has(f));
    if (command === "download" && checkOnly.length > 0) {
      throw new UsageError(
        `download takes only --dataset, --data-dir, --url and --md5; drop --${checkOnly[0]}`,
      );
    }
    const downloadOnly = ["url", "md5"].filter((f) => given.has(f));
    if (command === "check" && downloadOnly.length > 0) {
      throw new UsageError(`--${downloadOnly[0]} is for download only; drop it from check`);
    }
    return command === "check" ? await check(values) : await download(values);
  });
}
