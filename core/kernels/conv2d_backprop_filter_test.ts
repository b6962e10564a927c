import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import assert from "node:assert/strict";
import { ownKernels } from "./_own_kernels.ts";
import { compareBackends, relativeError, values } from "./_test_util.ts";
import { filterGradImageGroups } from "./conv2d_backprop_filter.ts";
import { filterGradReference as reference } from "./testdata/_filter_grad_reference.ts";

// 7 images (uneven groups); 3x3 stride 2 padding 1, 5 -> 9 channels (near-equal output-channel
// blocks, 3 x 8 and scalar tails); 3x3 stride 1, 13 -> 17 channels (a 12-wide block, then 4-wide
// and scalar tails, a 1 x 12 input-channel tail); 1x1, 50 -> 17 channels (few units: input
// channels split into blocks too, 12, 18 and 20 wide, each share taking output blocks of one
// input block first). Images of fewer than 64 output pixels go several to a chunk: 30, 20 and 16
// pixels here, so every shape has chunks of 2-4 images, a last chunk cut short by a group's end,
// taps whose rows and images follow each other (one run of pixels: the 1x1, a middle tap) and
// taps whose do not (the edge taps; stride 2, 5 images of 4 x 4 output pixels, 14 -> 11 channels:
// 6 x 8 tiles, a 2 x 8 tail and scalar columns).
for (
  const [n, h, w, cin, cout, k, s, p] of [
    [7, 9, 8, 5, 9, 3, 2, 1],
    [7, 6, 5, 13, 17, 3, 1, 1],
    [7, 4, 5, 50, 17, 1, 1, 0],
    [5, 7, 7, 14, 11, 3, 2, 1],
  ]
) {
  Deno.test(`own backward-filter kernel: image groups give the same bits for any split into shares, and match float64 (${cin} -> ${cout}, stride ${s})`, () => {
    const ho = Math.floor((h + 2 * p - k) / s) + 1, wo = Math.floor((w + 2 * p - k) / s) + 1;
    const x = values(n * h * w * cin, 11);
    const dy = values(n * ho * wo * cout, 12);
    const size = k * k * cin * cout;
    const memory = new WebAssembly.Memory({ initial: 4 });
    const kernels = ownKernels({ wasmMemory: memory });
    const heap = new Float32Array(memory.buffer);
    const xo = 1024, dyo = xo + 4 * x.length, dwAt = dyo + 4 * dy.length, pwAt = dwAt + 4 * size;
    heap.set(x, xo / 4);
    heap.set(dy, dyo / 4);
    const want = reference(x, dy, [n, h, w, cin], [ho, wo, cout], k, s, p);
    for (const groups of [1, 2, 3, 4, 7]) {
      let first: Float32Array | undefined;
      for (const parts of [1, 2, 3, 7]) {
        heap.fill(NaN, dwAt / 4, pwAt / 4 + (groups - 1) * size);
        for (let part = 0; part < parts; part++) {
          kernels.conv2d_backprop_filter_groups_f32(
            xo,
            dyo,
            dwAt,
            pwAt,
            n,
            h,
            w,
            cin,
            ho,
            wo,
            cout,
            k,
            k,
            s,
            s,
            p,
            p,
            groups,
            part,
            parts,
          );
        }
        for (let part = 0; part < parts; part++) {
          kernels.conv2d_backprop_filter_sum_f32(dwAt, pwAt, size, groups, part, parts);
        }
        const got = heap.slice(dwAt / 4, dwAt / 4 + size);
        if (first === undefined) {
          first = got;
          assert.ok(
            relativeError(got, want) <= 1e-6,
            `${groups} groups: relative error ${relativeError(got, want)}`,
          );
        } else {
          assert.deepEqual(got, first, `${groups} groups, ${parts} parts`);
        }
      }
    }
  });
}

Deno.test("own backward-filter kernel: one group is the plain export, bit for bit", () => {
  const [n, h, w, cin, cout] = [3, 6, 7, 4, 13];
  const x = values(n * h * w * cin, 21);
  const dy = values(n * h * w * cout, 22);
  const size = 9 * cin * cout;
  const memory = new WebAssembly.Memory({ initial: 2 });
  const kernels = ownKernels({ wasmMemory: memory });
  const heap = new Float32Array(memory.buffer);
  const xo = 0, dyo = 4 * x.length, a = dyo + 4 * dy.length, b = a + 4 * size;
  heap.set(x, xo / 4);
  heap.set(dy, dyo / 4);
  const geometry = [n, h, w, cin, h, w, cout, 3, 3, 1, 1, 1, 1] as const;
  kernels.conv2d_backprop_filter_f32(xo, dyo, a, ...geometry, 0, 1);
  kernels.conv2d_backprop_filter_groups_f32(xo, dyo, b, 0, ...geometry, 1, 0, 1);
  kernels.conv2d_backprop_filter_sum_f32(b, 0, size, 1, 0, 1); // nothing to add
  assert.deepEqual(heap.slice(b / 4, b / 4 + size), heap.slice(a / 4, a / 4 + size));
});

Deno.test("filterGradImageGroups depends on the shapes only and keeps the partials small", () => {
  // ResNet-18 x0.25 at batch 64: the narrow layers split into 4 groups, the wide ones not.
  assert.equal(filterGradImageGroups(64, 32 * 32 * 3, 32 * 32 * 16, 3 * 3 * 3 * 16), 4);
  assert.equal(filterGradImageGroups(64, 16 * 16 * 32, 8 * 8 * 64, 3 * 3 * 32 * 64), 2);
  assert.equal(filterGradImageGroups(64, 8 * 8 * 64, 8 * 8 * 64, 3 * 3 * 64 * 64), 1);
  // Never more groups than images or than FILTER_GRAD_MAX_GROUPS.
  assert.equal(filterGradImageGroups(1, 1000, 1000, 1), 1);
  assert.equal(filterGradImageGroups(3, 1000, 1000, 1), 2);
  assert.equal(filterGradImageGroups(1000, 1000, 1000, 1), 4);
  assert.equal(filterGradImageGroups(0, 1000, 1000, 1), 1);
  for (const [n, xi, dyi, dw] of [[64, 3072, 16384, 432], [16, 300, 200, 50], [5, 288, 432, 54]]) {
    const g = filterGradImageGroups(n, xi, dyi, dw);
    assert.ok((g - 1) * dw * 16 <= n * (xi + dyi), `${g} groups of ${dw} floats`);
  }
});

for (const [xShape, cout] of [[[16, 6, 6, 3], 4], [[5, 12, 12, 2], 3]] as const) {
  Deno.test(`Conv2DBackpropFilter on wasm, own kernel with image groups, matches cpu: [${xShape}] k3 cout${cout}`, async () => {
    const [n, h, w, cin] = xShape;
    assert.ok(filterGradImageGroups(n, h * w * cin, h * w * cout, 9 * cin * cout) > 1);
    const xv = values(n * h * w * cin, 31);
    const dyv = values(n * h * w * cout, 32);
    const errs = await compareBackends(
      () =>
        tf.engine().runKernel("Conv2DBackpropFilter", {
          x: tf.tensor4d(xv, [...xShape]),
          dy: tf.tensor4d(dyv, [n, h, w, cout]),
        }, {
          strides: [1, 1],
          pad: "same",
          dataFormat: "NHWC",
          filterShape: [3, 3, cin, cout],
        }) as tf.Tensor,
      { conv2dBackpropFilter: "own" },
    );
    assert.ok(errs[0] <= 1e-5, `dW relative error ${errs[0]}`);
  });
}
