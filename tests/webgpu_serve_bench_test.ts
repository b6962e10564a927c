/**
 * `deno task bench:serve --backend webgpu --allow-software-adapter` serves on the software
 * adapter and says loudly, in its table and on stderr, that its numbers mean nothing.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";
import { webgpuTest } from "./_webgpu.ts";

webgpuTest(
  "webgpu bench:serve: on a software adapter the output says its numbers mean nothing",
  async () => {
    const run = await runDeno([
      "tasks/bench_serve.ts",
      "--backend",
      "webgpu",
      "--allow-software-adapter",
      "--requests",
      "8",
      "--rounds",
      "1",
      "--cold-starts",
      "1",
      "--concurrency",
      "2",
      "--width",
      "0.0625",
    ]);
    assert.equal(run.code, 0, `${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`);
    assert.match(run.stdout, /non-200: 0/);
    assert.match(run.stdout, /\*\*SOFTWARE ADAPTER \(--allow-software-adapter\): .*mean nothing/);
    assert.match(run.stderr, /bench:serve: SOFTWARE ADAPTER/);
  },
);
