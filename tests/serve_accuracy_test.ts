/**
 * A trained bundle classifies real CIFAR test images with the top-1 accuracy training recorded.
 *
 * Runs only when a trained model and the data are available (otherwise it is reported as
 * ignored), because CI has neither a trained model nor the CPU budget for one:
 *
 * ```sh
 * MFI_BUNDLE=model.mfi deno test -A tests/serve_accuracy_test.ts          # an exported bundle
 * MFI_CHECKPOINT=runs/train/checkpoints deno test -A tests/serve_accuracy_test.ts  # or a checkpoint
 * ```
 *
 * `MFI_DATA_DIR` is the extracted CIFAR folder (default `/tmp/cifar`, see
 * `/work/shared/data/unpack.sh`). The test compares three numbers on the images the bundle's
 * `accuracy` describes (all, the first n, or the first n per class): the accuracy recorded at
 * training time, the training code's own evaluation (`evaluate` from `@mfi/core` over
 * `batches` from `@mfi/data`) of the bundle's model, and `classifier.classify` on the raw uint8
 * images; and the first 100 images sent as PNG files to the HTTP handler answer as `classify`.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { evaluate, latestCheckpoint, readCheckpoint, selectBackend } from "@mfi/core";
import { batches, type CifarSplit, loadCifar, subsetPerClass } from "@mfi/data";
import { encode as encodePng } from "fast-png";
import {
  bundleFromCheckpoint,
  createHandler,
  instantiateBundle,
  loadClassifier,
  readBundle,
} from "@mfi/serve";

const env = (name: string): string | undefined => Deno.env.get(name) || undefined;
const bundlePath = env("MFI_BUNDLE");
const checkpointPath = env("MFI_CHECKPOINT");
const dataDir = env("MFI_DATA_DIR") ?? "/tmp/cifar";
const haveData = await Deno.stat(dataDir).then(() => true, () => false);

async function bundleBytes(): Promise<Uint8Array> {
  if (bundlePath) return await Deno.readFile(bundlePath);
  const sidecar = checkpointPath!.endsWith(".json")
    ? checkpointPath!
    : await latestCheckpoint(checkpointPath!) ?? await latestCheckpoint(`${checkpointPath}/output`);
  if (!sidecar) throw new Error(`No complete checkpoint in ${checkpointPath}`);
  return (await bundleFromCheckpoint(await readCheckpoint(sidecar))).bytes;
}

function select(split: CifarSplit, subset: string, examples: number): CifarSplit {
  if (subset === "first-per-class") {
    return subsetPerClass(split, examples / split.classNames.length);
  }
  if (subset === "first" || examples < split.count) {
    return {
      ...split,
      count: examples,
      images: split.images.subarray(0, examples * 3072),
      labels: split.labels.subarray(0, examples),
    };
  }
  return split;
}

Deno.test({
  name: "a trained bundle reproduces the recorded CIFAR test accuracy through classify",
  ignore: !(bundlePath || checkpointPath) || !haveData,
  async fn() {
    await selectBackend({ backend: (env("MFI_BACKEND") as "wasm" | undefined) ?? "wasm" });
    const bytes = await bundleBytes();
    const bundle = await readBundle(bytes);
    const recorded = bundle.info.accuracy;
    assert.ok(recorded, "the bundle records no accuracy to compare with");
    assert.equal(recorded.split, "test");
    const full = await loadCifar({
      dataset: recorded.dataset as "cifar10" | "cifar100",
      split: "test",
      dir: dataDir,
    });
    const test = select(full, recorded.subset ?? "all", recorded.examples);
    assert.equal(test.count, recorded.examples);

    // The training code's evaluation of the bundle's model.
    const model = instantiateBundle(bundle);
    const reference = await evaluate(model, batches(test, { batchSize: 256 }));
    for (const [, v] of model.namedVariables()) v.dispose();

    // The inference path: raw uint8 images through the classifier.
    const classifier = await loadClassifier(bytes, { backend: "wasm", maxBatch: 256 });
    let correct = 0;
    const t0 = performance.now();
    for (let i = 0; i < test.count; i += 1000) {
      const n = Math.min(1000, test.count - i);
      const answers = await classifier.classify(test.images.subarray(i * 3072, (i + n) * 3072), {
        topK: 1,
      });
      answers.forEach((a, j) => (correct += a[0].index === test.labels[i + j] ? 1 : 0));
    }
    const seconds = (performance.now() - t0) / 1000;
    // The HTTP path: the first 100 images as PNG files answer as classify does.
    const handler = createHandler(classifier);
    for (let i = 0; i < Math.min(100, test.count); i++) {
      const pixels = test.images.slice(i * 3072, (i + 1) * 3072);
      const png = encodePng({ width: 32, height: 32, data: pixels, channels: 3 });
      const res = await handler(
        new Request("http://x/classify?topk=1", { method: "POST", body: new Uint8Array(png) }),
      );
      const [direct] = await classifier.classify([pixels], { topK: 1 });
      assert.equal((await res.json()).predictions[0].index, direct[0].index);
    }
    classifier.dispose();
    const accuracy = correct / test.count;
    console.log(
      `${bundle.info.name}: recorded ${(100 * recorded.top1).toFixed(2)} %, training evaluate ` +
        `${(100 * reference.accuracy).toFixed(2)} %, classify ${(100 * accuracy).toFixed(2)} % ` +
        `(${correct}/${test.count}, ${
          (test.count / seconds).toFixed(0)
        } images/s on ${tf.getBackend()})`,
    );
    // Same backend, same weights: at most a near-tie or two may flip through float rounding
    // of the normalisation (JS vs tensor ops).
    assert.ok(
      Math.abs(correct - Math.round(reference.accuracy * test.count)) <= 2,
      "classify agrees with the training evaluation",
    );
    // Training may have run on another backend or thread count.
    assert.ok(
      Math.abs(accuracy - recorded.top1) <= 0.001 + 1 / test.count,
      `classify ${accuracy} vs recorded ${recorded.top1}`,
    );
  },
});
