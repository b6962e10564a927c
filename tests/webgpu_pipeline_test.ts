/**
 * The whole pipeline on WebGPU, as a user runs it: `deno task reproduce --preset smoke --backend
 * webgpu --allow-software-adapter` (here `deno run -A tasks/reproduce.ts ...`, the task's
 * command) on the embedded sample, end to end: every phase records the WebGPU backend (with
 * "software adapter" when it is one), and the report is complete.
 *
 * Sized down: the smoke preset (200 training / 100 test images) takes several minutes on Mesa's
 * llvmpipe on a 2-core machine, so this run keeps the preset and sets 5 training and 5 test
 * images per class (`--set data.trainPerClass=5 --set data.testPerClass=5`): every phase still
 * trains and evaluates, through the same command and `runPipeline` call.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";
import { webgpuTest } from "./_webgpu.ts";

webgpuTest(
  "webgpu pipeline: reproduce --preset smoke --backend webgpu --allow-software-adapter, end to end",
  async () => {
    const out = await Deno.makeTempDir({ prefix: "mfi-smoke-webgpu-" });
    try {
      const run = await runDeno([
        "tasks/reproduce.ts",
        "--preset",
        "smoke",
        "--backend",
        "webgpu",
        "--allow-software-adapter",
        "--out",
        out,
        "--archive",
        "data/sample/cifar-10-sample.tar.gz",
        "--no-download",
        "--no-probe",
        "--yes",
        "--set",
        "data.trainPerClass=5",
        "--set",
        "data.testPerClass=5",
      ]);
      const { stdout, stderr } = run;
      assert.equal(
        run.code,
        0,
        `reproduce failed:\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`,
      );
      // Loud about the testing switch.
      assert.match(stderr, /WARNING: WebGPU runs on a SOFTWARE adapter|^$/m);
      assert.match(stdout, /backend: +webgpu \(/);

      const report = JSON.parse(await Deno.readTextFile(`${out}/report/results.json`));
      const phases = report.phases as { phase: string; backend: string | null }[];
      assert.equal(phases.length, 11, phases.map((p) => p.phase).join());
      for (const p of phases) {
        assert.match(p.backend ?? "not run", /^webgpu \(/, `${p.phase} ran on ${p.backend}`);
      }
      assert.match(report.backend, /^webgpu \(/);
      // A software adapter is recorded as such, everywhere the backend is.
      if (/SOFTWARE ADAPTER/.test(stderr)) {
        assert.match(report.backend, /^webgpu \(software adapter: /);
        for (const p of phases) assert.match(p.backend!, /software adapter/, p.phase);
      }
      assert.deepEqual(report.models.map((m: { model: string }) => m.model), [
        "baseline",
        "matched",
        "meta",
        "mfi-resnet",
      ]);
      for (const m of report.models) {
        assert.ok(m.top1 >= 0 && m.top1 <= 1, `${m.model} top-1 ${m.top1}`);
      }
      assert.equal(report.testImages, 50);
      const files = [...Deno.readDirSync(`${out}/report`)].map((e) => e.name).sort();
      assert.deepEqual(files, [
        "accuracy_vs_parameters.svg",
        "in_situ.svg",
        "phase_curves.svg",
        "results.json",
        "results.md",
        "stage_fits.svg",
      ]);
      const md = await Deno.readTextFile(`${out}/report/results.md`);
      assert.match(md, /- Backend: webgpu \(/);
      assert.match(md, /\| mfi-resnet \|/);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);
