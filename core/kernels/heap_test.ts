import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { installHeapGuard } from "./_heap.ts";
import {
  WASM_HEAP_LIMIT_BYTES,
  wasmHeapBytes,
  WasmHeapError,
  withWasmHeapContext,
} from "./heap.ts";
import { registerWasmTrainingKernels } from "./register.ts";

Deno.test("an allocation the wasm heap cannot hold throws a clear error naming batch and heap", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  try {
    const before = tf.memory().numTensors;
    const heap = wasmHeapBytes().heapBytes;
    assert.ok(heap > 0 && heap <= WASM_HEAP_LIMIT_BYTES);
    // 1.1e9 floats = 4.4 GB: without the guard the byte count wraps around in wasm's i32.
    assert.throws(
      () => withWasmHeapContext({ batchSize: 64, what: "a test step" }, () => tf.zeros([1.1e9])),
      (e: unknown) => {
        assert.ok(e instanceof WasmHeapError);
        assert.match(e.message, /batch size 64/);
        assert.match(e.message, /heap in use: \d+ MiB of at most 4096 MiB/);
        assert.match(e.message, /cannot allocate 4196 MiB/);
        assert.equal(e.details.batchSize, 64);
        return true;
      },
    );
    // The backend is intact afterwards and nothing leaked.
    assert.equal(tf.memory().numTensors, before);
    const s = tf.tidy(() => tf.sum(tf.ones([5])).dataSync()[0]);
    assert.equal(s, 5);
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("a failed malloc (null pointer) becomes a WasmHeapError, not a write at address 0", () => {
  const fake = { HEAPU8: new Uint8Array(16), _malloc: (_n: number) => 0 };
  installHeapGuard(fake);
  installHeapGuard(fake);
  assert.throws(() => fake._malloc(1024), WasmHeapError);
  assert.equal(fake._malloc(0), 0);
  const ok = { HEAPU8: new Uint8Array(16), _malloc: (_n: number) => 64 };
  installHeapGuard(ok);
  assert.equal(ok._malloc(8), 64);
});

Deno.test("withWasmHeapContext passes results and other errors through, async too", async () => {
  assert.equal(withWasmHeapContext({ batchSize: 2 }, () => 7), 7);
  assert.throws(() =>
    withWasmHeapContext({}, () => {
      throw new RangeError("other");
    }), RangeError);
  await assert.rejects(
    () =>
      withWasmHeapContext(
        { batchSize: 32 },
        () => Promise.reject(new WasmHeapError({ heapBytes: 2 ** 31 })),
      ),
    /WASM heap exhausted \(heap in use: 2048 MiB of at most 4096 MiB\) at batch size 32/,
  );
  const abort = new Error("memory access out of bounds");
  abort.name = "RuntimeError";
  assert.throws(() =>
    withWasmHeapContext({ batchSize: 8 }, () => {
      throw abort;
    }), /batch size 8/);
});
