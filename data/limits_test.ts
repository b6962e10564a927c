import assert from "node:assert/strict";
import { readTarGz } from "./archive.ts";
import { maxArchiveContentBytes, maxFileBytes, SizeLimitError } from "./limits.ts";
import { loadCifar } from "./load.ts";
import { fixtureFiles, tarGz, writeFiles } from "./testdata/fixtures.ts";

/** A ustar header for a regular file that declares `size` bytes. */
function tarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (at: number, text: string) => h.set(new TextEncoder().encode(text), at);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, size.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  const sum = h.reduce((s, b) => s + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const gz = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(gz).arrayBuffer());
}

Deno.test("an archive member declaring more than its official size is refused before allocation", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A header claiming a 2 GB test_batch.bin, then a few bytes: the old reader allocated the
    // declared size first and only then found the data short.
    const member = "cifar-10-batches-bin/test_batch.bin";
    const body = new Uint8Array(512 + 4096);
    body.set(tarHeader(member, 2_000_000_000));
    const archive = `${dir}/bomb.tar.gz`;
    await Deno.writeFile(archive, await gzip(body));
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "test", archive }),
      (e: unknown) => {
        assert.ok(e instanceof SizeLimitError, String(e));
        assert.equal(e.bytes, 2_000_000_000);
        assert.equal(e.limit, 30_730_000);
        assert.match(e.message, /bomb\.tar\.gz!cifar-10-batches-bin\/test_batch\.bin/);
        return true;
      },
    );
    // A label-name file is limited too.
    assert.equal(maxFileBytes("cifar10", "batches.meta.txt"), 65_536);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an extracted file larger than the official one is refused without reading it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFiles(dir, fixtureFiles("cifar10", 2));
    const path = `${dir}/cifar-10-batches-bin/test_batch.bin`;
    // Sparse: 20,000 records' worth of bytes without writing them.
    await Deno.truncate(path, 20_000 * 3073);
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "test", dir }),
      (e: unknown) => e instanceof SizeLimitError && e.path === path && e.limit === 30_730_000,
    );
    // Smaller files (the embedded sample, fixtures) still load: the check reports them.
    const train = await loadCifar({ dataset: "cifar10", split: "train", dir });
    assert.equal(train.count, 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readTarGz stops once the decompressed stream exceeds maxTotalBytes", async () => {
  const gz = await tarGz(fixtureFiles("cifar10", 3));
  await assert.rejects(
    readTarGz(new Blob([gz]).stream(), { wanted: [], name: "x.tar.gz", maxTotalBytes: 20_000 }),
    (e: unknown) =>
      e instanceof SizeLimitError && /x\.tar\.gz: \d+ bytes exceed 20000/.test(e.message),
  );
  const ok = await readTarGz(new Blob([gz]).stream(), {
    wanted: [],
    name: "x.tar.gz",
    maxTotalBytes: maxArchiveContentBytes("cifar10"),
  });
  assert.equal(ok.members.size, 0);
});
