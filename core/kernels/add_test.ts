import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { ownKernelBytes } from "./_own_kernels.ts";
import { values } from "./_test_util.ts";
import { ADD_OWN_MIN_SIZE, addWasm } from "./add.ts";
import { registerWasmTrainingKernels } from "./register.ts";

/** IEEE special values and edge cases of a float32 sum, repeated over `n` elements. */
function specials(n: number, seed: number): Float32Array {
  const edge = [0, -0, 1, -1, Infinity, -Infinity, NaN, 3.4e38, -3.4e38, 1e-45, -1e-45, 0.1];
  const v = values(n, seed);
  for (let i = 0; i < n; i += 7) v[i] = edge[(i / 7 + seed) % edge.length];
  return v;
}

/** `a + b` element by element in float32 (Math.fround of the exact sum is the float32 sum). */
function sumF32(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => Math.fround(v + b[i]));
}

/** Same values, bit for bit (NaN matches NaN, -0 does not match 0). */
function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

Deno.test("add_f32: any split into shares writes every element once, the float32 sum, special values included", () => {
  const n = 16 * 37 + 5; // whole 16-element blocks and a tail
  const memory = new WebAssembly.Memory({ initial: 2 });
  const k = new WebAssembly.Instance(new WebAssembly.Module(ownKernelBytes(false)), {
    env: { memory },
  }).exports as unknown as Record<string, (...a: number[]) => void>;
  const f = new Float32Array(memory.buffer);
  const [a, b, y] = [64, 64 + 4 * n, 64 + 8 * n]; // byte offsets, y not on a 64-byte line
  const av = specials(n, 1);
  const bv = specials(n, 2);
  f.set(av, a / 4);
  f.set(bv, b / 4);
  const want = sumF32(av, bv);
  for (const parts of [1, 2, 3, 7, 16, 255]) {
    f.fill(12345, y / 4, y / 4 + n + 4);
    for (let part = 0; part < parts; part++) k.add_f32(a, b, y, n, part, parts);
    assertSameBits(f.subarray(y / 4, y / 4 + n), want, `${parts} parts`);
    assert.equal(f[y / 4 + n], 12345, `${parts} parts: nothing written past the end`);
  }
  // One share alone writes only its own blocks.
  f.fill(12345, y / 4, y / 4 + n);
  k.add_f32(a, b, y, n, 1, 3);
  const written = Array.from(f.subarray(y / 4, y / 4 + n)).map((v) => v !== 12345);
  const first = written.indexOf(true);
  const count = written.filter(Boolean).length;
  assert.ok(first > 0 && first % 16 === 0, `share 1 starts on a block, at ${first}`);
  assert.ok(written.slice(first, first + count).every(Boolean), "one run of elements");
});

Deno.test("addWasm: float32 operands of one shape, large enough, go to the own kernel; every other case to the fallback", async () => {
  await tf.setBackend("wasm");
  try {
    registerWasmTrainingKernels();
    const backend = tf.backend() as unknown as {
      makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
      disposeData(dataId: unknown): void;
    };
    const calls: string[] = [];
    const fallback: tf.KernelFunc = () => {
      calls.push("fallback");
      return backend.makeOutput([1], "float32");
    };
    const big = [8, ADD_OWN_MIN_SIZE / 8];
    const cases: [string, tf.Tensor, tf.Tensor, boolean][] = [
      ["float32, one shape", tf.ones(big), tf.ones(big), true],
      ["too small", tf.ones([ADD_OWN_MIN_SIZE - 1]), tf.ones([ADD_OWN_MIN_SIZE - 1]), false],
      ["broadcast", tf.ones(big), tf.ones([1, big[1]]), false],
      ["same size, other shape", tf.ones(big), tf.ones([big[1], 8]), false],
      ["int32", tf.ones(big, "int32"), tf.ones(big, "int32"), false],
      ["mixed dtypes", tf.ones(big), tf.ones(big, "int32"), false],
    ];
    for (const [what, a, b, own] of cases) {
      calls.length = 0;
      const out = addWasm({ inputs: { a, b }, backend }, fallback) as tf.TensorInfo;
      assert.deepEqual(calls, own ? [] : ["fallback"], what);
      if (own) {
        const t = tf.engine().makeTensorFromTensorInfo(out);
        assert.deepEqual(t.shape, big, what);
        assert.ok((await t.data()).every((v) => v === 2), what);
        t.dispose();
      } else {
        backend.disposeData(out.dataId);
      }
      tf.dispose([a, b]);
    }
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("wasm Add: the same bits as the cpu backend, large and small, with broadcasting, and no tensor left behind", async () => {
  const shapes: [number[], number[]][] = [
    [[4, 16, 16, 67], [4, 16, 16, 67]], // the own kernel (68608 elements, not a multiple of 16)
    [[3, 5], [3, 5]], // small: tfjs-backend-wasm's
    [[4, 16, 16, 67], [67]], // broadcast: tfjs-backend-wasm's
  ];
  for (const [sa, sb] of shapes) {
    const av = specials(sa.reduce((p, d) => p * d), 3);
    const bv = specials(sb.reduce((p, d) => p * d), 4);
    const run = async (backend: "cpu" | "wasm") => {
      await tf.setBackend(backend);
      try {
        if (backend === "wasm") registerWasmTrainingKernels();
        const before = tf.memory().numTensors;
        const [a, b] = [tf.tensor(av, sa), tf.tensor(bv, sb)];
        const y = tf.add(a, b);
        const data = (await y.data()) as Float32Array;
        tf.dispose([a, b, y]);
        assert.equal(tf.memory().numTensors, before, `${backend}: tensors left behind`);
        return data;
      } finally {
        await tf.setBackend("cpu");
      }
    };
    assertSameBits(await run("wasm"), await run("cpu"), `[${sa}] + [${sb}]`);
  }
});

Deno.test("wasm Add: gradients through it match cpu (the tape's sums of two gradients)", async () => {
  const xv = values(2 * 32 * 32 * 16, 5);
  const grad = async (backend: "cpu" | "wasm") => {
    await tf.setBackend(backend);
    try {
      if (backend === "wasm") registerWasmTrainingKernels();
      const x = tf.tensor4d(xv, [2, 32, 32, 16]);
      // x feeds two operations: its gradient is the tape's Add of theirs (32768 elements each).
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.add(tf.mul(t, t), tf.mul(t, 3))))(x);
      const data = (await g.data()) as Float32Array;
      tf.dispose([x, g]);
      return data;
    } finally {
      await tf.setBackend("cpu");
    }
  };
  assertSameBits(await grad("wasm"), await grad("cpu"), "d/dx sum(x^2 + 3x)");
});
