import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { fixtureFiles, tarGz, writeFiles } from "../data/testdata/fixtures.ts";

const script = fileURLToPath(new URL("./data.ts", import.meta.url));

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("deno task data check: JSON and table; a missing split or a differing md5 fails the check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-data-cli-" });
  try {
    // CIFAR-100 without train.bin (a partial copy).
    await writeFiles(dir, fixtureFiles("cifar100", 6).filter((f) => !f.name.endsWith("train.bin")));
    const json = await run("check", "--dataset", "cifar100", "--data-dir", dir, "--json");
    // Until issue 15 this exited 0 although records were missing and every md5 differed.
    assert.equal(json.code, 1, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(
      [...new Set(report.problems.map((p: { kind: string }) => p.kind))].sort(),
      ["md5", "missing", "undersized"],
    );
    assert.match(json.stderr, /problem\(s\).*\n.*missing: .*train\.bin/s);
    assert.match(json.stderr, /Fix: download it again/);
    assert.deepEqual(report.splits.map((s: { status: string }) => s.status), ["missing", "ok"]);
    assert.match(report.splits[0].message, /train\.bin/);
    const test = report.splits[1];
    assert.equal(test.records, 6);
    assert.equal(test.expectedRecords, 10000);
    assert.equal(test.classes, 100);
    assert.equal(test.files.length, 2);
    assert.match(test.files[0].md5, /^[0-9a-f]{32}$/);
    assert.equal(test.channels.mean.length, 3);

    const table = await run(
      "check",
      "--dataset",
      "cifar100",
      "--data-dir",
      dir,
      "--labels",
      "coarse",
    );
    assert.equal(table.code, 1, table.stderr);
    assert.match(table.stdout, /\| test +\| 6 +\| 10000 +\|/);
    assert.match(table.stdout, /\| train +\| missing/);
    assert.match(table.stdout, /coarse_label_names\.txt/);
    // Fixture files carry official names but not official contents.
    assert.match(table.stdout, /test\.bin .*DIFFERS \(4499cfba6c016c1be1438163640a0898\)/);
    assert.equal(test.files[0].publishedMd5, "4499cfba6c016c1be1438163640a0898");

    // Nothing readable: exit 1; usage errors: exit 2.
    const none = await run("check", "--dataset", "cifar10", "--data-dir", dir, "--json");
    assert.equal(none.code, 1);
    assert.equal((await run("check", "--dataset", "mnist")).code, 2);
    assert.equal((await run("check", "--dataset", "cifar10", "--split", "val")).code, 2);
    assert.equal((await run("frobnicate", "--dataset", "cifar10")).code, 2);
    const old = await run("check", "--dir", dir);
    assert.equal(old.code, 2);
    assert.equal(
      old.stderr.trim(),
      "data: --dir was renamed --data-dir (one spelling across " +
        "tasks); use --data-dir DIR",
    );

    // From an archive, one split; a corrupt file is an error (exit 1) naming it.
    const archive = `${dir}/c10.tar.gz`;
    await Deno.writeFile(archive, await tarGz(fixtureFiles("cifar10", 4)));
    const one = await run("check", "--dataset", "cifar10", "--archive", archive, "--split", "test");
    assert.equal(one.code, 1, one.stderr); // 4 records, not the official 10,000: undersized
    assert.match(one.stderr, /undersized: .*test_batch\.bin: 12292 bytes \(4 records\)/);
    assert.match(one.stdout, /c10\.tar\.gz!cifar-10-batches-bin\/test_batch\.bin/);
    await Deno.writeFile(archive, new Uint8Array(100));
    const bad = await run("check", "--dataset", "cifar10", "--archive", archive);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /c10\.tar\.gz/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data check: an archive bomb (a small .tar.gz with an oversized CIFAR file) is refused before it is loaded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-data-bomb-" });
  try {
    // test_batch.bin with 20,000 records (twice the official 10,000): 61 MB of zeros, ~60 KB
    // compressed. Before issue 15 it loaded 20,000 "images" and the check passed.
    const files = fixtureFiles("cifar10", 2);
    const i = files.findIndex((f) => f.name.endsWith("test_batch.bin"));
    files[i] = { name: files[i].name, bytes: new Uint8Array(20_000 * 3073) };
    const archive = `${dir}/cifar-10-binary.tar.gz`;
    const gz = await tarGz(files);
    assert.ok(gz.length < 1_000_000, `${gz.length} bytes`);
    await Deno.writeFile(archive, gz);
    const out = await run("check", "--dataset", "cifar10", "--archive", archive, "--json");
    assert.equal(out.code, 1, out.stderr);
    const report = JSON.parse(out.stdout);
    assert.equal(report.splits[1].status, "unreadable");
    assert.match(report.splits[1].message, /61460000 bytes exceed 30730000 bytes/);
    assert.ok(report.problems.some((p: { kind: string }) => p.kind === "oversized"));
    assert.match(out.stderr, /oversized: .*test_batch\.bin/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
