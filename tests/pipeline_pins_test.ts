/**
 * The refactored runner is behaviour-preserving: the smoke pipeline with the first
 * implementation's settings (legacy stage-fit objective, no batch-norm recalibration, no
 * compute-matched baseline) writes bit-identical weights to those the runner wrote before the
 * phase kinds were split (digests pinned from that version, same seed, wasm with one thread).
 */
import assert from "node:assert/strict";
import { readCheckpoint } from "@mfi/core";
import { LEGACY_OBJECTIVE, outputPath, planPhases, runPipeline } from "@mfi/incubation";
import { smokeRun } from "./_smoke_run.ts";

/** SHA-256 of each phase's output weights file, written by commit 7c0ef0d's runner. */
const PINNED: Record<string, string> = {
  "baseline": "bec54c649e57f4f9d485795904845fa946334e2f39339d9e943cb956bb155ed3",
  "compress:1": "0c50cb49417614f0731dbcb8af54950e807f78a937a36e033147e990e0e7cf9f",
  "compress:2": "be6d2859282d8d5566fa3d553753ad44367b2ca7ab05b5b2b3caac7c9b4af95c",
  "compress:3": "800a7dad698f0227b553953ffb5f17ada9e40025972f50d36b2c1fd7f36c7612",
  "compress:4": "2fe4e20fadc2f2dea33342ed68fe41511449536c609eefb84c9e2800ca43b2b4",
  "meta": "42424de3a0002a86ac630ae9a9f75d7c70d1d01ea6f179811fb5fa56ed7f69cc",
  "incubate:1": "046364a38af134709edddc5e2c01be5538a0081a8e512202b2baef7f3f58567d",
  "incubate:2": "f6b3e448a94975504e39840885dd1e94f8b3c3fa16cd8c9a148d49653c1b586c",
  "incubate:3": "ac7aab231de390a00fcbe97cc8f81720b5c88c73d12d710e4d44c5b0f2dd8b67",
  "finetune": "da734f1fac1bae0242996ab74d740e576e4cd53658756fd8b569f8ea3b0ea82b",
};

Deno.test("smoke preset with the legacy settings: bit-identical phase outputs", async () => {
  const { config, data } = await smokeRun({
    ...LEGACY_OBJECTIVE,
    finetune: { recalibrateBatches: 0 },
    matched: { enabled: false },
  });
  const runDir = await Deno.makeTempDir({ prefix: "mfi-pins-" });
  try {
    const out = await runPipeline(config, { runDir, data, progress: false, log: () => {} });
    const phases = planPhases(config);
    assert.deepEqual(phases.map((p) => p.id), Object.keys(PINNED));
    for (const p of phases) {
      const ckpt = await readCheckpoint(outputPath(runDir, p));
      assert.equal(
        ckpt.sidecar.sha256,
        PINNED[p.id],
        `${p.id}: weights differ from the pinned run`,
      );
    }
    // Report numbers of the pinned run.
    assert.equal(out.results.baseline.testAccuracy, 0.06);
    assert.equal(out.results.finetune.testAccuracy, 0.09);
    assert.equal(out.results["compress:1"].fitRelative, 1.2600765614935179);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
