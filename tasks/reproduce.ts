/**
 * `deno task reproduce [--preset quick] [--out DIR] [--config FILE] [--set key=value ...]
 *  [--phase ID ...] [--ablation] [--data-dir DIR] [--archive FILE] [--backend B] [--threads N]
 *  [--yes] [--dry-run]`: the whole MFI-ResNet pipeline (baseline, MeanFlow compression, meta
 * model, selective incubation, fine-tuning), the optional stage-fit ablation, and the report.
 *
 * Config = docs/method.md defaults <- `configs/presets/<preset>.yaml` <- `--config FILE` <- `--seed`
 * <- each `--set key.path=value` (value read as YAML). Phases whose outputs are complete in the
 * run folder are skipped, so rerunning the same command resumes a killed run; `--phase ID` runs
 * one phase (its dependencies must be complete), e.g. independent incubations as separate
 * processes. Before starting it prints the plan, parameter counts, the backend and an estimated
 * duration from a short timing probe; runs estimated above `--max-hours` (default 3) need `--yes`
 * or an interactive confirmation (refused without a terminal or under CI). `--ablation` adds the
 * stage-fit ablation (MeanFlow loss alone, endpoint regression alone) as sub-runs from the run's
 * baseline, reported in the run's report; adding it to a finished run runs only the sub-runs.
 *
 * @module
 */
import { acquireRunLock, formatDuration, selectBackend } from "@mfi/core";
import {
  ABLATION_VARIANTS,
  buildReport,
  countSpecParameters,
  DataCheckError,
  DEFAULT_CONFIG,
  estimateRun,
  ForeignRunError,
  givenCheckpointDigest,
  loadPipelineData,
  mergeConfig,
  objectiveName,
  parseConfigYaml,
  parseOverrides,
  phaseFingerprint,
  PhaseNotReadyError,
  type PipelineConfig,
  type PipelineData,
  planPhases,
  probeTimings,
  readPhaseOutput,
  runPipeline,
  selectPhases,
  UnknownPhaseError,
  writeReport,
} from "@mfi/incubation";
import {
  BACKEND_FLAGS,
  backendOptions,
  type CliSpec,
  type FlagValue,
  reportError,
  runCli,
  UsageError,
} from "./_cli.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PRESETS = `${ROOT}/configs/presets`;
const SAMPLE = `${ROOT}/data/sample/cifar-10-sample.tar.gz`;

/** `deno task reproduce`'s command line. */
export const REPRODUCE_CLI: CliSpec = {
  name: "reproduce",
  summary: "the MFI-ResNet pipeline (baseline, MeanFlow compression, meta model, incubation, " +
    "fine-tuning) and its report",
  flags: {
    preset: {
      type: "string",
      default: "quick",
      placeholder: "NAME",
      example: "smoke",
      doc: "configs/presets/NAME.yaml: smoke (about a minute), quick (about 1.5 h on 2 cores), " +
        "paper-r50-c10, paper-r50-c100, paper-r34-c10, paper-r34-c100",
    },
    config: {
      type: "string",
      placeholder: "FILE",
      example: "my.yaml",
      doc:
        "your own YAML (the keys of docs/method.md's config reference), applied after the preset",
    },
    set: {
      type: "string",
      multiple: true,
      placeholder: "KEY=VALUE",
      example: "baseline.epochs=3",
      doc: "override one config key (value read as YAML), applied last",
    },
    seed: {
      type: "integer",
      min: 0,
      max: 2 ** 32 - 1,
      defaultText: "the config's seed (0)",
      example: "1",
      doc: "shorthand for --set seed=N",
    },
    out: {
      type: "string",
      placeholder: "DIR",
      defaultText: "runs/<preset>-seed<seed>",
      example: "runs/try1",
      doc: "run folder: checkpoints, logs, report; rerunning resumes it",
    },
    phase: {
      type: "string",
      multiple: true,
      placeholder: "ID",
      example: "incubate:2",
      doc: "run only this phase (its inputs must be complete); ablation fits as " +
        "VARIANT/compress:L (endpoint-only/compress:1), or VARIANT for all four",
    },
    ablation: {
      type: "boolean",
      default: false,
      doc: `also run the stage-fit ablation (${ABLATION_VARIANTS.join(", ")}): the four stage ` +
        "fits again per objective, from this run's baseline",
    },
    "data-dir": {
      type: "string",
      placeholder: "DIR",
      defaultText: "MFI_DATA_DIR, else the data cache, else a download",
      example: "/data/cifar-10-batches-bin",
      doc: "folder with the official CIFAR binaries",
    },
    archive: {
      type: "string",
      placeholder: "FILE",
      example: "cifar-10-binary.tar.gz",
      doc: "an official-layout cifar-*-binary.tar.gz",
    },
    "max-hours": {
      type: "number",
      above: 0,
      default: 3,
      placeholder: "H",
      example: "8",
      doc: "ask before runs estimated longer than H hours",
    },
    yes: { type: "boolean", default: false, doc: "do not ask, whatever the estimate" },
    "dry-run": {
      type: "boolean",
      default: false,
      doc: "print the plan and the estimate, then exit",
    },
    probe: {
      type: "boolean",
      default: true,
      doc: "time a few training steps to estimate the run's duration",
    },
    download: {
      type: "boolean",
      default: true,
      doc: "download CIFAR (about 160 MB for CIFAR-10) into the cache when no data is found; " +
        "without it, fall back to the embedded 2,000-image sample",
    },
    "allow-bad-data": {
      type: "boolean",
      default: false,
      doc: "train on data that fails `deno task data check` (warned loudly)",
    },
    ...BACKEND_FLAGS,
  },
  notes:
    "Config = docs/method.md defaults <- the preset <- --config FILE <- --seed <- each --set.\n" +
    "Complete phases are skipped, so rerunning the same command resumes a killed run.",
  examples: [
    "--preset smoke",
    "--dry-run",
    "--preset quick --seed 1 --data-dir /data/cifar-10-batches-bin",
    "--set baseline.epochs=3 --set data.augment=false",
    "--phase baseline --out runs/r1",
  ],
};

/** A duration for people: h:mm:ss, with days added beyond two days. */
function human(seconds: number): string {
  const text = formatDuration(seconds);
  return seconds > 2 * 86400 ? `${text} (${(seconds / 86400).toFixed(1)} days)` : text;
}

/** A run that cannot start for a reason other than a usage mistake (exit 3). */
class NotStarted extends Error {}

type Values = Readonly<Record<string, FlagValue>>;

/** Config = defaults <- preset <- --config <- --seed <- --ablation <- --set; every mistake a UsageError. */
async function loadConfig(values: Values): Promise<PipelineConfig> {
  const preset = values.preset as string;
  let presetText: string;
  try {
    presetText = await Deno.readTextFile(`${PRESETS}/${preset}.yaml`);
  } catch {
    const names = [...Deno.readDirSync(PRESETS)].map((e) => e.name.replace(/\.yaml$/, ""));
    throw new UsageError(`unknown preset "${preset}"; available: ${names.sort().join(", ")}`);
  }
  try {
    const patches: unknown[] = [parseConfigYaml(presetText, `${preset}.yaml`)];
    if (typeof values.config === "string") {
      const file = values.config;
      let text: string;
      try {
        text = await Deno.readTextFile(file);
      } catch (e) {
        throw new UsageError(`--config ${file}: cannot read it (${(e as Error).message})`);
      }
      patches.push(parseConfigYaml(text, file));
    }
    if (values.seed !== undefined) patches.push({ seed: values.seed });
    if (values.ablation) patches.push({ ablation: [...ABLATION_VARIANTS] });
    patches.push(parseOverrides(values.set as string[]));
    return mergeConfig(DEFAULT_CONFIG, ...patches);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${(e as Error).message}; see docs/method.md's config reference`);
  }
}

/**
 * Turns the pipeline's typed errors into advice in terms of this task's flags; other errors are
 * returned unchanged.
 *
 * @param e What the pipeline threw.
 * @returns A {@linkcode UsageError} with the advice, or `e`.
 */
export function adviseOn(e: unknown): unknown {
  if (e instanceof UnknownPhaseError) {
    const ablation = ABLATION_VARIANTS.some((v) => e.phase.startsWith(v)) &&
      !e.known.some((id) => id.includes("/"));
    return new UsageError(
      `--phase ${e.phase}: this plan has no such phase; its phases are ${e.known.join(", ")}` +
        (ablation ? " (no ablation variants: add --ablation)" : ""),
    );
  }
  if (e instanceof PhaseNotReadyError) {
    return new UsageError(
      `--phase ${e.phase} needs ${e.missing.join(", ")}, not complete in ${e.runDir}: run ` +
        `${e.missing.map((m) => `\`--phase ${m}\``).join(" ")} first (same --out), or drop ` +
        "--phase to run every phase in order",
    );
  }
  if (e instanceof ForeignRunError) {
    return new UsageError(
      `${e.runDir} holds a complete ${e.phase} made with another config: pass a new --out, ` +
        "or delete that phase's folder in it to redo the phase",
    );
  }
  return e;
}

function confirm(estimateSeconds: number, maxHours: number, yes: boolean): void {
  if (estimateSeconds <= maxHours * 3600 || yes) return;
  const what = `the estimated duration is ${human(estimateSeconds)} on this backend ` +
    `(over --max-hours ${maxHours})`;
  const ci = (Deno.env.get("CI") ?? "").toLowerCase();
  if (!Deno.stdin.isTerminal() || ci === "true" || ci === "1") {
    throw new NotStarted(
      `${what}; refusing to start without a terminal. Pass --yes to start anyway.`,
    );
  }
  const answer = prompt(`${what}. Start anyway? [y/N]`);
  if (!/^y(es)?$/i.test(answer?.trim() ?? "")) throw new NotStarted("not started");
}

async function main(values: Values): Promise<void> {
  const config = await loadConfig(values);
  const maxHours = values["max-hours"] as number;
  const out = (values.out as string | undefined) ?? `runs/${config.name}-seed${config.seed}`;
  const phases = planPhases(config);
  const requested = values.phase as string[];
  let only: string[] | undefined;
  try {
    only = requested.length > 0 ? selectPhases(phases, requested) : undefined;
  } catch (e) {
    throw adviseOn(e);
  }
  const backend = await selectBackend(backendOptions(values));
  const backendText = `${backend.name} (${backend.reason}; ${backend.threads} thread(s))`;

  const specOf = (id: string) => phases.find((p) => p.id === id)!.spec;
  const base = countSpecParameters(specOf("baseline")).total;
  const line = (name: string, n: number) =>
    `  ${name.padEnd(12)} ${n.toLocaleString("en-US").padStart(12)} parameters ` +
    `(${(100 * (n / base - 1)).toFixed(2)} % vs baseline)`;
  console.log(`MFI-ResNet reproduce: preset ${config.name}: ${config.description}`);
  console.log(`run folder: ${out}`);
  console.log(`backend:    ${backendText}`);
  console.log(
    `models (${config.model.arch}, width ${config.model.width}, ${
      specOf("baseline").classes
    } classes):`,
  );
  console.log(line("baseline", base));
  console.log(line("meta", countSpecParameters(specOf("meta")).total));
  console.log(line("mfi-resnet", countSpecParameters(specOf("finetune")).total));

  // Data next: the estimate needs the subset sizes, and the sample fallback must be announced.
  let data: PipelineData;
  try {
    data = await loadPipelineData(config.data, {
      dir: (values["data-dir"] as string | undefined) ?? Deno.env.get("MFI_DATA_DIR"),
      archive: values.archive as string | undefined,
      sampleArchive: SAMPLE,
      download: values.download as boolean,
      onFallback: (m) => console.log(`data: not from ${m.split("\n")[0]}`),
      allowBadData: values["allow-bad-data"] as boolean,
    });
  } catch (e) {
    const hint = e instanceof DataCheckError ? " Pass --allow-bad-data to train on it anyway." : "";
    throw new UsageError((e as Error).message + hint);
  }
  const banner = (text: string) => console.log(`\n${"!".repeat(78)}\n${text}\n${"!".repeat(78)}\n`);
  if (data.problems?.length) {
    banner(
      `DATA FAILS THE CHECK (--allow-bad-data): results are not ${config.data.dataset} results.\n` +
        data.problems.map((p) => `  ${p.kind}: ${p.message}`).join("\n"),
    );
  }
  if (data.isSample) {
    banner(
      "NO CIFAR DATA FOUND (no --data-dir, MFI_DATA_DIR or data cache, and no download):\n" +
        "running on the EMBEDDED 2,000-image CIFAR-10 SAMPLE. The numbers show that the pipeline\n" +
        "works; they are NOT CIFAR-10 results. Pass --data-dir DIR for real data.",
    );
  }

  console.log(
    `data:       ${data.source.description}: ${data.train.count} training / ${data.test.count} test images`,
  );
  let estimate: ReturnType<typeof estimateRun> | undefined;
  let timings: Awaited<ReturnType<typeof probeTimings>> | undefined;
  if (values.probe) {
    console.log("timing probe (a few training steps of each model kind)...");
    timings = await probeTimings(config);
    estimate = estimateRun(config, timings, { train: data.train.count, test: data.test.count });
  }
  console.log("plan:");
  let remaining = 0;
  let whole = 0;
  const etas: Record<string, number> = {};
  for (const p of phases) {
    const existing = await readPhaseOutput(out, p);
    // A complete output made with another config is not skipped: the run refuses it
    // (ForeignRunError), so the plan says so instead of "complete".
    const foreign = existing !== undefined &&
      JSON.stringify(existing.fingerprint) !==
        JSON.stringify(phaseFingerprint(p, config, await givenCheckpointDigest(p)));
    const done = existing !== undefined && !foreign;
    const chosen = !only || only.includes(p.id);
    const status = foreign
      ? "made with another config: the run refuses this folder"
      : done
      ? "complete, skipped"
      : chosen
      ? "to run"
      : "not selected";
    const eta = estimate?.phases[p.id];
    if (eta !== undefined) {
      whole += eta;
      if (!done && chosen) remaining += eta;
      etas[p.id] = eta;
    }
    const loads = p.kind === "baseline" && p.checkpoint !== null;
    console.log(
      `  ${p.id.padEnd(26)} ${loads ? "   -   " : `${String(p.train.epochs).padStart(4)} ep`}  ${
        loads ? "loads its checkpoint" : `trains ${p.trainable.join(",")}`.padEnd(20)
      } ${(eta !== undefined ? `~${formatDuration(eta)}` : "").padStart(10)}  [${status}]`,
    );
  }
  const variants = phases.flatMap((p) =>
    p.kind === "compress" && p.variant !== null &&
      p.stage === phases.find((q) => q.kind === "compress")!.stage
      ? [`${p.variant} (${objectiveName(p.objective)})`]
      : []
  );
  if (variants.length > 0) {
    console.log(`stage-fit ablation from this run's baseline: ${variants.join("; ")}`);
  }
  if (estimate) {
    console.log(`estimated duration: ${human(remaining)} (whole run ${human(whole)})`);
  }
  if (values["dry-run"]) return;
  confirm(remaining, maxHours, values.yes as boolean);

  const t0 = performance.now();
  const describe = {
    data:
      `${data.source.description}: ${data.train.count} training / ${data.test.count} test images`,
    sample: data.isSample,
    backend: backendText,
  };
  // One run per folder, or per phase with --phase (issue 15): the lock names its holder.
  await Deno.mkdir(out, { recursive: true });
  const lock = await acquireRunLock(out, {
    scopes: requested.length > 0 ? requested : undefined,
    onStale: (m) => console.warn(`reproduce: ${m}`),
  }).catch((e) => {
    // Another run holds the folder (or these phases): use another --out, or wait for it.
    throw new UsageError((e as Error).message);
  });
  const runStart = performance.now();
  let outcome;
  try {
    outcome = await runPipeline(config, {
      runDir: out,
      data,
      only,
      progress: {},
      onPhaseStart: ({ phase, index, total }) => {
        const elapsed = (performance.now() - runStart) / 1000;
        const left = phases.slice(phases.indexOf(phase)).filter((p) =>
          (!only || only.includes(p.id)) && etas[p.id] !== undefined
        ).reduce((sum, p) => sum + etas[p.id], 0);
        console.log(
          `\n== phase ${index} of ${total}: ${phase.id}; elapsed ${formatDuration(elapsed)}` +
            (estimate ? `, about ${formatDuration(left)} left (estimate)` : "") + " ==",
        );
      },
    });
  } catch (e) {
    await lock.release();
    throw adviseOn(e);
  }
  const report = buildReport({
    config,
    phases: outcome.phases,
    results: outcome.results,
    ...describe,
  });
  const written = await writeReport(`${out}/report`, report, outcome.results);
  await lock.release();
  console.log(
    `\nran ${outcome.ran.length} phase(s) in ${
      formatDuration((performance.now() - t0) / 1000)
    }; skipped ${outcome.skipped.length}`,
  );
  for (const m of report.models) {
    console.log(
      `  ${m.model.padEnd(11)} ${m.parameters.toLocaleString("en-US").padStart(12)} params ` +
        `${m.changePercent.toFixed(2).padStart(7)} %  top-1 ${
          m.top1 === null ? "-" : (100 * m.top1).toFixed(2) + " %"
        }`,
    );
  }
  for (const [name, t] of Object.entries(report.paired)) {
    if (t !== null) {
      console.log(
        `  ${name}: only MFI-ResNet right ${t.aOnly}, only the other ${t.bOnly}, McNemar p ${
          t.p.toPrecision(3)
        }`,
      );
    }
  }
  for (const r of report.stageFits) {
    console.log(
      `  stage fits (${r.variant}): in-situ top-1 ${
        r.inSitu.map((a) => (a === null ? "-" : (100 * a).toFixed(1))).join(" / ")
      } %`,
    );
  }
  console.log(`report: ${written.join(", ")}`);
  if (data.isSample) {
    banner("This run used the EMBEDDED SAMPLE, not CIFAR-10: see the warning in results.md.");
  }
}

if (import.meta.main) {
  await runCli(REPRODUCE_CLI, async ({ values }) => {
    try {
      await main(values);
    } catch (e) {
      if (!(e instanceof NotStarted)) throw e;
      reportError("reproduce", e);
      return 3;
    }
  });
}
