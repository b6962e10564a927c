/**
 * Shared set-up of the pipeline integration tests: the `smoke` preset on the embedded sample, and
 * rewriting a phase's output as a redone phase that came out different would.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "@mfi/core";
import {
  DEFAULT_CONFIG,
  loadPipelineData,
  mergeConfig,
  parseConfigYaml,
  type PipelineConfig,
  type PipelineData,
  planPhases,
  readPhaseOutput,
  writePhaseOutput,
} from "@mfi/incubation";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * The `smoke` preset (with `patch` merged over it) and its data from the embedded sample, on
 * wasm with one thread.
 */
export async function smokeRun(
  patch: unknown = {},
): Promise<{ config: PipelineConfig; data: PipelineData }> {
  await selectBackend({ backend: "wasm", threads: 1 });
  const preset = await Deno.readTextFile(`${ROOT}configs/presets/smoke.yaml`);
  const config = mergeConfig(DEFAULT_CONFIG, parseConfigYaml(preset, "smoke.yaml"), patch);
  const data = await loadPipelineData(config.data, {
    archive: `${ROOT}data/sample/cifar-10-sample.tar.gz`,
  });
  return { config, data };
}

/**
 * Rewrites a complete phase output with changed weights, as a redone phase that came out
 * different would (the result is re-bound to the new weights).
 *
 * @param runDir The run folder.
 * @param config The run's config.
 * @param phaseId The phase.
 * @param change Maps a weight's name and values to its new values, or undefined to keep it.
 */
export async function rewritePhaseOutput(
  runDir: string,
  config: PipelineConfig,
  phaseId: string,
  change: (name: string, values: Float32Array) => Float32Array | undefined,
): Promise<void> {
  const phase = planPhases(config).find((p) => p.id === phaseId)!;
  const out = (await readPhaseOutput(runDir, phase))!;
  const vars = [...out.weights].map(([name, w]) => {
    const values = w.data as Float32Array;
    return [name, tf.variable(tf.tensor(change(name, values) ?? values, [...w.shape]))] as const;
  });
  try {
    await writePhaseOutput(runDir, phase, vars, out.fingerprint, out.result);
  } finally {
    tf.dispose(vars.map(([, v]) => v));
  }
}
