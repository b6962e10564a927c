import assert from "node:assert/strict";
import { fixtureFiles, tarGz, writeFiles } from "../data/testdata/fixtures.ts";
import { DataCheckError, DEFAULT_CONFIG, loadPipelineData } from "@mfi/incubation";

const SAMPLE = new URL("../data/sample/cifar-10-sample.tar.gz", import.meta.url).pathname;
const config = DEFAULT_CONFIG.data;

Deno.test("loadPipelineData refuses data that fails the check, naming the problems and the fix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-pipeline-data-" });
  try {
    // Official file names, not official contents: every md5 differs, every file is short.
    await writeFiles(dir, fixtureFiles("cifar10", 2));
    const error = await loadPipelineData(config, { dir }).catch((e) => e);
    // Before issue 15 this trained on the 12 images without a word.
    assert.ok(error instanceof DataCheckError, String(error));
    assert.equal(error.source, `folder ${dir}`);
    const kinds = new Set(error.problems.map((p) => p.kind));
    assert.deepEqual([...kinds].sort(), ["md5", "undersized"]);
    assert.ok(error.problems.some((p) => p.path.endsWith("data_batch_3.bin")));
    assert.match(error.message, /fails the data check .*not training on it/s);
    assert.match(error.message, /Fix: download the official archive again/);

    // Accepted knowingly: the data comes back with its problems, to be shown.
    const data = await loadPipelineData(config, { dir, allowBadData: true });
    assert.equal(data.train.count, 10);
    assert.equal(data.problems?.length, error.problems.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPipelineData: unreadable data (an oversized member) is refused, never skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-pipeline-data-" });
  try {
    const files = fixtureFiles("cifar10", 2);
    const i = files.findIndex((f) => f.name.endsWith("data_batch_1.bin"));
    files[i] = { name: files[i].name, bytes: new Uint8Array(10_001 * 3073) };
    const archive = `${dir}/c10.tar.gz`;
    await Deno.writeFile(archive, await tarGz(files));
    // Neither allowBadData nor the sample fallback turns it into a run.
    const error = await loadPipelineData(config, {
      archive,
      sampleArchive: SAMPLE,
      allowBadData: true,
    }).catch((e) => e);
    assert.ok(error instanceof DataCheckError, String(error));
    assert.deepEqual(error.problems.map((p) => p.kind), ["oversized"]);
    assert.match(error.message, /30733073 bytes exceed 30730000 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPipelineData: the embedded sample is exempt (it is announced as a sample instead)", async () => {
  const viaArchive = await loadPipelineData(config, { archive: SAMPLE });
  assert.deepEqual(viaArchive.problems, []);
  assert.equal(viaArchive.train.count, 2000);
  // (The fallback to the sample, `isSample: true`, skips the check the same way; not run here
  // because it would read whatever the machine's data cache holds.)
});
