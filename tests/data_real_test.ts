/**
 * Integration test of `@mfi/data` on the real CIFAR binaries shipped in `../shared/data` (beside
 * the repository). They are unpacked once (md5-verified by `unpack.sh`) into `<repo>/.cache/cifar`
 * and reused. Skipped, with the reason printed, where `../shared/data` is absent.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import {
  batches,
  CifarFileMissingError,
  classCounts,
  loadCifar,
  splitSummary,
  subsetPerClass,
} from "@mfi/data";

const repo = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const shared = fileURLToPath(new URL("../../shared/data", import.meta.url));
const cache = `${repo}/.cache/cifar`;

async function present(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

const haveShared = await present(`${shared}/unpack.sh`);
if (!haveShared) console.log(`data_real_test: skipped, ${shared} (real CIFAR data) is absent`);

/** md5 of every shipped file, from `MD5SUMS`. */
async function publishedMd5s(): Promise<Map<string, string>> {
  const text = await Deno.readTextFile(`${shared}/MD5SUMS`);
  return new Map(
    text.trim().split("\n").map((line) => {
      const [sum, file] = line.trim().split(/\s+/);
      return [file, sum] as [string, string];
    }),
  );
}

let unpacked: Promise<void> | undefined;
function unpack(): Promise<void> {
  unpacked ??= (async () => {
    // Idempotent: files already present with the right md5 are kept.
    const out = await new Deno.Command("bash", {
      args: [`${shared}/unpack.sh`, cache],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`unpack.sh ${cache} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  })();
  return unpacked;
}

Deno.test({
  name: "real CIFAR-10: 50,000/10,000 records, balanced classes, published channel stats, md5s",
  ignore: !haveShared,
  async fn() {
    await unpack();
    const md5s = await publishedMd5s();
    const train = await loadCifar({ dataset: "cifar10", split: "train", dir: cache });
    const s = splitSummary(train);
    assert.equal(s.records, 50_000);
    assert.deepEqual([...classCounts(train)], new Array(10).fill(5000));
    // Exact statistics over all 50,000 images, rounded to the published 4 decimals.
    const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
    assert.deepEqual(s.channels.mean.map(round4), [0.4914, 0.4822, 0.4465]);
    assert.deepEqual(s.channels.std.map(round4), [0.2470, 0.2435, 0.2616]);
    for (const file of train.files) {
      const name = file.path.slice(cache.length + 1);
      assert.equal(file.md5, md5s.get(name), name);
    }
    assert.deepEqual(train.classNames.slice(0, 3), ["airplane", "automobile", "bird"]);

    const test = await loadCifar({ dataset: "cifar10", split: "test", dir: cache });
    assert.equal(test.count, 10_000);
    assert.deepEqual([...classCounts(test)], new Array(10).fill(1000));
    assert.equal(test.files[0].md5, md5s.get("cifar-10-batches-bin/test_batch.bin"));

    const small = subsetPerClass(train, 10);
    assert.deepEqual([...classCounts(small)], new Array(10).fill(10));
  },
});

Deno.test({
  name: "real CIFAR-100 test: 10,000 records, 100 per fine class, 500 per coarse class",
  ignore: !haveShared,
  async fn() {
    await unpack();
    const fine = await loadCifar({ dataset: "cifar100", split: "test", dir: cache });
    assert.equal(fine.count, 10_000);
    assert.deepEqual([...classCounts(fine)], new Array(100).fill(100));
    const coarse = await loadCifar({
      dataset: "cifar100",
      split: "test",
      dir: `${cache}/cifar-100-binary`,
      labels: "coarse",
    });
    assert.deepEqual([...classCounts(coarse)], new Array(20).fill(500));
    assert.equal(fine.files[0].md5, (await publishedMd5s()).get("cifar-100-binary/test.bin"));
    if (!(await present(`${cache}/cifar-100-binary/train.bin`))) {
      await assert.rejects(
        loadCifar({ dataset: "cifar100", split: "train", dir: cache }),
        CifarFileMissingError,
      );
    }
  },
});

Deno.test({
  name: "real CIFAR-10 test split: normalised batches have mean ~0 and std ~1; no leaks",
  ignore: !haveShared,
  async fn() {
    await tf.setBackend("cpu");
    await unpack();
    const test = await loadCifar({ dataset: "cifar10", split: "test", dir: cache });
    const moments = (augment: boolean): [number, number] => {
      const before = tf.memory().numTensors;
      let sum = 0, squares = 0, count = 0, seen = 0;
      for (const b of batches(test, { batchSize: 256, shuffle: true, augment, seed: 3 })) {
        assert.deepEqual(b.images.shape, [256, 32, 32, 3]);
        const [s, q] = tf.tidy(
          () => [tf.sum(b.images).dataSync()[0], tf.sum(tf.square(b.images)).dataSync()[0]],
        );
        sum += s;
        squares += q;
        count += b.images.size;
        tf.dispose([b.images, b.labels]);
        if (++seen === 3) break;
      }
      assert.equal(tf.memory().numTensors, before);
      const mean = sum / count;
      return [mean, Math.sqrt(squares / count - mean * mean)];
    };
    const [mean, std] = moments(false);
    assert.ok(Math.abs(mean) < 0.05 && Math.abs(std - 1) < 0.05, `mean ${mean}, std ${std}`);
    // Augmented: about 13% of pixels are black padding (mean crop shift 20/9 rows and columns of
    // 32), at about -1.9 after normalisation, which pulls the mean to about -0.25.
    const [augMean] = moments(true);
    assert.ok(augMean < -0.15 && augMean > -0.35, `augmented mean ${augMean}`);
  },
});

const sample = fileURLToPath(new URL("../data/sample/cifar-10-sample.tar.gz", import.meta.url));
const haveSample = await present(sample);

Deno.test({
  name: "embedded CIFAR-10 sample archive: read in place, stratified 200/50 per class",
  ignore: !haveSample,
  async fn() {
    const train = await loadCifar({ dataset: "cifar10", split: "train", archive: sample });
    const test = await loadCifar({ dataset: "cifar10", split: "test", archive: sample });
    assert.deepEqual([...classCounts(train)], new Array(10).fill(200));
    assert.deepEqual([...classCounts(test)], new Array(10).fill(50));
    assert.equal(train.files[0].path, sample);
    assert.equal(train.files[0].md5, "52a71c02a49208f3b364da224c61001e");
    if (haveShared) {
      // The sample's first test images are the official test_batch.bin's first images of each class.
      await unpack();
      const full = await loadCifar({ dataset: "cifar10", split: "test", dir: cache });
      const cut = subsetPerClass(full, 50);
      assert.deepEqual(test.images, cut.images);
      assert.deepEqual(test.labels, cut.labels);
    }
  },
});
