/**
 * `deno task reproduce [--preset quick] [--out DIR] [--config FILE] [--set key=value ...]
 *  [--phase ID ...] [--ablation] [--data-dir DIR] [--archive FILE] [--backend B] [--threads N]
 *  [--yes] [--dry-run]`: the whole MFI-ResNet pipeline (baseline, MeanFlow compression, meta
 * model, selective incubation, fine-tuning), the optional stage-fit ablation, and the report.
 *
 * Config = METHOD.md defaults <- `configs/presets/<preset>.yaml` <- `--config FILE` <- `--seed`
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
import { parseArgs } from "node:util";
import {
  acquireRunLock,
  BACKEND_ARG_HELP,
  BACKEND_ARG_OPTIONS,
  backendOptionsFromValues,
  formatDuration,
  selectBackend,
} from "@mfi/core";
import {
  ABLATION_VARIANTS,
  buildReport,
  countSpecParameters,
  DataCheckError,
  DEFAULT_CONFIG,
  estimateRun,
  ForeignRunError,
  loadPipelineData,
  mergeConfig,
  objectiveName,
  parseConfigYaml,
  parseOverrides,
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

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PRESETS = `${ROOT}/configs/presets`;
const SAMPLE = `${ROOT}/data/sample/cifar-10-sample.tar.gz`;

const HELP = `deno task reproduce: the MFI-ResNet pipeline and its report

  --preset NAME        configs/presets/NAME.yaml (default quick): smoke, quick,
                       paper-r50-c10, paper-r50-c100, paper-r34-c10, paper-r34-c100
  --config FILE        your own YAML (same keys as the presets), applied after the preset
  --set KEY=VALUE      override one key, e.g. --set baseline.epochs=3 (repeatable)
  --seed N             shorthand for --set seed=N
  --out DIR            run folder: checkpoints, logs, report (default runs/<preset>-seed<seed>)
  --phase ID           run only this phase, e.g. incubate:2 (repeatable; deps must be complete);
                       ablation fits as VARIANT/compress:L (endpoint-only/compress:1), or
                       VARIANT for all four
  --ablation           also run the stage-fit ablation (shorthand for --set ablation=[${
  ABLATION_VARIANTS.join(", ")
}]):
                       the four stage fits again per objective, from this run's baseline
  --data-dir DIR       folder with the official CIFAR binaries (default MFI_DATA_DIR, the cache,
                       else the embedded CIFAR-10 sample)
  --archive FILE       an official-layout cifar-*-binary.tar.gz
  --max-hours H        ask before runs estimated longer than H hours (default 3)
  --yes                do not ask
  --dry-run            print the plan and the estimate, then exit
  --no-probe           skip the timing probe (no estimate)
  --no-download        never download CIFAR (default: download into the cache when absent)
  --allow-bad-data     train on data that fails \`deno task data check\` (warned loudly)
${BACKEND_ARG_HELP}
`;

/** A duration for people: h:mm:ss, with days added beyond two days. */
function human(seconds: number): string {
  const text = formatDuration(seconds);
  return seconds > 2 * 86400 ? `${text} (${(seconds / 86400).toFixed(1)} days)` : text;
}

function fail(message: string, code = 2): never {
  console.error(`reproduce: ${message}`);
  Deno.exit(code);
}

async function loadConfig(values: Record<string, unknown>): Promise<PipelineConfig> {
  const preset = (values.preset as string | undefined) ?? "quick";
  let presetText: string;
  try {
    presetText = await Deno.readTextFile(`${PRESETS}/${preset}.yaml`);
  } catch {
    const names = [...Deno.readDirSync(PRESETS)].map((e) => e.name.replace(/\.yaml$/, ""));
    fail(`unknown preset "${preset}"; available: ${names.sort().join(", ")}`);
  }
  const patches: unknown[] = [parseConfigYaml(presetText, `${preset}.yaml`)];
  if (values.config) {
    const file = values.config as string;
    patches.push(parseConfigYaml(await Deno.readTextFile(file), file));
  }
  if (values.seed !== undefined) patches.push({ seed: Number(values.seed) });
  if (values.ablation) patches.push({ ablation: [...ABLATION_VARIANTS] });
  patches.push(parseOverrides((values.set as string[] | undefined) ?? []));
  return mergeConfig(DEFAULT_CONFIG, ...patches);
}

function confirm(estimateSeconds: number, maxHours: number, yes: boolean): void {
  if (estimateSeconds <= maxHours * 3600 || yes) return;
  const what = `the estimated duration is ${human(estimateSeconds)} on this backend ` +
    `(over --max-hours ${maxHours})`;
  const ci = (Deno.env.get("CI") ?? "").toLowerCase();
  if (!Deno.stdin.isTerminal() || ci === "true" || ci === "1") {
    fail(`${what}; refusing to start without a terminal. Pass --yes to start anyway.`, 3);
  }
  const answer = prompt(`${what}. Start anyway? [y/N]`);
  if (!/^y(es)?$/i.test(answer?.trim() ?? "")) fail("not started", 3);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        preset: { type: "string" },
        config: { type: "string" },
        set: { type: "string", multiple: true },
        seed: { type: "string" },
        out: { type: "string" },
        phase: { type: "string", multiple: true },
        "data-dir": { type: "string" },
        archive: { type: "string" },
        "max-hours": { type: "string" },
        ablation: { type: "boolean" },
        yes: { type: "boolean" },
        "dry-run": { type: "boolean" },
        "no-probe": { type: "boolean" },
        "no-download": { type: "boolean" },
        "allow-bad-data": { type: "boolean" },
        help: { type: "boolean" },
        ...BACKEND_ARG_OPTIONS,
      },
    });
  } catch (e) {
    fail(`${(e as Error).message}\n\n${HELP}`);
  }
  const values = parsed.values;
  if (values.help) {
    console.log(HELP);
    return;
  }
  let config: PipelineConfig;
  try {
    config = await loadConfig(values);
  } catch (e) {
    fail((e as Error).message);
  }
  const maxHours = Number(values["max-hours"] ?? 3);
  if (!(maxHours > 0)) fail(`--max-hours must be a positive number, got ${values["max-hours"]}`);
  const out = values.out ?? `runs/${config.name}-seed${config.seed}`;
  const phases = planPhases(config);
  let only: string[] | undefined;
  try {
    only = values.phase ? selectPhases(phases, values.phase) : undefined;
  } catch (e) {
    if (!(e instanceof UnknownPhaseError)) throw e;
    const variants = [
      ...new Set(phases.flatMap((p) => p.kind === "compress" && p.variant ? [p.variant] : [])),
    ];
    fail(
      `--phase ${e.phase}: this plan has no such phase; it has ${e.known.join(", ")}` +
        (variants.length === 0 && ABLATION_VARIANTS.some((v) => e.phase.startsWith(v))
          ? " (no ablation variants: add --ablation)"
          : ""),
    );
  }
  const backend = await selectBackend(backendOptionsFromValues(values));
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
      dir: values["data-dir"] ?? Deno.env.get("MFI_DATA_DIR"),
      archive: values.archive,
      sampleArchive: SAMPLE,
      download: !values["no-download"],
      onFallback: (m) => console.log(`data: not from ${m.split("\n")[0]}`),
      allowBadData: values["allow-bad-data"],
    });
  } catch (e) {
    const hint = e instanceof DataCheckError
      ? "\nPass --allow-bad-data to train on it anyway."
      : "";
    fail((e as Error).message + hint);
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
  if (!values["no-probe"]) {
    console.log("timing probe (a few training steps of each model kind)...");
    timings = await probeTimings(config);
    estimate = estimateRun(config, timings, { train: data.train.count, test: data.test.count });
  }
  console.log("plan:");
  let remaining = 0;
  let whole = 0;
  const etas: Record<string, number> = {};
  for (const p of phases) {
    const done = (await readPhaseOutput(out, p)) !== undefined;
    const chosen = !only || only.includes(p.id);
    const status = done ? "complete, skipped" : chosen ? "to run" : "not selected";
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
  confirm(remaining, maxHours, values.yes ?? false);

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
    scopes: values.phase,
    onStale: (m) => console.warn(`reproduce: ${m}`),
  }).catch((e) => fail((e as Error).message));
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
    if (e instanceof PhaseNotReadyError) {
      fail(
        `${e.phase} needs ${e.missing.join(", ")}, not complete in ${e.runDir}; run ` +
          `${e.missing.map((m) => `--phase ${m}`).join(" ")} first (or run without --phase)`,
      );
    }
    if (e instanceof ForeignRunError) fail(`${e.message} (--out DIR)`);
    throw e;
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

if (import.meta.main) await main();
