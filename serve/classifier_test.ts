import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { disposeModule, Rng } from "@mfi/core";
import { resizeCenterCrop } from "./image.ts";
import type { StagedModel } from "@mfi/resnet";
import { type BundleMeta, writeBundle } from "./bundle.ts";
import { INPUT_BYTES, loadClassifier } from "./classifier.ts";
import { buildModel, resnetSpec } from "@mfi/incubation";

await tf.setBackend("cpu");

const SPEC = resnetSpec("resnet18", 4, 1 / 32);
const META: BundleMeta = {
  classNames: ["zero", "one", "two", "three"],
  normalization: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] },
};

function build(seed: number): StagedModel {
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(SPEC, { seed });
  });
  return model;
}

function randomImages(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n * INPUT_BYTES }, () => rng.int(256));
}

/** Reference probabilities computed with tf ops from the original model (independent path). */
function reference(model: StagedModel, images: Uint8Array): Float32Array {
  return tf.tidy(() => {
    const n = images.length / INPUT_BYTES;
    const x = tf.div(
      tf.sub(
        tf.div(tf.tensor4d(Float32Array.from(images), [n, 32, 32, 3]), 255),
        tf.tensor1d([...META.normalization.mean]),
      ),
      tf.tensor1d([...META.normalization.std]),
    );
    return tf.softmax(model.apply(x, { training: false }) as tf.Tensor2D)
      .dataSync() as Float32Array;
  });
}

async function fixture(seed = 1) {
  const model = build(seed);
  const bytes = await writeBundle(model, SPEC, META);
  return { model, bytes };
}

Deno.test("classify returns the model's softmax top-k, most probable first", async () => {
  const { model, bytes } = await fixture();
  const before = tf.memory().numTensors;
  const classifier = await loadClassifier(bytes, { backend: "cpu" });
  assert.equal(classifier.backend.name, "cpu");
  const t = classifier.loadTimings;
  for (const v of Object.values(t)) assert.ok(v >= 0);
  assert.ok(t.totalMs >= t.instantiateMs + t.warmUpMs && t.totalMs >= t.bundleMs);
  assert.ok(t.warmUpMs > 0, "warm-up ran");
  const images = randomImages(3, 2);
  const ref = reference(model, images);
  const out = await classifier.classify(images, { topK: 4 });
  assert.equal(out.length, 3);
  for (let i = 0; i < 3; i++) {
    const row = ref.subarray(i * 4, i * 4 + 4);
    assert.deepEqual(out[i].map((p) => p.index).sort(), [0, 1, 2, 3]);
    for (const p of out[i]) {
      assert.ok(Math.abs(p.probability - row[p.index]) < 1e-5);
      assert.equal(p.label, META.classNames[p.index]);
    }
    for (let k = 1; k < 4; k++) assert.ok(out[i][k - 1].probability >= out[i][k].probability);
  }
  const top1 = await classifier.classify(images.subarray(0, INPUT_BYTES), { topK: 1 });
  assert.deepEqual(top1[0][0], out[0][0]);
  assert.equal((await classifier.classify([images.subarray(0, INPUT_BYTES)]))[0].length, 4);
  classifier.dispose();
  classifier.dispose(); // idempotent
  assert.equal(tf.memory().numTensors, before, "dispose frees every tensor of the classifier");
  disposeModule(model);
});

Deno.test("concurrent calls are micro-batched; chunks respect maxBatch; no tensor leaks", async () => {
  const { model, bytes } = await fixture(3);
  const classifier = await loadClassifier(bytes, { backend: "cpu", maxBatch: 4, warmUp: false });
  const images = Array.from({ length: 6 }, (_, i) => randomImages(1, 10 + i));
  const sequential = [];
  for (const img of images) sequential.push((await classifier.classify([img], { topK: 2 }))[0]);
  assert.equal(classifier.stats().batches, 6);
  const tensors = tf.memory().numTensors;
  const concurrent = await Promise.all(
    images.map((img) => classifier.classify([img], { topK: 2 })),
  );
  // 6 queued calls, at most 4 images per pass: 2 passes, answers in the right order.
  assert.equal(classifier.stats().batches, 8);
  assert.deepEqual(
    concurrent.map((r) => r[0].map((p) => p.index)),
    sequential.map((r) => r.map((p) => p.index)),
  );
  for (let i = 0; i < 6; i++) {
    for (let k = 0; k < 2; k++) {
      assert.ok(Math.abs(concurrent[i][0][k].probability - sequential[i][k].probability) < 1e-5);
    }
  }
  // One call larger than maxBatch is split into passes and reassembled in order.
  const big = await classifier.classify(images, { topK: 2 });
  assert.equal(classifier.stats().batches, 10);
  assert.deepEqual(
    big.map((r) => r.map((p) => p.index)),
    sequential.map((r) => r.map((p) => p.index)),
  );
  assert.equal(classifier.stats().images, 18);
  assert.equal(tf.memory().numTensors, tensors, "tensor count is flat across calls");
  classifier.dispose();
  disposeModule(model);
});

Deno.test("decoded RGB/RGBA images of any size are resized and centre-cropped", async () => {
  const { model, bytes } = await fixture(4);
  const classifier = await loadClassifier(bytes, { backend: "cpu", warmUp: false });
  const rng = new Rng(9);
  const big = {
    width: 80,
    height: 64,
    data: Uint8Array.from({ length: 80 * 64 * 3 }, () => rng.int(256)),
  };
  const [viaImage] = await classifier.classify([big], { topK: 4 });
  const [viaBytes] = await classifier.classify([resizeCenterCrop(big, 32).data], { topK: 4 });
  assert.deepEqual(viaImage, viaBytes);
  // RGBA (a canvas ImageData) drops alpha.
  const rgba = new Uint8ClampedArray(80 * 64 * 4);
  for (let p = 0; p < 80 * 64; p++) {
    rgba.set(big.data.subarray(p * 3, p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = 17;
  }
  const [viaRgba] = await classifier.classify([{ width: 80, height: 64, data: rgba }], { topK: 4 });
  assert.deepEqual(viaRgba, viaBytes);
  await assert.rejects(
    classifier.classify([{ width: 80, height: 64, data: new Uint8Array(10) }]),
    /needs 15360 \(RGB\) or 20480 \(RGBA\) values, got 10/,
  );
  classifier.dispose();
  disposeModule(model);
});

Deno.test("invalid inputs and a disposed classifier reject with a reason", async () => {
  const { model, bytes } = await fixture(5);
  const classifier = await loadClassifier(bytes, { backend: "cpu", warmUp: false });
  await assert.rejects(classifier.classify(new Uint8Array(100)), /N x 3072 bytes/);
  await assert.rejects(classifier.classify([]), /at least one image/);
  await assert.rejects(
    classifier.classify([new Uint8Array(3071)]),
    /image 0: raw images must be 3072/,
  );
  await assert.rejects(classifier.classify(randomImages(1, 1), { topK: 0 }), /topK must be/);
  await assert.rejects(classifier.classify(randomImages(1, 1), { topK: 5 }), /\[1, 4\]/);
  await assert.rejects(classifier.classify(randomImages(1, 1), { topK: 1.5 }), /topK/);
  const pending = classifier.classify(randomImages(1, 1));
  classifier.dispose();
  await assert.rejects(pending, /disposed/);
  await assert.rejects(classifier.classify(randomImages(1, 1)), /disposed/);
  await assert.rejects(loadClassifier(bytes, { backend: "cpu", maxBatch: 0 }), /maxBatch/);
  await assert.rejects(
    loadClassifier(bytes.subarray(0, bytes.length - 4), { backend: "cpu" }),
    /bundle bytes.*truncated/,
  );
  disposeModule(model);
});

Deno.test("loadClassifier reads file: and http: URLs; plain http: only when allowed", async () => {
  const { model, bytes } = await fixture(6);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/m.mfi`;
    await Deno.writeFile(path, bytes);
    const fromFile = await loadClassifier(new URL(`file://${path}`), { backend: "cpu" });
    const image = randomImages(1, 3);
    const expected = await fromFile.classify(image);
    fromFile.dispose();

    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) =>
        new URL(req.url).pathname === "/m.mfi"
          ? new Response(bytes.slice())
          : new Response("no", { status: 404 }),
    );
    try {
      const base = `http://127.0.0.1:${server.addr.port}`;
      let fetched = 0;
      const counting: typeof fetch = (input, init) => (fetched++, fetch(input, init));
      await assert.rejects(
        loadClassifier(new URL(`${base}/m.mfi`), { backend: "cpu", fetch: counting }),
        (e) =>
          e instanceof TypeError &&
          /plain http:.*use https: or opt in with allowHttp/.test(e.message),
      );
      assert.equal(fetched, 0, "an http: URL must be refused before anything is fetched");
      const fromHttp = await loadClassifier(new URL(`${base}/m.mfi`), {
        backend: "cpu",
        allowHttp: true,
      });
      assert.deepEqual(await fromHttp.classify(image), expected);
      fromHttp.dispose();
      await assert.rejects(
        loadClassifier(new URL(`${base}/missing.mfi`), { backend: "cpu", allowHttp: true }),
        /answered 404/,
      );
    } finally {
      await server.shutdown();
    }
    await assert.rejects(loadClassifier(new URL("ftp://x/m.mfi")), /unsupported URL scheme ftp:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    disposeModule(model);
  }
});

Deno.test("loadClassifier stops an endless or oversized model download at the size limit", async () => {
  let pulled = 0;
  const endless: typeof fetch = () =>
    Promise.resolve(
      new Response(
        new ReadableStream({
          pull(c) {
            pulled++;
            c.enqueue(new Uint8Array(65536));
          },
        }),
      ),
    );
  // 1,000 parameters: a bundle can be at most 8,000 bytes plus 16 MiB of header room.
  const limits = { maxParameters: 1_000 };
  await assert.rejects(
    loadClassifier(new URL("https://models.invalid/m.mfi"), {
      backend: "cpu",
      fetch: endless,
      limits,
    }),
    /sends over 16785216 bytes, more than a bundle within the parameter limit can be/,
  );
  assert.ok(pulled < 300, `read ${pulled} chunks of an endless body`);
  const declared: typeof fetch = () =>
    Promise.resolve(
      new Response(new Uint8Array(10), { headers: { "content-length": "999999999999" } }),
    );
  await assert.rejects(
    loadClassifier(new URL("https://models.invalid/m.mfi"), {
      backend: "cpu",
      fetch: declared,
      limits,
    }),
    /sends 999999999999 bytes/,
  );
});
