/**
 * The runner is behaviour-preserving: the smoke pipeline with the first implementation's settings
 * (legacy stage-fit objective, no batch-norm recalibration, no compute-matched baseline) writes
 * bit-identical weights, run after run (same seed, wasm with one thread).
 *
 * The digests were pinned from commit 7c0ef0d's runner (before the phase kinds were split) and
 * re-pinned once, deliberately, when the wasm kernels changed the order of float summation (own
 * relaxed-SIMD convolution kernels as the default, the fused batch norm, the one-kernel optimizer
 * step): the runner's logic did not change then, and every new kernel is tested against the cpu
 * backend on its own. Relaxed SIMD fuses multiply-adds on CPUs with FMA (every x86-64 CPU of the
 * last decade, and the CI machines); a CPU without FMA would compute different last bits.
 */
import assert from "node:assert/strict";
import { readCheckpoint } from "@mfi/core";
import { LEGACY_OBJECTIVE, outputPath, planPhases, runPipeline } from "@mfi/incubation";
import { smokeRun } from "./_smoke_run.ts";

/** SHA-256 of each phase's output weights file (see the module doc for their history). */
const PINNED: Record<string, string> = {
  "baseline": "b8b85c4625480b0af7af3399d7c9ea22d19bba63109a03e226cb0716dd476e99",
  "compress:1": "c6bb2e8d5d7135821a55cc401c40a45bc472c716322f0df344c5f7cce8f1891a",
  "compress:2": "ca39f613adf8c27f23fe61d7d698896d14bec114957d179c9b6d198045e0baec",
  "compress:3": "155dfa645e5e2c1095472a316071df48a8840e5206ae7aca3786b3c234d31ccc",
  "compress:4": "795da0ec37a7b13368dfe304e8189c18fa2ef3979d8029b9e4dcf192efc8278f",
  "meta": "c2f99cb0170d93a07390a3ddb8100e6692d8b7f6aafbd023be379a8120fb7a68",
  "incubate:1": "42784632c2a66a7b8aee463bbca809ee5d1c5d6ea4e95df610a38d68bac64669",
  "incubate:2": "ad74653843a028cfc178cfe67d3d52de3410712684c071f8c4339bb6788cbecc",
  "incubate:3": "da43d875fc495f5f5315633f9ad2e0b59e2f865d5e33e5978ef0f98335ed9072",
  "finetune": "1e5b8ad034d8066ccce98d69ec135503f1a97468d6948893dfd37faf9ad86630",
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
    assert.equal(out.results.baseline.testAccuracy, 0.07);
    assert.equal(out.results.finetune.testAccuracy, 0.13);
    assert.equal(out.results["compress:1"].fitRelative, 1.3389557607398896);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
