import assert from "node:assert/strict";
import { CifarFileMissingError, loadCifar } from "./load.ts";
import { md5Hex } from "./md5.ts";
import { decodeRecords } from "./records.ts";
import { fixtureFiles, tarGz, writeFiles } from "./testdata/fixtures.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mfi-data-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadCifar: CIFAR-10 from a parent folder, the folder itself, and the archive agree", async () => {
  await withTemp(async (dir) => {
    const files = fixtureFiles("cifar10", 3);
    await writeFiles(dir, files);
    const archive = `${dir}/cifar-10-binary.tar.gz`;
    await Deno.writeFile(archive, await tarGz(files));
    const a = await loadCifar({ dataset: "cifar10", split: "train", dir });
    const b = await loadCifar({
      dataset: "cifar10",
      split: "train",
      dir: `${dir}/cifar-10-batches-bin`,
    });
    const c = await loadCifar({ dataset: "cifar10", split: "train", archive });
    for (const s of [a, b, c]) {
      assert.equal(s.count, 15);
      assert.equal(s.labelKind, "class");
      assert.equal(s.classNames.length, 10);
      assert.equal(s.classNames[3], "class_3");
    }
    assert.deepEqual(a.images, c.images);
    assert.deepEqual(a.labels, c.labels);
    assert.deepEqual(b.images, a.images);
    // Concatenation in file order: batch 2's first image follows batch 1's three.
    const batch2 = decodeRecords(files[1].bytes, { dataset: "cifar10", file: "2" });
    assert.deepEqual(a.images.subarray(3 * 3072, 4 * 3072), batch2.images.subarray(0, 3072));
    // md5 of every file read, and of the archive.
    assert.equal(a.files.length, 6);
    assert.equal(a.files[0].md5, md5Hex(files[0].bytes));
    assert.equal(c.files[0].path, archive);
    assert.equal(c.files[0].md5, md5Hex(await Deno.readFile(archive)));
    assert.deepEqual(c.files.slice(1).map((f) => f.md5), a.files.map((f) => f.md5));
    const test = await loadCifar({ dataset: "cifar10", split: "test", archive });
    assert.equal(test.count, 3);
  });
});

Deno.test("loadCifar: CIFAR-100 fine and coarse labels with their names", async () => {
  await withTemp(async (dir) => {
    const files = fixtureFiles("cifar100", 4);
    await writeFiles(dir, files);
    const archive = `${dir}/c100.tar.gz`;
    await Deno.writeFile(archive, await tarGz(files));
    const fine = await loadCifar({ dataset: "cifar100", split: "test", dir });
    const coarse = await loadCifar({
      dataset: "cifar100",
      split: "test",
      archive,
      labels: "coarse",
    });
    assert.equal(fine.labelKind, "fine");
    assert.equal(fine.classNames.length, 100);
    assert.equal(coarse.classNames.length, 20);
    assert.equal(coarse.classNames[19], "coarse_19");
    assert.deepEqual([...fine.labels], [0, 3, 6, 9]);
    assert.deepEqual([...coarse.labels], [0, 7, 14, 1]);
    assert.deepEqual(fine.images, coarse.images);
  });
});

Deno.test("loadCifar: missing files are CifarFileMissingError naming the path", async () => {
  await withTemp(async (dir) => {
    const files = fixtureFiles("cifar10", 2).filter((f) => !f.name.endsWith("data_batch_4.bin"));
    await writeFiles(dir, files);
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "train", dir }),
      (e: Error) => e instanceof CifarFileMissingError && /data_batch_4\.bin/.test(e.message),
    );
    // The test split is complete and loads.
    assert.equal((await loadCifar({ dataset: "cifar10", split: "test", dir })).count, 2);
    await assert.rejects(
      loadCifar({ dataset: "cifar100", split: "test", dir }),
      (e: Error) => e instanceof CifarFileMissingError && /cifar-100-binary/.test(e.message),
    );
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "test", archive: `${dir}/nope.tar.gz` }),
      (e: Error) =>
        e instanceof CifarFileMissingError && /nope\.tar\.gz does not exist/.test(e.message),
    );
    const archive = `${dir}/partial.tar.gz`;
    await Deno.writeFile(archive, await tarGz(files));
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "train", archive }),
      (e: Error) =>
        e instanceof CifarFileMissingError &&
        e.message.includes("no member cifar-10-batches-bin/data_batch_4.bin") &&
        e.message.includes("c32a1d4ab5d03f1284b67883e8d87530"),
    );
  });
});

Deno.test("loadCifar: a file of partial records or bad labels is an error naming it", async () => {
  await withTemp(async (dir) => {
    const files = fixtureFiles("cifar10", 2);
    const test = files.find((f) => f.name.endsWith("test_batch.bin"))!;
    await writeFiles(dir, files);
    await Deno.writeFile(`${dir}/${test.name}`, test.bytes.subarray(0, 5000));
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "test", dir }),
      /test_batch\.bin: .*5000 bytes/,
    );
    const bad = test.bytes.slice();
    bad[0] = 255;
    await Deno.writeFile(`${dir}/${test.name}`, bad);
    await assert.rejects(
      loadCifar({ dataset: "cifar10", split: "test", dir }),
      /test_batch\.bin: record 0 .*label 255/,
    );
  });
});

Deno.test("loadCifar: truncated or corrupt archives are errors naming the archive", async () => {
  await withTemp(async (dir) => {
    const gz = await tarGz(fixtureFiles("cifar10", 2));
    const cases: [string, Uint8Array][] = [
      ["truncated.tar.gz", gz.subarray(0, Math.floor(gz.length / 2))],
      ["garbage.tar.gz", new TextEncoder().encode("this is not gzip data at all")],
      ["flipped.tar.gz", gz.map((v, i) => (i > 40 && i < 60 ? v ^ 0xff : v))],
      ["empty.tar.gz", new Uint8Array(0)],
    ];
    for (const [name, bytes] of cases) {
      const archive = `${dir}/${name}`;
      await Deno.writeFile(archive, bytes);
      await assert.rejects(
        loadCifar({ dataset: "cifar10", split: "test", archive }),
        (e: Error) => e.message.includes(archive) && !(e instanceof CifarFileMissingError),
        name,
      );
    }
  });
});

Deno.test("loadCifar: options are validated", async () => {
  await assert.rejects(
    loadCifar({ dataset: "cifar10", split: "train", dir: "/x", batch: 3 } as never),
    /unknown option "batch"/,
  );
  await assert.rejects(
    loadCifar({ dataset: "cifar10", split: "val" as "train", dir: "/x" }),
    /split must be/,
  );
  await assert.rejects(
    loadCifar({ dataset: "cifar10", split: "train", dir: "/x", archive: "/y" }),
    /either dir or archive/,
  );
  await assert.rejects(
    loadCifar({ dataset: "cifar10", split: "train", dir: "/x", labels: "coarse" }),
    /labels "coarse"/,
  );
  await assert.rejects(
    loadCifar({ dataset: "cifar10", split: "train", dir: "/definitely/not/here" }),
    CifarFileMissingError,
  );
});
