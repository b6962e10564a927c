/**
 * Shared set-up of the pipeline integration tests: the `smoke` preset on the embedded sample, and
 * rewriting a phase's output as a redone phase that came out different would.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { readCheckpoint, saveCheckpoint, selectBackend } from "@mfi/core";
import {
  DEFAULT_CONFIG,
  loadPipelineData,
  mergeConfig,
  parseConfigYaml,
  type PipelineConfig,
  type PipelineData,
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
 * Rewrites a complete phase output with changed weights (same sidecar otherwise).
 *
 * @param outputDir The phase's `output` folder.
 * @param change Maps a weight's name and values to its new values, or undefined to keep it.
 */
export async function rewritePhaseOutput(
  outputDir: string,
  change: (name: string, values: Float32Array) => Float32Array | undefined,
): Promise<void> {
  const ckpt = await readCheckpoint(`${outputDir}/output.json`);
  const vars = [...ckpt.weights].map(([name, w]) => {
    const values = w.data as Float32Array;
    return [name, tf.variable(tf.tensor(change(name, values) ?? values, [...w.shape]))] as const;
  });
  try {
    await saveCheckpoint(outputDir, vars, {
      epoch: ckpt.sidecar.epoch,
      step: ckpt.sidecar.step,
      config: ckpt.sidecar.config,
      extra: ckpt.sidecar.extra,
    }, { name: "output", keep: 0 });
  } finally {
    tf.dispose(vars.map(([, v]) => v));
  }
}
