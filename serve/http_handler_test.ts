import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import { writeBundle } from "./bundle.ts";
import { type Classifier, loadClassifier } from "./classifier.ts";
import { createHandler } from "./http_handler.ts";
import { buildModel, resnetSpec } from "@mfi/incubation";

await tf.setBackend("cpu");

async function classifier(): Promise<Classifier> {
  const spec = resnetSpec("resnet18", 3, 1 / 32);
  const model = buildModel(spec, { seed: 1 });
  const bytes = await writeBundle(model, spec, {
    classNames: ["a", "b", "c"],
    normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  });
  for (const [, v] of model.namedVariables()) v.dispose();
  return await loadClassifier(bytes, { backend: "cpu" });
}

const raw = (n = 3072) => new Uint8Array(n).fill(100);
const post = (path: string, body: BodyInit | null, type = "application/octet-stream") =>
  new Request(`http://x${path}`, { method: "POST", body, headers: { "content-type": type } });

Deno.test("handler: routes, methods and content types", async () => {
  const c = await classifier();
  const handler = createHandler(c, { defaultTopK: 2 });
  const ok = await handler(post("/classify", raw()));
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("content-type")!, /application\/json/);
  const body = await ok.json();
  assert.equal(body.input, "raw");
  assert.equal(body.predictions.length, 2);
  const png = new Uint8Array(
    encodePng({ width: 40, height: 32, data: new Uint8Array(40 * 32 * 3), channels: 3 }),
  );
  const viaPng = await (await handler(post("/classify?topk=3", png, "text/plain"))).json();
  const direct = await c.classify([new Uint8Array(3072)], { topK: 3 });
  assert.deepEqual(viaPng.predictions, direct[0]);
  const head = await handler(new Request("http://x/healthz", { method: "HEAD" }));
  assert.equal(head.status, 200);
  await head.body?.cancel();
  const model = await (await handler(new Request("http://x/model"))).json();
  assert.deepEqual(model.classNames, ["a", "b", "c"]);
  assert.equal(model.backend, "cpu");
  const wrong = await handler(new Request("http://x/model", { method: "DELETE" }));
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, HEAD");
  assert.equal((await wrong.json()).error.status, 405);
  const health = await (await handler(new Request("http://x/healthz"))).json();
  assert.equal(health.requests, 6);
  assert.equal(health.errors, 1);
  assert.equal(typeof health.numTensors, "number");
  assert.equal(health.threads, 1);
  // Requests a server in front refused (timeouts, oversized heads) count as requests and errors.
  let refused = 0;
  const fronted = createHandler(c, { serverRefusals: () => refused });
  refused = 4;
  const h2 = await (await fronted(new Request("http://x/healthz"))).json();
  assert.deepEqual([h2.requests, h2.errors], [5, 4]);
  c.dispose();
});

Deno.test("handler: body limits, broken streams and internal errors answer JSON", async () => {
  const c = await classifier();
  const errors: unknown[] = [];
  const handler = createHandler(c, { maxBodyBytes: 4000, onError: (e) => errors.push(e) });
  const declared = await handler(post("/classify", raw(5000)));
  assert.equal(declared.status, 413);
  const streamed = await handler(
    post(
      "/classify",
      new ReadableStream({
        pull(ctl) {
          ctl.enqueue(new Uint8Array(1000)); // endless: the limit must stop it
        },
      }),
    ),
  );
  assert.equal(streamed.status, 413);
  const broken = await handler(
    post(
      "/classify",
      new ReadableStream({
        start(ctl) {
          ctl.enqueue(new Uint8Array(10));
          ctl.error(new Error("connection reset"));
        },
      }),
    ),
  );
  assert.equal(broken.status, 400);
  assert.match((await broken.json()).error.message, /connection reset/);
  assert.equal(errors.length, 0, "client errors are not reported as internal errors");
  c.dispose(); // classify now fails inside: a 500, reported to onError, and no throw
  const internal = await handler(post("/classify", raw()));
  assert.equal(internal.status, 500);
  assert.equal((await internal.json()).error.message, "Internal error while classifying");
  assert.equal(errors.length, 1);
});

Deno.test("createHandler validates its options", async () => {
  const c = await classifier();
  assert.throws(() => createHandler(c, { maxBodyBytes: 0 }), /maxBodyBytes/);
  assert.throws(() => createHandler(c, { maxPixels: 1.5 }), /maxPixels/);
  assert.throws(() => createHandler(c, { defaultTopK: 4 }), /exceeds the 3 classes/);
  c.dispose();
});
