/**
 * PyTorch interop against an independent reference: the fixture is a state_dict in PyTorch
 * layout generated from a deterministic generator following kuangliu's / torchvision's module
 * trees, and the expected logits come from a plain-JS NCHW forward pass with PyTorch's
 * conv / batch-norm / pooling arithmetic (float64), sharing no code with the model.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import {
  decodeSafetensors,
  disposeModule,
  encodeSafetensors,
  Rng,
  type SafetensorsTensor,
  toFloat32,
} from "@mfi/core";
import { buildResNet } from "./resnet.ts";
import {
  exportTorchStateDict,
  importTorchStateDict,
  nameToTorchKey,
  torchKeyToName,
} from "./torch.ts";
import { exportStateDict, loadStateDict } from "./state_dict.ts";

await tf.setBackend("cpu");

// ---------------------------------------------------------------------------------------------
// The PyTorch side: module tree, deterministic state_dict, reference forward pass.

interface TorchSpec {
  block: "basic" | "bottleneck";
  depths: number[];
  planes: number[]; // already scaled
  stem: number;
  classes: number;
  naming: "kuangliu" | "torchvision";
}

type StateDict = Map<string, SafetensorsTensor>;

/** kuangliu/pytorch-cifar models/resnet.py (or torchvision naming), as a state_dict. */
function torchStateDict(spec: TorchSpec, seed: number): StateDict {
  const rng = new Rng(seed);
  const sd: StateDict = new Map();
  const f32 = (shape: number[], data: Float32Array) => ({ dtype: "F32" as const, shape, data });
  const conv = (key: string, o: number, i: number, k: number) =>
    sd.set(key, f32([o, i, k, k], rng.normalArray(o * i * k * k, Math.sqrt(2 / (o * k * k)))));
  const bn = (key: string, c: number) => {
    sd.set(`${key}.weight`, f32([c], rng.uniformArray(c, 0.5, 1.5)));
    sd.set(`${key}.bias`, f32([c], rng.normalArray(c, 0.2)));
    sd.set(`${key}.running_mean`, f32([c], rng.normalArray(c, 0.3)));
    sd.set(`${key}.running_var`, f32([c], rng.uniformArray(c, 0.5, 2)));
    sd.set(`${key}.num_batches_tracked`, {
      dtype: "I64",
      shape: [],
      data: new BigInt64Array([100n]),
    });
  };
  const exp = spec.block === "bottleneck" ? 4 : 1;
  const sc = spec.naming === "kuangliu" ? "shortcut" : "downsample";
  conv("conv1.weight", spec.stem, 3, 3);
  bn("bn1", spec.stem);
  let inPlanes = spec.stem;
  spec.depths.forEach((depth, s) => {
    const planes = spec.planes[s];
    for (let j = 0; j < depth; j++) {
      const p = `layer${s + 1}.${j}`;
      const stride = j === 0 && s > 0 ? 2 : 1;
      if (spec.block === "basic") {
        conv(`${p}.conv1.weight`, planes, inPlanes, 3);
        bn(`${p}.bn1`, planes);
        conv(`${p}.conv2.weight`, planes, planes, 3);
        bn(`${p}.bn2`, planes);
      } else {
        conv(`${p}.conv1.weight`, planes, inPlanes, 1);
        bn(`${p}.bn1`, planes);
        conv(`${p}.conv2.weight`, planes, planes, 3);
        bn(`${p}.bn2`, planes);
        conv(`${p}.conv3.weight`, planes * exp, planes, 1);
        bn(`${p}.bn3`, planes * exp);
      }
      if (stride !== 1 || inPlanes !== planes * exp) {
        conv(`${p}.${sc}.0.weight`, planes * exp, inPlanes, 1);
        bn(`${p}.${sc}.1`, planes * exp);
      }
      inPlanes = planes * exp;
    }
  });
  const fc = spec.naming === "kuangliu" ? "linear" : "fc";
  const bound = 1 / Math.sqrt(inPlanes);
  sd.set(
    `${fc}.weight`,
    f32([spec.classes, inPlanes], rng.uniformArray(spec.classes * inPlanes, -bound, bound)),
  );
  sd.set(`${fc}.bias`, f32([spec.classes], rng.uniformArray(spec.classes, -bound, bound)));
  return sd;
}

/** An NCHW activation in float64. */
interface Act {
  n: number;
  c: number;
  h: number;
  w: number;
  d: Float64Array;
}

const at = (sd: StateDict, key: string): Float32Array => sd.get(key)!.data as Float32Array;

/** F.conv2d(x, weight, stride, padding = k // 2), weight OIHW, no bias. */
function conv2d(x: Act, wt: SafetensorsTensor, stride: number): Act {
  const [o, i, k] = wt.shape;
  const w = wt.data as Float32Array;
  const pad = Math.floor(k / 2);
  const h = Math.floor((x.h + 2 * pad - k) / stride) + 1;
  const ww = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  const d = new Float64Array(x.n * o * h * ww);
  for (let b = 0; b < x.n; b++) {
    for (let oc = 0; oc < o; oc++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < ww; xx++) {
          let sum = 0;
          for (let ic = 0; ic < i; ic++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = y * stride + ky - pad;
              if (iy < 0 || iy >= x.h) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = xx * stride + kx - pad;
                if (ix < 0 || ix >= x.w) continue;
                sum += x.d[((b * x.c + ic) * x.h + iy) * x.w + ix] *
                  w[((oc * i + ic) * k + ky) * k + kx];
              }
            }
          }
          d[((b * o + oc) * h + y) * ww + xx] = sum;
        }
      }
    }
  }
  return { n: x.n, c: o, h, w: ww, d };
}

/** nn.BatchNorm2d: eval uses running stats, train uses the batch's mean and biased variance. */
function batchNorm(x: Act, sd: StateDict, key: string, training: boolean): Act {
  const gamma = at(sd, `${key}.weight`);
  const beta = at(sd, `${key}.bias`);
  const d = new Float64Array(x.d.length);
  const hw = x.h * x.w;
  for (let c = 0; c < x.c; c++) {
    let mean = at(sd, `${key}.running_mean`)[c];
    let variance = at(sd, `${key}.running_var`)[c];
    if (training) {
      let s = 0;
      let s2 = 0;
      for (let b = 0; b < x.n; b++) {
        for (let p = 0; p < hw; p++) s += x.d[(b * x.c + c) * hw + p];
      }
      mean = s / (x.n * hw);
      for (let b = 0; b < x.n; b++) {
        for (let p = 0; p < hw; p++) s2 += (x.d[(b * x.c + c) * hw + p] - mean) ** 2;
      }
      variance = s2 / (x.n * hw);
    }
    const inv = 1 / Math.sqrt(variance + 1e-5);
    for (let b = 0; b < x.n; b++) {
      for (let p = 0; p < hw; p++) {
        const idx = (b * x.c + c) * hw + p;
        d[idx] = (x.d[idx] - mean) * inv * gamma[c] + beta[c];
      }
    }
  }
  return { ...x, d };
}

const relu = (x: Act): Act => ({ ...x, d: x.d.map((v) => Math.max(0, v)) });
const add = (a: Act, b: Act): Act => ({ ...a, d: a.d.map((v, i) => v + b.d[i]) });

/** ResNet.forward of kuangliu: stem, layers, F.avg_pool2d(out, 4) on 4x4 maps, view, linear. */
function referenceLogits(spec: TorchSpec, sd: StateDict, x: Act, training: boolean): Float64Array {
  const sc = spec.naming === "kuangliu" ? "shortcut" : "downsample";
  let out = relu(batchNorm(conv2d(x, sd.get("conv1.weight")!, 1), sd, "bn1", training));
  spec.depths.forEach((depth, s) => {
    for (let j = 0; j < depth; j++) {
      const p = `layer${s + 1}.${j}`;
      const stride = j === 0 && s > 0 ? 2 : 1;
      const input = out;
      let y = relu(
        batchNorm(
          conv2d(input, sd.get(`${p}.conv1.weight`)!, spec.block === "basic" ? stride : 1),
          sd,
          `${p}.bn1`,
          training,
        ),
      );
      if (spec.block === "basic") {
        y = batchNorm(conv2d(y, sd.get(`${p}.conv2.weight`)!, 1), sd, `${p}.bn2`, training);
      } else {
        y = relu(
          batchNorm(conv2d(y, sd.get(`${p}.conv2.weight`)!, stride), sd, `${p}.bn2`, training),
        );
        y = batchNorm(conv2d(y, sd.get(`${p}.conv3.weight`)!, 1), sd, `${p}.bn3`, training);
      }
      const short = sd.has(`${p}.${sc}.0.weight`)
        ? batchNorm(
          conv2d(input, sd.get(`${p}.${sc}.0.weight`)!, stride),
          sd,
          `${p}.${sc}.1`,
          training,
        )
        : input;
      out = relu(add(y, short));
    }
  });
  const fc = spec.naming === "kuangliu" ? "linear" : "fc";
  const w = at(sd, `${fc}.weight`);
  const bias = at(sd, `${fc}.bias`);
  const hw = out.h * out.w;
  const logits = new Float64Array(out.n * spec.classes);
  for (let b = 0; b < out.n; b++) {
    for (let k = 0; k < spec.classes; k++) {
      let sum = bias[k];
      for (let c = 0; c < out.c; c++) {
        let pooled = 0;
        for (let p = 0; p < hw; p++) pooled += out.d[(b * out.c + c) * hw + p];
        sum += w[k * out.c + c] * (pooled / hw);
      }
      logits[b * spec.classes + k] = sum;
    }
  }
  return logits;
}

function nchwImages(n: number, size: number, seed: number): Act {
  const rng = new Rng(seed);
  return { n, c: 3, h: size, w: size, d: Float64Array.from(rng.normalArray(n * 3 * size * size)) };
}

/** NCHW float64 -> NHWC tensor. */
function toNhwc(x: Act): tf.Tensor4D {
  const out = new Float32Array(x.d.length);
  for (let b = 0; b < x.n; b++) {
    for (let c = 0; c < x.c; c++) {
      for (let p = 0; p < x.h * x.w; p++) {
        out[(b * x.h * x.w + p) * x.c + c] = x.d[(b * x.c + c) * x.h * x.w + p];
      }
    }
  }
  return tf.tensor4d(out, [x.n, x.h, x.w, x.c]);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length);
  const scale = Math.max(...Array.from(expected, Math.abs));
  assert.ok(scale > 0.1, `${what}: reference logits are degenerate (max ${scale})`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(
      err <= 1e-4 * scale,
      `${what}: logit ${i} is ${actual[i]}, PyTorch arithmetic gives ${expected[i]}`,
    );
  }
}

const R18: TorchSpec = {
  block: "basic",
  depths: [2, 2, 2, 2],
  planes: [4, 8, 16, 32],
  stem: 4,
  classes: 10,
  naming: "kuangliu",
};
const R50: TorchSpec = {
  block: "bottleneck",
  depths: [3, 4, 6, 3],
  planes: [4, 8, 16, 32],
  stem: 4,
  classes: 100,
  naming: "torchvision",
};

// ---------------------------------------------------------------------------------------------

for (
  const [arch, spec] of [["resnet18", R18], ["resnet50", R50]] as const
) {
  Deno.test(`importTorchStateDict: ${arch} (${spec.naming} names) matches PyTorch arithmetic`, () => {
    const sd = torchStateDict(spec, 11);
    const bytes = encodeSafetensors(sd);
    const model = buildResNet({ arch, classes: spec.classes, width: 1 / 16, seed: 0 });
    const report = importTorchStateDict(model, bytes);
    assert.equal(report.loaded, model.namedVariables().length);
    assert.ok(report.skipped.every((k) => k.endsWith("num_batches_tracked")));
    const images = nchwImages(2, 32, 5);
    const x = toNhwc(images);
    for (const training of [false, true]) {
      const expected = referenceLogits(spec, sd, images, training);
      const y = tf.tidy(() => model.apply(x, { training }));
      assertClose(y.dataSync(), expected, `${arch} training=${training}`);
      y.dispose();
    }
    x.dispose();
    disposeModule(model);
  });
}

Deno.test("importTorchStateDict accepts DataParallel's module. prefix", () => {
  const sd = torchStateDict(R18, 3);
  const prefixed = new Map([...sd].map(([k, v]) => [`module.${k}`, v]));
  const a = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 0 });
  const b = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 1 });
  importTorchStateDict(a, encodeSafetensors(sd));
  importTorchStateDict(b, encodeSafetensors(prefixed));
  a.namedVariables().forEach(([n, v], i) =>
    assert.deepEqual(v.dataSync(), b.namedVariables()[i][1].dataSync(), n)
  );
  disposeModule(a);
  disposeModule(b);
});

Deno.test("importTorchStateDict: clear errors, and the model is untouched on error", () => {
  const sd = torchStateDict(R18, 1);
  const model = buildResNet({ arch: "resnet18", classes: 10, width: 1 / 16, seed: 0 });
  const before = model.namedVariables().map(([, v]) => v.dataSync().slice());
  const without = (key: string) => new Map([...sd].filter(([k]) => k !== key));
  const withExtra = (key: string, t: SafetensorsTensor) => new Map([...sd, [key, t]]);
  const t1: SafetensorsTensor = { dtype: "F32", shape: [1], data: new Float32Array(1) };
  assert.throws(
    () =>
      importTorchStateDict(model, encodeSafetensors(without("layer2.0.shortcut.1.running_var"))),
    /no key for 1 variable\(s\) "stages\.1\.blocks\.0\.shortcut\.bn\.running_var" \(PyTorch "layer2\.0\.shortcut\.1\.running_var"\)/,
  );
  assert.throws(
    () => importTorchStateDict(model, encodeSafetensors(withExtra("layer5.0.conv1.weight", t1))),
    /unexpected key\(s\) "layer5\.0\.conv1\.weight"/,
  );
  assert.throws(
    () => importTorchStateDict(model, encodeSafetensors(withExtra("avgpool.scale", t1))),
    /unexpected key\(s\) "avgpool\.scale".*allowUnexpected/,
  );
  assert.throws(
    () =>
      importTorchStateDict(model, encodeSafetensors(withExtra("fc.bias", sd.get("linear.bias")!))),
    /"fc\.bias" and "linear\.bias" both map to "head\.fc\.bias"|"linear\.bias" and "fc\.bias" both map/,
  );
  const wrong = new Map(sd);
  wrong.set("layer3.1.conv2.weight", {
    dtype: "F32",
    shape: [16, 16, 1, 1],
    data: new Float32Array(256),
  });
  assert.throws(
    () => importTorchStateDict(model, encodeSafetensors(wrong)),
    /"layer3\.1\.conv2\.weight" has shape \[16,16,1,1\].*"stages\.2\.blocks\.1\.conv2\.weight" is \[3,3,16,16\]/,
  );
  const c100 = buildResNet({ arch: "resnet18", classes: 100, width: 1 / 16, seed: 0 });
  assert.throws(
    () => importTorchStateDict(c100, encodeSafetensors(sd)),
    /"linear\.weight" has shape \[10,32\]/,
  );
  assert.throws(
    () => importTorchStateDict(model, new Uint8Array(3)),
    /Cannot read PyTorch state_dict/,
  );
  model.namedVariables().forEach(([n, v], i) =>
    assert.deepEqual(v.dataSync(), before[i], `${n} changed`)
  );
  const report = importTorchStateDict(model, encodeSafetensors(withExtra("avgpool.scale", t1)), {
    allowUnexpected: true,
  });
  assert.ok(report.skipped.includes("avgpool.scale"));
  disposeModule(model);
  disposeModule(c100);
});

Deno.test("exportTorchStateDict round-trips the PyTorch file exactly, in both namings", async () => {
  for (const [arch, spec] of [["resnet18", R18], ["resnet50", R50]] as const) {
    const sd = torchStateDict(spec, 2);
    const model = buildResNet({ arch, classes: spec.classes, width: 1 / 16, seed: 0 });
    importTorchStateDict(model, encodeSafetensors(sd));
    const back = decodeSafetensors(await exportTorchStateDict(model, { naming: spec.naming }));
    assert.deepEqual([...back.tensors.keys()].sort(), [...sd.keys()].sort());
    for (const [key, t] of sd) {
      const u = back.tensors.get(key)!;
      assert.deepEqual(u.shape, t.shape, key);
      if (t.dtype === "F32") assert.deepEqual(toFloat32(u), t.data, key);
    }
    disposeModule(model);
  }
});

Deno.test("torch key mapping covers both namings and rejects foreign names", () => {
  const cases: Array<[string, string]> = [
    ["conv1.weight", "stem.conv.weight"],
    ["bn1.running_mean", "stem.bn.running_mean"],
    ["layer1.0.conv1.weight", "stages.0.blocks.0.conv1.weight"],
    ["layer4.2.bn3.bias", "stages.3.blocks.2.bn3.bias"],
    ["layer2.0.shortcut.0.weight", "stages.1.blocks.0.shortcut.conv.weight"],
    ["layer2.0.shortcut.1.weight", "stages.1.blocks.0.shortcut.bn.weight"],
    ["layer2.0.downsample.1.running_var", "stages.1.blocks.0.shortcut.bn.running_var"],
    ["linear.weight", "head.fc.weight"],
    ["fc.bias", "head.fc.bias"],
  ];
  for (const [key, name] of cases) assert.equal(torchKeyToName(key), name, key);
  for (
    const key of [
      "layer0.0.conv1.weight",
      "layer1.0.conv4.weight",
      "bn1.foo",
      "layer1.0.shortcut.2.weight",
    ]
  ) {
    assert.equal(torchKeyToName(key), undefined, key);
  }
  assert.equal(
    nameToTorchKey("stages.1.blocks.0.shortcut.conv.weight", "torchvision"),
    "layer2.0.downsample.0.weight",
  );
  assert.throws(
    () => nameToTorchKey("stages.3.velocity.fc1.weight"),
    /not a CIFAR ResNet variable/,
  );
});

Deno.test("exportStateDict / loadStateDict round-trip our names, strictly", async () => {
  const a = buildResNet({ arch: "resnet50", classes: 10, width: 1 / 16, seed: 1 });
  const b = buildResNet({ arch: "resnet50", classes: 10, width: 1 / 16, seed: 2 });
  // Make the buffers non-trivial so that they are seen to travel.
  tf.tidy(() => a.apply(tf.randomNormal([2, 8, 8, 3], 0, 1, "float32", 1), { training: true }));
  const bytes = await exportStateDict(a, { metadata: { config: JSON.stringify(a.config) } });
  const file = decodeSafetensors(bytes);
  assert.deepEqual([...file.tensors.keys()], a.namedVariables().map(([n]) => n));
  assert.deepEqual(JSON.parse(file.metadata.config), a.config);
  assert.deepEqual(loadStateDict(b, file), { loaded: a.namedVariables().length, skipped: [] });
  a.namedVariables().forEach(([n, v], i) =>
    assert.deepEqual(v.dataSync(), b.namedVariables()[i][1].dataSync(), n)
  );
  const extra = new Map(file.tensors);
  extra.set("stages.9.x", { dtype: "F32", shape: [1], data: new Float32Array(1) });
  assert.throws(
    () => loadStateDict(b, { tensors: extra, metadata: {} }),
    /unexpected tensor\(s\) "stages\.9\.x"/,
  );
  assert.deepEqual(
    loadStateDict(b, { tensors: extra, metadata: {} }, { allowUnexpected: true }).skipped,
    ["stages.9.x"],
  );
  const missing = new Map(file.tensors);
  missing.delete("head.fc.bias");
  assert.throws(
    () => loadStateDict(b, { tensors: missing, metadata: {} }),
    /missing 1 variable\(s\) "head\.fc\.bias"/,
  );
  const c = buildResNet({ arch: "resnet50", classes: 100, width: 1 / 16, seed: 2 });
  assert.throws(
    () => loadStateDict(c, bytes, { source: "ckpt.safetensors" }),
    /ckpt\.safetensors: "head\.fc\.weight" has shape \[128,10\]/,
  );
  [a, b, c].forEach(disposeModule);
});
