/**
 * The data of a run: the configured CIFAR subset from a folder, the official archive, the data
 * cache, or, with nothing else available, the small sample embedded in the repository (said
 * loudly: numbers from it are not CIFAR results).
 *
 * @module
 */
import { type CifarSplit, ensureCifar, loadCifar, subsetPerClass } from "@mfi/data";
import type { DataConfig } from "./config.ts";

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
 * (CIFAR-10 only). Per-class
 * subsets are the first `n` images of each class (deterministic); a per-class count above what
 * the source holds takes what there is.
 *
 * @param config The run's data config.
 * @param options Where to look.
 * @returns Training and test subsets and their source.
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
    try {
      let archive = t.archive;
      if (t.source.kind === "download") {
        archive = (await ensureCifar({ dataset: config.dataset })).path;
      }
      const load = (split: "train" | "test") =>
        loadCifar({ dataset: config.dataset, split, dir: t.dir, archive });
      const [train, test] = [await load("train"), await load("test")];
      return {
        train: cut(train, config.trainPerClass),
        test: cut(test, config.testPerClass),
        source: t.source,
        isSample: t.source.kind === "sample",
      };
    } catch (e) {
      const message = `${t.source.description}: ${(e as Error).message}`;
      errors.push(message);
      options.onFallback?.(message);
    }
  }
  throw new Error(
    `Cannot load ${config.dataset}: tried ${errors.length} source(s):\n  ${errors.join("\n  ")}\n` +
      "Pass --data-dir DIR (a folder with the official binaries) or set MFI_DATA_DIR.",
  );
}
