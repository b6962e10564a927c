// The wasm training kernels of @mfi/core checked on a real model: a tiny ResNet built by
// @mfi/resnet's one builder (core may not import @mfi/resnet, so this test lives in tests/).
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import {
  disposeModule,
  registerWasmTrainingKernels,
  Rng,
  selectBackend,
  wasmFilterKernel,
  type WasmKernelChoices,
  wasmKernelChoices,
} from "@mfi/core";
import { assertNoLeak } from "@mfi/core/testing";
import { buildResNet, type ResNet, type ResNetArch } from "@mfi/resnet";

const BATCH = 4;
const xv = new Rng(11).normalArray(BATCH * 12 * 12 * 3);
const labels = [1, 7, 3, 1];

/** A tiny architecture as data: one block per stage, stride 2 (with projection) after stage 0. */
function tinyArch(block: ResNetArch["block"], widths: number[]): ResNetArch {
  return {
    block,
    depths: widths.map(() => 1),
    widths,
    strides: widths.map((_, i) => (i === 0 ? 1 : 2)),
    stem: widths[0],
  };
}

/** max|a - b| / max|b| (0 when both are all zeros). */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

function lossOf(model: ResNet, x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true })) as tf.Scalar;
}

/** How the wasm side runs: threads and the convolution kernels' implementations. */
interface WasmRun {
  readonly threads: number;
  readonly kernels: WasmKernelChoices;
}

const XNNPACK: WasmKernelChoices = {
  conv2d: "xnnpack",
  conv2dBackpropInput: "xnnpack",
  conv2dBackpropFilter: "xnnpack",
};
const OWN_FILTER: WasmKernelChoices = { ...XNNPACK, conv2dBackpropFilter: "own" };
const ALL_OWN: WasmKernelChoices = {
  conv2d: "own",
  conv2dBackpropInput: "own",
  conv2dBackpropFilter: "own",
};

async function useBackend(
  backend: "cpu" | "wasm",
  run: WasmRun = { threads: 1, kernels: ALL_OWN },
): Promise<void> {
  if (backend === "cpu") await tf.setBackend("cpu");
  else {
    const choice = await selectBackend({ backend: "wasm", threads: run.threads, env: {} });
    assert.equal(choice.threads, run.threads);
    registerWasmTrainingKernels(run.kernels);
    assert.equal(wasmFilterKernel(), run.kernels.conv2dBackpropFilter);
    assert.deepEqual(wasmKernelChoices(), run.kernels);
  }
}

async function gradients(
  backend: "cpu" | "wasm",
  arch: ResNetArch,
  run?: WasmRun,
): Promise<Map<string, Float32Array>> {
  await useBackend(backend, run);
  const model = buildResNet({ arch, classes: 10, seed: 5 });
  try {
    const named = model.namedVariables();
    const trainable = named.filter(([, v]) => v.trainable);
    const { grads, value } = tf.tidy(() => {
      const x = tf.tensor4d(xv, [BATCH, 12, 12, 3]);
      const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10);
      return tf.variableGrads(() => lossOf(model, x, y), trainable.map(([, v]) => v));
    });
    const out = new Map<string, Float32Array>();
    out.set("loss", value.dataSync() as Float32Array);
    for (const [name, v] of trainable) out.set(name, grads[v.name].dataSync() as Float32Array);
    // Running statistics were updated in training mode: compare them too.
    for (const [name, v] of named) if (!v.trainable) out.set(name, v.dataSync() as Float32Array);
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  } finally {
    disposeModule(model);
    await tf.setBackend("cpu");
  }
}

const runs: [string, WasmRun][] = [
  [" (XNNPACK convolutions)", { threads: 1, kernels: XNNPACK }],
  [" (own backward-filter kernel)", { threads: 1, kernels: OWN_FILTER }],
  [" (own backward-filter kernel, 2 threads: shared memory)", { threads: 2, kernels: OWN_FILTER }],
  [" (all own conv kernels, the default)", { threads: 1, kernels: ALL_OWN }],
  [" (all own conv kernels, 2 threads: shared memory)", { threads: 2, kernels: ALL_OWN }],
];

for (const block of ["basic", "bottleneck"] as const) {
  for (const [what, run] of runs) {
    Deno.test(`a small ${block} ResNet's training gradients on wasm${what} match the cpu backend`, async () => {
      const arch = tinyArch(block, [4, 8, 8]);
      const cpu = await gradients("cpu", arch);
      const wasm = await gradients("wasm", arch, run);
      assert.equal(wasm.size, cpu.size);
      let worst = 0;
      let worstName = "";
      for (const [name, c] of cpu) {
        const e = relativeError(wasm.get(name)!, c);
        if (e > worst) [worst, worstName] = [e, name];
      }
      assert.ok(
        cpu.has("stages.1.blocks.0.shortcut.conv.weight"),
        "the network has a projection shortcut",
      );
      assert.ok(worst <= 1e-5, `worst relative error ${worst} at ${worstName}`);
    });
  }
}

for (
  const [what, kernels] of [
    ["all own conv kernels, the default", ALL_OWN],
    ["XNNPACK convolutions", XNNPACK],
    ["own backward-filter kernel only", OWN_FILTER],
  ] as const
) {
  Deno.test(`wasm training steps (${what}) do not leak tensors`, async () => {
    await useBackend("wasm", { threads: 1, kernels });
    const model = buildResNet({ arch: tinyArch("basic", [4, 8]), classes: 10, seed: 6 });
    const vars = model.namedVariables().filter(([, v]) => v.trainable).map(([, v]) => v);
    const step = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xv, [BATCH, 12, 12, 3]);
        const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10);
        const { grads, value } = tf.variableGrads(() => lossOf(model, x, y), vars);
        for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.01)));
        const loss = value.dataSync()[0];
        assert.ok(Number.isFinite(loss));
      });
    try {
      await assertNoLeak(step, { steps: 3, bytes: true, label: "wasm training step" });
    } finally {
      disposeModule(model);
      registerWasmTrainingKernels(ALL_OWN);
      await tf.setBackend("cpu");
    }
  });
}
