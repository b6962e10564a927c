/**
 * `deno task reproduce` and the data check and run-folder lock of issue 15: data that fails the
 * check is refused (or, with `--allow-bad-data`, used under a loud warning), and a run folder
 * held by another run is refused naming the holder, before anything is trained or written.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";
import { fixtureFiles, writeFiles } from "../data/testdata/fixtures.ts";

function reproduce(args: string[]) {
  return runDeno(
    [
      "tasks/reproduce.ts",
      "--preset",
      "smoke",
      "--backend",
      "wasm",
      "--threads",
      "1",
      "--no-download",
      "--no-probe",
      ...args,
    ],
    { CI: "true" },
  );
}

Deno.test("reproduce refuses data that fails the check, and warns loudly with --allow-bad-data", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mfi-repro-safety-" });
  try {
    await writeFiles(`${tmp}/data`, fixtureFiles("cifar10", 10)); // official names, wrong md5s
    const args = ["--data-dir", `${tmp}/data`, "--out", `${tmp}/run`, "--dry-run"];
    const refused = await reproduce(args);
    // Before issue 15 it planned (and would have trained) on these 12 images without a word.
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /fails the data check/);
    assert.match(refused.stderr, /md5: .*data_batch_1\.bin: md5 [0-9a-f]{32}, the published md5/);
    assert.match(refused.stderr, /Pass --allow-bad-data to train on it anyway/);
    const allowed = await reproduce([...args, "--allow-bad-data"]);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /DATA FAILS THE CHECK \(--allow-bad-data\)/);
    assert.match(allowed.stdout, /undersized: .*test_batch\.bin/);
    await assert.rejects(Deno.stat(`${tmp}/run`), Deno.errors.NotFound); // dry run: nothing
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("reproduce refuses a run folder locked by a live run, naming it, and trains nothing", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mfi-repro-lock-" });
  try {
    const holder = {
      pid: 1, // alive on any Linux host
      hostname: Deno.hostname(),
      startedAt: "2026-01-01T00:00:00.000Z",
      command: "deno task reproduce --out elsewhere",
    };
    await Deno.writeTextFile(`${tmp}/.lock`, JSON.stringify(holder));
    const out = await reproduce([
      "--archive",
      "data/sample/cifar-10-sample.tar.gz",
      "--out",
      tmp,
      "--yes",
    ]);
    assert.equal(out.code, 2, out.stdout + out.stderr);
    assert.match(
      out.stderr,
      /held by pid 1 on .* since 2026-01-01T00:00:00\.000Z \(deno task reproduce --out elsewhere\)/,
    );
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [".lock"]);
    // A `--phase` run locks only its phases (independent phases may run side by side), and a
    // whole run is refused while one of them runs.
    await Deno.rename(`${tmp}/.lock`, `${tmp}/.lock.baseline`);
    const whole = await reproduce([
      "--archive",
      "data/sample/cifar-10-sample.tar.gz",
      "--out",
      tmp,
    ]);
    assert.equal(whole.code, 2, whole.stdout + whole.stderr);
    assert.match(whole.stderr, /\.lock\.baseline is held by pid 1 /);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [".lock.baseline"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("reproduce --dry-run marks a complete phase made with another config as refused, not complete", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mfi-repro-foreign-" });
  try {
    const run = ["--out", `${tmp}/run`, "--yes"];
    const trained = await reproduce([...run, "--phase", "baseline"]);
    assert.equal(trained.code, 0, trained.stderr);
    const same = await reproduce([...run, "--dry-run"]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /baseline .*\[complete, skipped\]/);
    const other = await reproduce([...run, "--dry-run", "--set", "baseline.lr=0.0123"]);
    assert.equal(other.code, 0, other.stderr);
    assert.match(
      other.stdout,
      /baseline .*\[made with another config: the run refuses this folder\]/,
    );
    assert.doesNotMatch(other.stdout, /baseline .*\[complete, skipped\]/);
    // The plan tells the truth: the run itself refuses the folder.
    const refused = await reproduce([...run, "--set", "baseline.lr=0.0123"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /another config/i);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
