import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { compareBackends, CONV_TABLE, padArg, values } from "./_test_util.ts";
import { conv2dGeometry } from "./conv2d.ts";

for (const [xShape, k, cout, s, p] of CONV_TABLE) {
  const name = `[${xShape}] k${k} cout${cout} s${s} pad ${p}`;
  const cin = xShape[3];
  const xv = values(xShape.reduce((a, b) => a * b), 1);
  const wv = values(k * k * cin * cout, 2);
  Deno.test(`Conv2D on wasm, own SIMD kernel, matches cpu: ${name}`, async () => {
    const errs = await compareBackends(
      () =>
        tf.conv2d(
          tf.tensor4d(xv, xShape as [number, number, number, number]),
          tf.tensor4d(wv, [k, k, cin, cout]),
          s,
          padArg(p),
        ),
      { conv2d: "own" },
    );
    assert.ok(errs[0] <= 1e-5, `y relative error ${errs[0]}`);
  });
}

Deno.test("Conv2D on wasm, own kernel: ResNet layer shapes (wide channels, many tiles) match cpu", async () => {
  for (const [n, hw, cin, cout, k, s] of [[3, 8, 32, 64, 3, 2], [2, 5, 64, 32, 1, 1]]) {
    const xv = values(n * hw * hw * cin, 7);
    const wv = values(k * k * cin * cout, 8);
    const errs = await compareBackends(
      () =>
        tf.conv2d(
          tf.tensor4d(xv, [n, hw, hw, cin]),
          tf.tensor4d(wv, [k, k, cin, cout]),
          s,
          k === 1 ? "valid" : "same",
        ),
      { conv2d: "own" },
    );
    assert.ok(errs[0] <= 1e-5, `[${n},${hw},${hw},${cin}] k${k} -> ${cout}: ${errs[0]}`);
  }
});

Deno.test("Conv2D on wasm, own kernel: dilated convolutions (XNNPACK) match cpu", async () => {
  const xv = values(2 * 9 * 9 * 3, 9);
  const wv = values(3 * 3 * 3 * 5, 10);
  const errs = await compareBackends(
    () =>
      tf.conv2d(
        tf.tensor4d(xv, [2, 9, 9, 3]),
        tf.tensor4d(wv, [3, 3, 3, 5]),
        1,
        "same",
        "NHWC",
        2,
      ),
    { conv2d: "own" },
  );
  assert.ok(errs[0] <= 1e-5, `y relative error ${errs[0]}`);
});

Deno.test("Conv2D on wasm, own kernel, and back to tfjs's: same results within rounding", async () => {
  const xv = values(2 * 7 * 7 * 5, 11);
  const wv = values(3 * 3 * 5 * 9, 12);
  const fn = () => tf.conv2d(tf.tensor4d(xv, [2, 7, 7, 5]), tf.tensor4d(wv, [3, 3, 5, 9]), 2, 1);
  for (const conv2d of ["own", "xnnpack", "own"] as const) {
    const errs = await compareBackends(fn, { conv2d });
    assert.ok(errs[0] <= 1e-5, `${conv2d}: ${errs[0]}`);
  }
});

Deno.test("the Conv2D geometry rejects NCHW and non-float32 inputs", () => {
  const x = { dataId: {}, shape: [1, 8, 8, 3], dtype: "float32" } as tf.TensorInfo;
  const filter = { dataId: {}, shape: [3, 3, 3, 2], dtype: "float32" } as tf.TensorInfo;
  const g = conv2dGeometry({
    inputs: { x, filter },
    backend: undefined,
    attrs: { strides: 2, pad: "same" },
  });
  assert.deepEqual(
    [g.n, g.h, g.w, g.cin, g.kh, g.kw, g.cout, g.ho, g.wo, g.sh, g.sw, g.pt, g.pl, g.pb, g.pr],
    [1, 8, 8, 3, 3, 3, 2, 4, 4, 2, 2, 0, 0, 1, 1],
  );
  assert.throws(
    () =>
      conv2dGeometry({
        inputs: { x, filter },
        backend: undefined,
        attrs: { strides: 1, pad: "same", dataFormat: "NCHW" },
      }),
    /^Error: Conv2D on wasm supports NHWC only/,
  );
  assert.throws(
    () =>
      conv2dGeometry({
        inputs: { x, filter: { ...filter, dtype: "int32" } },
        backend: undefined,
        attrs: { strides: 1, pad: "same" },
      }),
    /Conv2D on wasm needs float32 inputs, got int32/,
  );
});
