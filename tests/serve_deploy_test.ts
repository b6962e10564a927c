/**
 * `deno serve tasks/serve_deploy.ts`: the handler as a default `fetch` export, configured by
 * environment variables, with read permission for the bundle and WASM files only.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import type { StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { writeBundle } from "@mfi/serve";
import { startServer } from "../tasks/_serve_process.ts";

await tf.setBackend("cpu");

Deno.test("deno serve: the deploy entry loads MFI_MODEL_URL and answers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-deploy-" });
  const spec = resnetSpec("resnet18", 2, 1 / 32);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 2 });
  });
  const path = `${dir}/m.mfi`;
  await Deno.writeFile(
    path,
    await writeBundle(model, spec, {
      classNames: ["yes", "no"],
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    }),
  );
  for (const [, v] of model.namedVariables()) v.dispose();
  const server = await startServer({ model: path, entry: "deploy" });
  try {
    // One WASM thread by default (MFI_THREADS unset), whatever the host's core count.
    const health = await (await fetch(`${server.base}/healthz`)).json();
    assert.equal(health.threads, 1);
    const info = await (await fetch(`${server.base}/model`)).json();
    assert.deepEqual(info.classNames, ["yes", "no"]);
    const res = await fetch(`${server.base}/classify?topk=2`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(3072).fill(7),
    });
    assert.equal(res.status, 200);
    const { predictions } = await res.json();
    assert.deepEqual(predictions.map((p: { label: string }) => p.label).sort(), ["no", "yes"]);

    // MFI_ALLOW_SOFTWARE_ADAPTER reaches selectBackend: a bad value stops the start, naming it.
    await assert.rejects(
      startServer({ model: path, entry: "deploy", env: { MFI_ALLOW_SOFTWARE_ADAPTER: "maybe" } }),
      /Server did not start \(exit [1-9]\d*\)[^]*MFI_ALLOW_SOFTWARE_ADAPTER/,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
