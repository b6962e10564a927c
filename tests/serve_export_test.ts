/**
 * `tasks/export.ts` end to end: a pipeline-style phase directory (checkpoint with optimizer
 * state, spec and accuracy in the sidecar) becomes a bundle with only read/write permissions on
 * the temp folder, and the bundle classifies exactly like the checkpoint's model.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { disposeModule, Rng, saveCheckpoint } from "@mfi/core";
import type { StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { loadClassifier, readBundle } from "@mfi/serve";

await tf.setBackend("cpu");

const EXPORT = new URL("../tasks/export.ts", import.meta.url).pathname;

async function runExport(dir: string, args: string[]): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      EXPORT,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, text: d.decode(out.stdout) + d.decode(out.stderr) };
}

Deno.test("export: phase directory -> .mfi bundle that classifies like the model", async () => {
  const spec = resnetSpec("resnet18", 10, 1 / 32);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 21 });
  });
  const dir = await Deno.makeTempDir({ prefix: "mfi-export-" });
  try {
    const momentum = new Map(
      model.namedVariables().filter(([, v]) => v.trainable).map(([n, v]) => [
        `momentum_buffer.${n}`,
        { dtype: "F32" as const, shape: v.shape, data: new Float32Array(v.size) },
      ]),
    );
    await saveCheckpoint(`${dir}/baseline/output`, model.namedVariables(), {
      epoch: 2,
      step: 20,
      config: { phase: "baseline", spec, data: { dataset: "cifar10", testPerClass: null } },
      optimizer: { kind: "sgd", iterations: 20, tensors: momentum },
      extra: { phase: "baseline", spec, testAccuracy: 0.25, backend: "wasm (SIMD, 1 thread)" },
    }, { name: "output" });

    const { code, text } = await runExport(dir, [
      "--checkpoint",
      `${dir}/baseline`,
      "--out",
      `${dir}/model.mfi`,
    ]);
    assert.equal(code, 0, text);
    assert.match(text, /parameters: \d+/);
    assert.match(text, /accuracy: 25\.00 % on 10000 cifar10 test images/);
    assert.match(text, /trained on: wasm \(SIMD, 1 thread\)\n/);
    assert.doesNotMatch(text, /SOFTWARE/);

    const classifier = await loadClassifier(new URL(`file://${dir}/model.mfi`), { backend: "cpu" });
    assert.equal(classifier.info.accuracy?.top1, 0.25);
    assert.deepEqual(classifier.info.backend, {
      label: "wasm (SIMD, 1 thread)",
      softwareAdapter: false,
    });
    const rng = new Rng(5);
    const images = Uint8Array.from({ length: 4 * 3072 }, () => rng.int(256));
    const answers = await classifier.classify(images, { topK: 1 });
    const expected = tf.tidy(() => {
      const x = tf.div(
        tf.sub(tf.div(tf.tensor4d(Float32Array.from(images), [4, 32, 32, 3]), 255), [
          0.4914,
          0.4822,
          0.4465,
        ]),
        [0.2470, 0.2435, 0.2616],
      );
      return Array.from(tf.argMax(model.apply(x, { training: false }), -1).dataSync());
    });
    assert.deepEqual(answers.map((a) => a[0].index), expected);
    classifier.dispose();

    // A phase run on a software WebGPU adapter (--allow-software-adapter): said loudly, recorded.
    const software = "webgpu (software adapter: llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541)";
    await saveCheckpoint(`${dir}/sw/output`, model.namedVariables(), {
      epoch: 1,
      step: 1,
      config: { phase: "baseline", spec, data: { dataset: "cifar10", testPerClass: null } },
      extra: { phase: "baseline", spec, testAccuracy: 0.1, backend: software },
    }, { name: "output" });
    const sw = await runExport(dir, ["--checkpoint", `${dir}/sw`, "--out", `${dir}/sw.mfi`]);
    assert.equal(sw.code, 0, sw.text);
    assert.ok(sw.text.includes(`trained on: ${software}\n`), sw.text);
    assert.match(sw.text, /WARNING: this model was trained on a SOFTWARE WebGPU adapter/);
    const swBundle = await readBundle(await Deno.readFile(`${dir}/sw.mfi`));
    assert.deepEqual(swBundle.info.backend, { label: software, softwareAdapter: true });

    const missing = await runExport(dir, ["--checkpoint", `${dir}/nothing`, "--out", `${dir}/x`]);
    assert.equal(missing.code, 1);
    assert.match(missing.text, /export: --checkpoint .*nothing is neither/);
    const usage = await runExport(dir, ["--out", `${dir}/x`]);
    assert.match(usage.text, /--checkpoint and --out are required/);

    // --out onto an input is refused before anything is written: the sidecar, the weights, a
    // symlink to the weights, a hard link to the weights, and a relative path to the sidecar.
    const out = `${dir}/baseline/output`;
    const before = await Deno.readFile(`${out}/output.safetensors`);
    const sidecarBefore = await Deno.readTextFile(`${out}/output.json`);
    await Deno.symlink(`${out}/output.safetensors`, `${dir}/link.mfi`);
    await Deno.link(`${out}/output.safetensors`, `${dir}/hard.mfi`);
    const onto: [string, RegExp][] = [
      [`${out}/output.json`, /is the checkpoint's sidecar/],
      [`${out}/output.safetensors`, /is the checkpoint's weights/],
      [`${dir}/link.mfi`, /is the checkpoint's weights/],
      [`${dir}/hard.mfi`, /is the checkpoint's weights/],
      [`${dir}/baseline/../baseline/output/./output.json`, /is the checkpoint's sidecar/],
      [`${dir}/baseline`, /is the checkpoint \(/],
    ];
    for (const [target, message] of onto) {
      const r = await runExport(dir, ["--checkpoint", `${dir}/baseline`, "--out", target]);
      assert.equal(r.code, 1, r.text);
      assert.match(r.text, message);
      assert.match(r.text, /an input of this export; refusing to write over it/);
    }
    assert.deepEqual(await Deno.readFile(`${out}/output.safetensors`), before);
    assert.equal(await Deno.readTextFile(`${out}/output.json`), sidecarBefore);
    const spec2 = `${dir}/spec.json`;
    await Deno.writeTextFile(spec2, JSON.stringify(spec));
    const onSpec = await runExport(dir, [
      "--checkpoint",
      `${dir}/baseline`,
      "--spec",
      spec2,
      "--out",
      spec2,
    ]);
    assert.match(onSpec.text, /is the spec file/);
    assert.equal(await Deno.readTextFile(spec2), JSON.stringify(spec));
  } finally {
    disposeModule(model);
    await Deno.remove(dir, { recursive: true });
  }
});
