import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import {
  compareBackends,
  CONV_TABLE,
  convOutShape,
  type Pad,
  padArg,
  values,
} from "./_test_util.ts";
import { convGradGeometry } from "./_conv_geometry.ts";

for (const [xShape, k, cout, s, p] of CONV_TABLE) {
  const name = `[${xShape}] k${k} cout${cout} s${s} pad ${p}`;
  const cin = xShape[3];
  const xv = values(xShape.reduce((a, b) => a * b), 1);
  const wv = values(k * k * cin * cout, 2);
  const yShape = convOutShape(xShape, k, cout, s, p);
  const dyv = values(yShape.reduce((a, b) => a * b), 3);
  const x = () => tf.tensor4d(xv, xShape as [number, number, number, number]);
  const dy = () => tf.tensor4d(dyv, yShape as [number, number, number, number]);
  Deno.test(`Conv2DBackpropInput/Filter on wasm match cpu: ${name}`, async () => {
    const errs = await compareBackends(() => {
      const w = tf.tensor4d(wv, [k, k, cin, cout]);
      const dx = tf.conv2dTranspose(
        dy(),
        w,
        xShape as [number, number, number, number],
        s,
        padArg(p),
      );
      return [dx, backpropFilter(x(), dy(), k, cout, s, p)];
    }, { conv2dBackpropFilter: "xnnpack", conv2dBackpropInput: "xnnpack" });
    assert.ok(errs[0] <= 1e-5, `dx relative error ${errs[0]}`);
    assert.ok(errs[1] <= 1e-5, `dW relative error ${errs[1]}`);
  });
  Deno.test(`Conv2DBackpropInput on wasm, own SIMD kernel, matches cpu: ${name}`, async () => {
    const errs = await compareBackends(
      () =>
        tf.conv2dTranspose(
          dy(),
          tf.tensor4d(wv, [k, k, cin, cout]),
          xShape as [number, number, number, number],
          s,
          padArg(p),
        ),
      { conv2dBackpropInput: "own" },
    );
    assert.ok(errs[0] <= 1e-5, `dx relative error ${errs[0]}`);
  });
  Deno.test(`Conv2DBackpropFilter on wasm, own SIMD kernel, matches cpu: ${name}`, async () => {
    const errs = await compareBackends(
      () => backpropFilter(x(), dy(), k, cout, s, p),
      { conv2dBackpropFilter: "own" },
    );
    assert.ok(errs[0] <= 1e-5, `dW relative error ${errs[0]}`);
  });
}

function backpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  k: number,
  cout: number,
  s: number,
  p: Pad,
): tf.Tensor {
  return tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
    strides: [s, s],
    pad: padArg(p),
    dataFormat: "NHWC",
    filterShape: [k, k, x.shape[3], cout],
  }) as tf.Tensor;
}

const ALL_XNNPACK = {
  conv2d: "xnnpack",
  conv2dBackpropInput: "xnnpack",
  conv2dBackpropFilter: "xnnpack",
} as const;
const ALL_OWN = { conv2d: "own", conv2dBackpropInput: "own", conv2dBackpropFilter: "own" } as const;

for (const [what, kernels] of [["XNNPACK", ALL_XNNPACK], ["own", ALL_OWN]] as const) {
  Deno.test(`conv2d gradients through tf.grads on wasm (${what} kernels) match cpu (explicit padding, stride 2)`, async () => {
    const xv = values(2 * 9 * 9 * 4, 5);
    const wv = values(3 * 3 * 4 * 6, 6);
    const errs = await compareBackends(() => {
      const x = tf.tensor4d(xv, [2, 9, 9, 4]);
      const w = tf.tensor4d(wv, [3, 3, 4, 6]);
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(
          tf.square(
            tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]),
          ),
        );
      return tf.grads(f)([x, w]);
    }, kernels);
    assert.ok(Math.max(...errs) <= 1e-5, `errors ${errs}`);
  });
}

Deno.test("the conv-gradient geometry rejects NCHW and non-float32 inputs, naming the kernel", () => {
  const dy = { dataId: {}, shape: [1, 4, 4, 2], dtype: "float32" } as tf.TensorInfo;
  const ints = { ...dy, dtype: "int32" } as tf.TensorInfo;
  const attrs = { strides: 2, pad: "same" as const };
  const g = convGradGeometry("K", [1, 8, 8, 3], [3, 3, 3, 2], dy, [dy], attrs);
  assert.deepEqual(
    [g.n, g.h, g.w, g.cin, g.kh, g.kw, g.cout, g.ho, g.wo, g.sh, g.sw, g.pt, g.pl],
    [1, 8, 8, 3, 3, 3, 2, 4, 4, 2, 2, 0, 0],
  );
  assert.throws(
    () =>
      convGradGeometry("K", [1, 8, 8, 3], [3, 3, 3, 2], dy, [dy], { ...attrs, dataFormat: "NCHW" }),
    /^Error: K on wasm supports NHWC only/,
  );
  assert.throws(
    () => convGradGeometry("K", [1, 8, 8, 3], [3, 3, 3, 2], dy, [dy, ints], attrs),
    /K on wasm needs float32 inputs, got int32/,
  );
});
