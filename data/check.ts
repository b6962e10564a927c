/**
 * What makes data fail the check: a file of a split missing, a file whose md5 differs from the
 * published one, a file larger or smaller than the official one (fewer records than the official
 * split), a file that cannot be read. `deno task data check` exits non-zero on any of them and the
 * pipeline refuses such data unless told otherwise.
 *
 * @module
 */
import { officialFileBytes, SizeLimitError } from "./limits.ts";
import { CifarFileMissingError, type CifarSplit } from "./load.ts";
import { type CifarDataset, cifarSpec, type CifarSplitName, publishedMd5 } from "./spec.ts";

/** The kinds of problem the data check reports. */
export type DataProblemKind = "missing" | "md5" | "oversized" | "undersized" | "unreadable";

/** One problem found in a dataset's files. */
export interface DataProblem {
  /** What is wrong. */
  readonly kind: DataProblemKind;
  /** The file (on disk, `archive!member`, or the folder looked in). */
  readonly path: string;
  /** One line saying what was found and what was expected. */
  readonly message: string;
}

/**
 * The problems of a loaded split: every file whose md5 differs from the published one, and every
 * data file smaller or larger than the official one.
 *
 * @param split A split from `loadCifar`.
 * @returns The problems, in file order (empty for the official distribution).
 * @example
 * ```ts
 * import { splitProblems, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split = {
 *   dataset: "cifar10", split: "test", count: 2,
 *   files: [{ path: "d/test_batch.bin", bytes: 6146, md5: "0".repeat(32) }],
 * } as unknown as CifarSplit;
 * assert.deepEqual(splitProblems(split).map((p) => p.kind), ["md5", "undersized"]);
 * ```
 */
export function splitProblems(split: CifarSplit): DataProblem[] {
  const problems: DataProblem[] = [];
  const spec = cifarSpec(split.dataset);
  for (const f of split.files) {
    const published = publishedMd5(split.dataset, f.path);
    if (published !== undefined && published !== f.md5) {
      problems.push({
        kind: "md5",
        path: f.path,
        message: `${f.path}: md5 ${f.md5}, the published md5 is ${published}`,
      });
    }
    const official = officialFileBytes(split.dataset, f.path);
    if (official !== undefined && f.bytes !== official) {
      const records = Math.floor(f.bytes / spec.recordBytes);
      const expected = official / spec.recordBytes;
      problems.push({
        kind: f.bytes < official ? "undersized" : "oversized",
        path: f.path,
        message: `${f.path}: ${f.bytes} bytes (${records} records), the official file has ` +
          `${official} bytes (${expected} records)`,
      });
    }
  }
  return problems;
}

/**
 * The problem a failed `loadCifar` call stands for.
 *
 * @param error What `loadCifar` threw.
 * @param dataset The dataset.
 * @param split The split.
 * @returns A `missing` problem for an absent file, `oversized` for a file over its official size,
 *   `unreadable` for anything else.
 * @example
 * ```ts
 * import { CifarFileMissingError, loadProblem } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const p = loadProblem(new CifarFileMissingError("d/test_batch.bin", "absent"), "cifar10", "test");
 * assert.equal(p.kind, "missing");
 * ```
 */
export function loadProblem(
  error: unknown,
  dataset: CifarDataset,
  split: CifarSplitName,
): DataProblem {
  const title = `${cifarSpec(dataset).title} ${split}`;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof CifarFileMissingError) {
    return { kind: "missing", path: error.path, message: `${title}: ${message}` };
  }
  if (error instanceof SizeLimitError) {
    return { kind: "oversized", path: error.path, message: `${title}: ${message}` };
  }
  return { kind: "unreadable", path: "", message: `${title}: ${message}` };
}

/**
 * One line per problem, for error messages.
 *
 * @param problems The problems.
 * @returns The lines joined, each prefixed with its kind.
 * @example
 * ```ts
 * import { formatProblems } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(formatProblems([{ kind: "md5", path: "a", message: "a: md5 x" }]), "  md5: a: md5 x");
 * ```
 */
export function formatProblems(problems: readonly DataProblem[]): string {
  return problems.map((p) => `  ${p.kind}: ${p.message}`).join("\n");
}
