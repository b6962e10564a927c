import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { selectBackend } from "../backend.ts";
import { runWithoutPermission } from "./_test_util.ts";
import { assertNoLeak } from "../testing.ts";
import { BatchNorm } from "../batch_norm.ts";
import { disposeModule } from "../module.ts";
import { Sgd } from "../sgd.ts";
import type { KernelPool } from "./_pool.ts";
import { callOwnKernel, ownKernelBytes, ownKernelPool, ownKernels } from "./_own_kernels.ts";
import { SHARES_PER_THREAD } from "./_pool.ts";
import { compareBackends, values } from "./_test_util.ts";
import { reductionBlockRows } from "./batch_norm.ts";
import { conv2dBackpropFilterOwnWasm, conv2dBackpropFilterWasm } from "./conv2d_backprop_filter.ts";
import { conv2dOwnWasm } from "./conv2d.ts";
import { conv2dBackpropInputOwnWasm, conv2dBackpropInputWasm } from "./conv2d_backprop_input.ts";
import { registerWasmTrainingKernels, wasmFilterKernel, wasmKernelChoices } from "./register.ts";

Deno.test("the kernel binaries import one memory and export the convolution, batch-norm, optimizer and add kernels", () => {
  for (const [shared, relaxed] of [[false, false], [true, false], [false, true], [true, true]]) {
    const module = new WebAssembly.Module(ownKernelBytes(shared, relaxed));
    assert.deepEqual(WebAssembly.Module.imports(module), [
      { module: "env", name: "memory", kind: "memory" },
    ]);
    assert.deepEqual(WebAssembly.Module.exports(module), [
      { name: "conv2d_backprop_filter_f32", kind: "function" },
      { name: "conv2d_backprop_filter_groups_f32", kind: "function" },
      { name: "conv2d_backprop_filter_sum_f32", kind: "function" },
      { name: "conv2d_pack_filter_f32", kind: "function" },
      { name: "conv2d_rects_f32", kind: "function" },
      { name: "bn_stats_f32", kind: "function" },
      { name: "bn_apply_f32", kind: "function" },
      { name: "bn_grad_sums_f32", kind: "function" },
      { name: "bn_grad_dx_f32", kind: "function" },
      { name: "sgd_step_f32", kind: "function" },
      { name: "adamw_step_f32", kind: "function" },
      { name: "add_f32", kind: "function" },
    ]);
  }
  // A plain memory does not satisfy the shared binary's import, nor the reverse.
  const plain = new WebAssembly.Memory({ initial: 1 });
  assert.throws(
    () =>
      new WebAssembly.Instance(new WebAssembly.Module(ownKernelBytes(true)), {
        env: { memory: plain },
      }),
    WebAssembly.LinkError,
  );
});

Deno.test("a call's shares shrink: share k of p covers n (1 - (1 - k/p)^2) up to the next, all rows once", () => {
  // bn_apply_f32 splits its rows with the kernels' share_begin/share_end: y = x where computed.
  const memory = new WebAssembly.Memory({ initial: 2 });
  const k = new WebAssembly.Instance(new WebAssembly.Module(ownKernelBytes(false)), {
    env: { memory },
  }).exports as unknown as Record<string, (...a: number[]) => void>;
  const [rows, c, parts] = [1000, 4, 16];
  const [x, y, css] = [0, rows * c, 2 * rows * c].map((floats) => floats * 4);
  const f = new Float32Array(memory.buffer);
  f.fill(1, 0, rows * c); // x
  f.fill(0, css / 4, css / 4 + 3 * c).fill(1, css / 4 + c, css / 4 + 2 * c); // center 0, scale 1, shift 0
  const begin = (part: number) => Math.floor((rows * part * (2 * parts - part)) / (parts * parts));
  const sizes: number[] = [];
  for (let part = 0; part < parts; part++) {
    f.fill(0, y / 4, y / 4 + rows * c);
    k.bn_apply_f32(x, 0, y, css, rows, c, 0, part, parts);
    const written: number[] = [];
    for (let r = 0; r < rows; r++) if (f[y / 4 + r * c] === 1) written.push(r);
    const [b, e] = [begin(part), begin(part + 1)];
    assert.deepEqual(written, Array.from({ length: e - b }, (_, i) => b + i), `share ${part}`);
    sizes.push(e - b);
  }
  assert.equal(sizes.reduce((a, b) => a + b), rows, "every row in one share");
  assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a), "sizes never grow");
  assert.ok(sizes[0] > (1.8 * rows) / parts && sizes[parts - 1] < (0.1 * rows) / parts);
});

Deno.test("the kernels load from the module graph's bytes with no permission at all", async () => {
  const text = await runWithoutPermission("own_kernels_no_permission.ts");
  const m = text.match(/^ok (\S+)$/);
  assert.ok(m, text);
  assert.ok(Number(m[1]) <= 1e-5, `relative error ${m[1]}`);
});

Deno.test("registerWasmTrainingKernels switches Conv2DBackpropFilter between XNNPACK and our own", async () => {
  await tf.setBackend("wasm");
  try {
    const fn = () => tf.getKernel("Conv2DBackpropFilter", "wasm")!.kernelFunc;
    registerWasmTrainingKernels({ conv2dBackpropFilter: "own" });
    assert.equal(fn(), conv2dBackpropFilterOwnWasm);
    assert.equal(wasmFilterKernel(), "own");
    registerWasmTrainingKernels(); // keeps the choice
    assert.equal(fn(), conv2dBackpropFilterOwnWasm);
    registerWasmTrainingKernels({ conv2dBackpropFilter: "xnnpack" });
    assert.equal(fn(), conv2dBackpropFilterWasm);
    assert.equal(wasmFilterKernel(), "xnnpack");
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => registerWasmTrainingKernels({ conv2dBackpropFilter: "fast" as any }),
      /conv2dBackpropFilter must be "xnnpack" or "own", got "fast"/,
    );
    assert.equal(fn(), conv2dBackpropFilterWasm);
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("ownKernels runs on the wasm backend's own memory, once per memory", async () => {
  await tf.setBackend("wasm");
  try {
    const wasm = (tf.backend() as unknown as { wasm: object }).wasm;
    assert.equal(ownKernels(wasm), ownKernels(wasm));
    assert.throws(
      () => ownKernels({}),
      /exposes no WebAssembly.Memory .* supports @tensorflow\/tfjs-backend-wasm 4.22.0/,
    );
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("registerWasmTrainingKernels switches Conv2D and Conv2DBackpropInput, and restores tfjs's Conv2D", async () => {
  await tf.setBackend("wasm");
  try {
    const fn = (name: string) => tf.getKernel(name, "wasm")!.kernelFunc;
    registerWasmTrainingKernels({
      conv2d: "xnnpack",
      conv2dBackpropInput: "xnnpack",
      conv2dBackpropFilter: "xnnpack",
    });
    const tfjsConv2D = fn("Conv2D");
    assert.notEqual(tfjsConv2D, conv2dOwnWasm);
    assert.equal(fn("Conv2DBackpropInput"), conv2dBackpropInputWasm);
    registerWasmTrainingKernels({ conv2d: "own", conv2dBackpropInput: "own" });
    assert.equal(fn("Conv2D"), conv2dOwnWasm);
    assert.equal(fn("Conv2DBackpropInput"), conv2dBackpropInputOwnWasm);
    assert.equal(fn("Conv2DBackpropFilter"), conv2dBackpropFilterWasm);
    assert.deepEqual(wasmKernelChoices(), {
      conv2d: "own",
      conv2dBackpropInput: "own",
      conv2dBackpropFilter: "xnnpack",
    });
    registerWasmTrainingKernels({ conv2dBackpropFilter: "own" }); // the others stay
    assert.equal(fn("Conv2D"), conv2dOwnWasm);
    assert.equal(wasmFilterKernel(), "own");
    registerWasmTrainingKernels({ conv2d: "xnnpack", conv2dBackpropInput: "xnnpack" });
    assert.equal(fn("Conv2D"), tfjsConv2D);
    assert.equal(fn("Conv2DBackpropInput"), conv2dBackpropInputWasm);
    // tfjs's Conv2D, registered again, still runs.
    const y = tf.tidy(() =>
      tf.conv2d(
        tf.ones([1, 3, 3, 1]) as tf.Tensor4D,
        tf.ones([2, 2, 1, 1]) as tf.Tensor4D,
        1,
        "valid",
      )
    );
    assert.deepEqual(Array.from(await y.data()), [4, 4, 4, 4]);
    y.dispose();
  } finally {
    registerWasmTrainingKernels({
      conv2d: "xnnpack",
      conv2dBackpropInput: "xnnpack",
      conv2dBackpropFilter: "xnnpack",
    });
    await tf.setBackend("cpu");
  }
});

const ALL_OWN = {
  conv2d: "own",
  conv2dBackpropInput: "own",
  conv2dBackpropFilter: "own",
} as const;
const ALL_XNNPACK = {
  conv2d: "xnnpack",
  conv2dBackpropInput: "xnnpack",
  conv2dBackpropFilter: "xnnpack",
} as const;

/** A small conv net: 3x3 same, 3x3 stride 2 (explicit padding), 1x1, 7x7 valid; its loss. */
function smallNetGrads(): tf.Tensor[] {
  const x = tf.tensor4d(values(3 * 13 * 13 * 5, 21), [3, 13, 13, 5]);
  const w1 = tf.tensor4d(values(3 * 3 * 5 * 20, 22), [3, 3, 5, 20]);
  const w2 = tf.tensor4d(values(3 * 3 * 20 * 24, 23), [3, 3, 20, 24]);
  const w3 = tf.tensor4d(values(1 * 1 * 24 * 12, 24), [1, 1, 24, 12]);
  const w4 = tf.tensor4d(values(7 * 7 * 12 * 9, 25), [7, 7, 12, 9]);
  const loss = (a: tf.Tensor, b1: tf.Tensor, b2: tf.Tensor, b3: tf.Tensor, b4: tf.Tensor) => {
    let h = tf.relu(tf.conv2d(a as tf.Tensor4D, b1 as tf.Tensor4D, 1, "same"));
    h = tf.relu(tf.conv2d(h, b2 as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]));
    h = tf.conv2d(h, b3 as tf.Tensor4D, 1, "valid");
    h = tf.conv2d(h, b4 as tf.Tensor4D, 1, "valid");
    return tf.sum(tf.square(h));
  };
  return tf.grads(loss)([x, w1, w2, w3, w4]);
}

Deno.test("on threaded wasm the own kernels run on a pool of the backend's thread count; a conv net's gradients on all three own conv kernels match cpu", async () => {
  const pools: KernelPool[] = [];
  try {
    for (const threads of [2, 3]) {
      const choice = await selectBackend({ backend: "wasm", threads, env: {} });
      assert.equal(choice.threads, threads);
      // Started with the backend, not at the first kernel call.
      const started = ownKernelPool((tf.backend() as unknown as { wasm: object }).wasm);
      assert.equal(started?.readyWorkers, threads - 1);
      const errs = await compareBackends(smallNetGrads, ALL_OWN);
      assert.ok(Math.max(...errs) <= 1e-5, `${threads} threads: relative errors ${errs}`);
      await tf.setBackend("wasm");
      const wasm = (tf.backend() as unknown as { wasm: object }).wasm;
      const pool = ownKernelPool(wasm);
      assert.ok(pool !== undefined, "no pool on the threaded backend");
      assert.equal(pool.threads, threads);
      pools.push(pool);
      await assertNoLeak(() => tf.tidy(() => smallNetGrads().map((g) => g.dataSync())), {
        label: `${threads}-thread gradients`,
      });
    }
    // Re-initialising the backend with another thread count tore the first one down with its pool.
    assert.equal(pools[0].disposed, true);
    assert.equal(pools[1].disposed, false);
  } finally {
    registerWasmTrainingKernels(ALL_XNNPACK);
    await tf.setBackend("cpu");
  }
});

Deno.test("registerWasmTrainingKernels rejects bad options, naming the option, and keeps the choices", () => {
  const before = wasmKernelChoices();
  for (const key of ["conv2d", "conv2dBackpropInput", "conv2dBackpropFilter"]) {
    for (const bad of ["fast", "OWN", 1, null]) {
      assert.throws(
        () => registerWasmTrainingKernels({ [key]: bad } as never),
        new RegExp(
          `^RangeError: registerWasmTrainingKernels: ${key} must be "xnnpack" or "own", got ${
            JSON.stringify(bad)
          }$`,
        ),
      );
    }
  }
  assert.throws(
    () => registerWasmTrainingKernels({ conv2dBackpropWeights: "own" } as never),
    /unknown option "conv2dBackpropWeights"; the options are conv2d, conv2dBackpropInput, conv2dBackpropFilter/,
  );
  for (const bad of [null, "own", ["own"]]) {
    assert.throws(
      () => registerWasmTrainingKernels(bad as never),
      /^TypeError: registerWasmTrainingKernels: options must be an object/,
    );
  }
  // A rejected call changes nothing, even when its other keys were valid.
  assert.throws(() =>
    registerWasmTrainingKernels({ conv2d: "own", conv2dBackpropInput: "x" } as never)
  );
  assert.deepEqual(wasmKernelChoices(), before);
});

Deno.test("a trap in an own kernel on threaded wasm is an Error naming it, and the kernels still work", async () => {
  await selectBackend({ backend: "wasm", threads: 2, env: {} });
  try {
    const wasm = (tf.backend() as unknown as { wasm: { wasmMemory: WebAssembly.Memory } }).wasm;
    const dw = tf.zeros([3, 3, 8, 16]);
    const x = tf.zeros([1, 4, 4, 8]);
    const backend = tf.backend() as unknown as {
      dataIdMap: { get(id: unknown): { memoryOffset: number } };
    };
    const at = (t: tf.Tensor) => backend.dataIdMap.get(t.dataId).memoryOffset;
    // dy lies past the end of the heap: every share reads out of bounds (dw, a real tensor, is
    // only zeroed).
    const outside = wasm.wasmMemory.buffer.byteLength + 4096;
    assert.throws(
      () =>
        callOwnKernel(wasm, "conv2d_backprop_filter_f32", [
          at(x),
          outside,
          at(dw),
          ...[1, 4, 4, 8, 4, 4, 16, 3, 3, 1, 1, 1, 1] as const,
        ]),
      new RegExp(
        "^Error: Own WASM kernel conv2d_backprop_filter_f32 failed in share \\d+ of " +
          `${2 * SHARES_PER_THREAD} .*RuntimeError: memory access out of bounds`,
      ),
    );
    tf.dispose([dw, x]);
    const errs = await compareBackends(smallNetGrads, ALL_OWN);
    assert.ok(Math.max(...errs) <= 1e-5, `relative errors ${errs}`);
  } finally {
    registerWasmTrainingKernels(ALL_XNNPACK);
    await tf.setBackend("cpu");
  }
});

Deno.test("the own kernels give the same bits on 1, 2 and 3 threads (convolutions, fused batch norm, SGD step)", async () => {
  // 4 x 22 x 22 = 1936 rows of 20 channels: the batch norm's reductions run over 5 row blocks
  // (reductionBlockRows(20) = 416, the last block shorter), split differently on 2 and 3 threads.
  assert.equal(reductionBlockRows(20), 416);
  const xv = values(4 * 22 * 22 * 12, 31);
  const w1v = values(3 * 3 * 12 * 20, 32);
  const wrv = values(12 * 20, 33);
  const w2v = values(3 * 3 * 20 * 16, 34);
  const bits: Float32Array[][] = [];
  try {
    for (const threads of [1, 2, 3]) {
      await selectBackend({ backend: "wasm", threads, env: {} });
      registerWasmTrainingKernels(ALL_OWN);
      const bn = new BatchNorm({ channels: 20 });
      try {
        const grads = tf.tidy(() => {
          const loss = (x: tf.Tensor, w1: tf.Tensor, wr: tf.Tensor, w2: tf.Tensor) => {
            const h = tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, "same");
            const r = tf.conv2d(x as tf.Tensor4D, wr as tf.Tensor4D, 1, "valid");
            const b = bn.apply(h, { training: true, residual: r, relu: true }) as tf.Tensor4D;
            return tf.sum(tf.square(tf.conv2d(b, w2 as tf.Tensor4D, 2, "same")));
          };
          return tf.grads(loss)([
            tf.tensor4d(xv, [4, 22, 22, 12]),
            tf.tensor4d(w1v, [3, 3, 12, 20]),
            tf.tensor4d(wrv, [1, 1, 12, 20]),
            tf.tensor4d(w2v, [3, 3, 20, 16]),
          ]);
        });
        // One SGD step (its kernel takes float arguments) on the weights, from those gradients.
        const weights = grads.slice(1).map((g, i) => tf.variable(tf.onesLike(g), true, `w${i}`));
        const sgd = new Sgd(weights.map((w) => [w.name, w]), { momentum: 0.9, weightDecay: 0.01 });
        sgd.applyGradients(new Map(weights.map((w, i) => [w.name, grads[i + 1]])), 0.05);
        bits.push([...grads, ...weights].map((g) => g.dataSync() as Float32Array));
        sgd.dispose();
        tf.dispose([...grads, ...weights]);
      } finally {
        disposeModule(bn);
      }
    }
    assertSameBitsAsOneThread(bits);
  } finally {
    registerWasmTrainingKernels(ALL_XNNPACK);
    await tf.setBackend("cpu");
  }
});

Deno.test("1x1 stride-1 convolutions (the lean path and its partial last tile) give the same bits on 1, 2 and 3 threads", async () => {
  // 3 x 7 x 5 = 105 pixels: 17 full tiles of 6 and a partial one; 128 output channels (16 blocks,
  // the path that touches the next tile's input) and 24 (3 blocks) for the input gradient.
  const xv = values(3 * 7 * 5 * 24, 41);
  const wv = values(24 * 128, 42);
  const dyv = values(3 * 7 * 5 * 128, 43);
  const bits: Float32Array[][] = [];
  try {
    for (const threads of [1, 2, 3]) {
      await selectBackend({ backend: "wasm", threads, env: {} });
      registerWasmTrainingKernels(ALL_OWN);
      const outs = tf.tidy(() => {
        const w = tf.tensor4d(wv, [1, 1, 24, 128]);
        return [
          tf.conv2d(tf.tensor4d(xv, [3, 7, 5, 24]), w, 1, "valid"),
          tf.conv2dTranspose(tf.tensor4d(dyv, [3, 7, 5, 128]), w, [3, 7, 5, 24], 1, "valid"),
        ];
      });
      bits.push(outs.map((t) => t.dataSync() as Float32Array));
      tf.dispose(outs);
    }
    assertSameBitsAsOneThread(bits);
  } finally {
    registerWasmTrainingKernels(ALL_XNNPACK);
    await tf.setBackend("cpu");
  }
});

/** Asserts that every run's outputs (`bits[t]`: on t + 1 threads) have the bits of the first's. */
function assertSameBitsAsOneThread(bits: readonly Float32Array[][]): void {
  for (let t = 1; t < bits.length; t++) {
    bits[t].forEach((g, i) => {
      const bad = g.findIndex((v, j) => !Object.is(v, bits[0][i][j]));
      assert.equal(bad, -1, `${t + 1} threads, output ${i}: element ${bad} differs from 1 thread`);
    });
  }
}
