/**
 * The trained model committed at the repository root (`model.mfi`, what `deno task serve` serves
 * after cloning) loads and classifies: on the embedded sample's 500 CIFAR-10 test images its top-1
 * is near the accuracy its metadata records (47.50 % on the full test split).
 */
import assert from "node:assert/strict";
import { loadCifar } from "@mfi/data";
import { loadClassifier, readBundle } from "@mfi/serve";

const ROOT = new URL("..", import.meta.url);

Deno.test("model.mfi: the committed MFI-ResNet bundle loads and classifies CIFAR-10 test images", async () => {
  const bytes = await Deno.readFile(new URL("model.mfi", ROOT));
  const test = await loadCifar({
    dataset: "cifar10",
    split: "test",
    archive: new URL("data/sample/cifar-10-sample.tar.gz", ROOT).pathname,
  });
  const classifier = await loadClassifier(bytes, { backend: "wasm", threads: 1 });
  try {
    const predictions = await classifier.classify(test.images, { topK: 1 });
    const hits = predictions.filter((p, i) => p[0].index === test.labels[i]).length;
    const top1 = hits / test.count;
    assert.equal(test.count, 500);
    // 47.50 % on 10,000 images; 500 images have a binomial std of about 2.2 points.
    assert.ok(top1 > 0.38 && top1 < 0.57, `top-1 on the sample ${top1}`);
  } finally {
    classifier.dispose();
  }
});

Deno.test("model.mfi: written before bundles recorded their backend, it still reads (backend unknown)", async () => {
  const bundle = await readBundle(await Deno.readFile(new URL("model.mfi", ROOT)), {
    source: "model.mfi",
  });
  assert.equal(bundle.info.backend, null);
  assert.equal(bundle.info.accuracy?.top1, 0.475);
});
