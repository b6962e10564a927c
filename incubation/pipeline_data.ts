/**
 * The data of a run: the configured CIFAR subset from a folder, the official archive, the data
 * cache, or, with nothing else available, the small sample embedded in the repository (said
 * loudly: numbers from it are not CIFAR results). Data that fails the data check (a file whose
 * md5 differs from the published one, fewer records than the official files, an oversized or
 * unreadable file) is refused with a {@linkcode DataCheckError}, unless the caller accepts it
 * knowingly (`allowBadData`), when the problems come back with the data to be shown.
 *
 * @module
 */
import {
  CifarFileMissingError,
  type CifarSplit,
  type DataProblem,
  ensureCifar,
  formatProblems,
  loadCifar,
  loadProblem,
  splitProblems,
  subsetPerClass,
} from "@mfi/data";
import type { DataConfig } from "./config.ts";

/**
 * md5 of the embedded CIFAR-10 sample (`data/sample/cifar-10-sample.tar.gz`): a documented cut of
 * the official files, so its md5s and sizes differ by design and the check does not refuse it.
 */
export const EMBEDDED_SAMPLE_MD5 = "52a71c02a49208f3b364da224c61001e";

/**
 * Thrown when a run's data fails the data check: the source, every problem, and the fix.
 *
 * @example
 * ```ts
 * import { DataCheckError } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const e = new DataCheckError("folder d", "cifar10", [
 *   { kind: "md5", path: "d/test_batch.bin", message: "d/test_batch.bin: md5 0, the published md5 is 8" },
 * ]);
 * assert.equal(e.problems.length, 1);
 * assert.match(e.message, /folder d fails the data check .*md5: d\/test_batch\.bin/s);
 * ```
 */
export class DataCheckError extends Error {
  /** The source that failed, e.g. `folder /data`. */
  readonly source: string;
  /** What is wrong with it. */
  readonly problems: readonly DataProblem[];

  /**
   * Builds the message from the source, the dataset and the problems.
   *
   * @param source The source's description.
   * @param dataset The dataset.
   * @param problems The problems found.
   */
  constructor(source: string, dataset: string, problems: readonly DataProblem[]) {
    super(
      `The ${dataset} data in ${source} fails the data check (${problems.length} problem(s)); ` +
        `not training on it:\n${formatProblems(problems)}\n` +
        `Fix: download the official archive again (\`deno task data download --dataset ` +
        `${dataset}\`) or point at the official files, and run \`deno task data check\`; or ` +
        `accept this data knowingly (allowBadData), and its results are not ${dataset} results.`,
    );
    this.name = "DataCheckError";
    this.source = source;
    this.problems = Object.freeze([...problems]);
  }
}

/** Where a run's images came from. */
export interface DataSource {
  /**
   * `dir`: an extracted folder; `archive`: an official-layout archive; `cache`: the data cache;
   * `download`: the official archive, downloaded into the cache; `sample`: the embedded sample.
   */
  readonly kind: "dir" | "archive" | "cache" | "download" | "sample";
  /** The folder or archive path (empty for the cache). */
  readonly path: string;
  /** One human-readable line. */
  readonly description: string;
}

/** The training and test images of a run. */
export interface PipelineData {
  /** Training subset. */
  readonly train: CifarSplit;
  /** Test subset. */
  readonly test: CifarSplit;
  /** Where the data came from. */
  readonly source: DataSource;
  /** True when the embedded sample stands in for the real dataset. */
  readonly isSample: boolean;
  /**
   * What the data check found (empty for the official data and the embedded sample); non-empty
   * only with `allowBadData`: show it loudly. Absent on data built by hand.
   */
  readonly problems?: readonly DataProblem[];
}

/** Options of {@linkcode loadPipelineData}. */
export interface LoadPipelineDataOptions {
  /** Extracted data folder (`--data-dir` / `MFI_DATA_DIR`); tried first when given. */
  readonly dir?: string;
  /** An official-layout `.tar.gz` to use instead of `dir`. */
  readonly archive?: string;
  /** Fallback archive (the embedded sample), used only for CIFAR-10 when nothing else loads. */
  readonly sampleArchive?: string;
  /** Download the official archive into the cache when nothing local holds the dataset. */
  readonly download?: boolean;
  /** Called with a message when the loader falls back to the next source. */
  readonly onFallback?: (message: string) => void;
  /**
   * Train on data that fails the data check (problems returned in `problems`) instead of
   * throwing {@linkcode DataCheckError}. Unreadable data (oversized, corrupt) is refused anyway.
   */
  readonly allowBadData?: boolean;
}

function cut(split: CifarSplit, perClass: number | null): CifarSplit {
  if (perClass === null) return split;
  const smallest = Math.min(
    ...split.classNames.map((_, c) => split.labels.filter((l) => l === c).length),
  );
  return subsetPerClass(split, Math.min(perClass, smallest));
}

/**
 * Loads the run's data: `archive`, else `dir`, else the data cache, else (with `download`) the
 * official archive downloaded and md5-verified into the cache, else the embedded sample
 * (CIFAR-10 only). A source whose files are absent is skipped; a source that holds the dataset
 * but fails the data check is refused (not skipped). Per-class
 * subsets are the first `n` images of each class (deterministic); a per-class count above what
 * the source holds takes what there is.
 *
 * @param config The run's data config.
 * @param options Where to look.
 * @returns Training and test subsets and their source.
 * @throws {DataCheckError} If the first source holding the dataset fails the data check (md5s,
 *   sizes, record counts) and `allowBadData` is not set, or its files cannot be read at all.
 * @throws {Error} If no source holds the dataset (with what was tried).
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, loadPipelineData } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const empty = await Deno.makeTempDir();
 * await assert.rejects(
 *   loadPipelineData(DEFAULT_CONFIG.data, { dir: empty, archive: `${empty}/none.tar.gz` }),
 *   /Cannot load cifar10: tried/,
 * );
 * await Deno.remove(empty);
 * ```
 */
export async function loadPipelineData(
  config: DataConfig,
  options: LoadPipelineDataOptions = {},
): Promise<PipelineData> {
  const tries: Array<{ source: DataSource; archive?: string; dir?: string }> = [];
  if (options.archive) {
    tries.push({
      source: {
        kind: "archive",
        path: options.archive,
        description: `archive ${options.archive}`,
      },
      archive: options.archive,
    });
  }
  if (options.dir) {
    tries.push({
      source: { kind: "dir", path: options.dir, description: `folder ${options.dir}` },
      dir: options.dir,
    });
  }
  tries.push({ source: { kind: "cache", path: "", description: "the data cache" } });
  if (options.download) {
    tries.push({
      source: {
        kind: "download",
        path: "",
        description: `the official ${config.dataset} archive (download)`,
      },
    });
  }
  if (options.sampleArchive && config.dataset === "cifar10") {
    tries.push({
      source: {
        kind: "sample",
        path: options.sampleArchive,
        description: `the embedded CIFAR-10 SAMPLE ${options.sampleArchive} ` +
          "(2,000 training / 500 test images; not the real dataset)",
      },
      archive: options.sampleArchive,
    });
  }
  const errors: string[] = [];
  for (const t of tries) {
    let archive = t.archive;
    if (t.source.kind === "download") {
      try {
        archive = (await ensureCifar({ dataset: config.dataset })).path;
      } catch (e) {
        const message = `${t.source.description}: ${(e as Error).message}`;
        errors.push(message);
        options.onFallback?.(message);
        continue;
      }
    }
    const loaded: CifarSplit[] = [];
    try {
      for (const split of ["train", "test"] as const) {
        loaded.push(await loadCifar({ dataset: config.dataset, split, dir: t.dir, archive }));
      }
    } catch (e) {
      if (!(e instanceof CifarFileMissingError)) {
        // The source holds the dataset but it cannot be read: refused, not skipped.
        const split = loaded.length === 0 ? "train" : "test";
        throw new DataCheckError(t.source.description, config.dataset, [
          loadProblem(e, config.dataset, split),
        ]);
      }
      const message = `${t.source.description}: ${e.message}`;
      errors.push(message);
      options.onFallback?.(message);
      continue;
    }
    const [train, test] = loaded;
    const sample = t.source.kind === "sample" || train.files[0]?.md5 === EMBEDDED_SAMPLE_MD5;
    const problems = sample ? [] : [...splitProblems(train), ...splitProblems(test)];
    const unique = problems.filter((p, i) =>
      problems.findIndex((q) => q.kind === p.kind && q.path === p.path) === i
    );
    if (unique.length > 0 && !options.allowBadData) {
      throw new DataCheckError(t.source.description, config.dataset, unique);
    }
    return {
      train: cut(train, config.trainPerClass),
      test: cut(test, config.testPerClass),
      source: t.source,
      isSample: t.source.kind === "sample",
      problems: Object.freeze(unique),
    };
  }
  throw new Error(
    `Cannot load ${config.dataset}: tried ${errors.length} source(s):\n  ${errors.join("\n  ")}\n` +
      "Pass --data-dir DIR (a folder with the official binaries) or set MFI_DATA_DIR.",
  );
}
