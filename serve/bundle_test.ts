import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import {
  countParameters,
  decodeSafetensors,
  disposeModule,
  encodeSafetensors,
  Rng,
  selectBackend,
} from "@mfi/core";
import {
  type Bundle,
  BUNDLE_FORMAT,
  BundleError,
  type BundleMeta,
  checkBundleSpec,
  DEFAULT_BUNDLE_LIMITS,
  instantiateBundle,
  readBundle,
  writeBundle,
} from "./bundle.ts";
import { residualStageInfo, RESNET_ARCHS, type StagedModel } from "@mfi/resnet";
import { resignBundle } from "./testdata/hostile.ts";
import {
  buildModel,
  countSpecParameters,
  MODEL_SPEC_FORMAT,
  type ModelSpec,
  replaceStages,
  resnetSpec,
  type StageSpec,
  validateModelSpec,
} from "@mfi/incubation";

await tf.setBackend("cpu");

const SPEC = resnetSpec("resnet18", 3, 1 / 32);
const META: BundleMeta = {
  classNames: ["airplane", "bird", "cat"],
  normalization: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  accuracy: { top1: 0.5, dataset: "cifar10", split: "test", examples: 10000 },
  name: "tiny test model",
};

/** Builds inside tidy so the layers' temporary initial tensors are freed. */
function build(spec: ModelSpec, seed: number): StagedModel {
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed });
  });
  return model;
}

/** A model whose batch-norm running statistics are not the defaults, as after training. */
function trainedModel(seed: number): StagedModel {
  const model = build(SPEC, seed);
  let i = 0;
  for (const [name, v] of model.namedVariables()) {
    if (name.endsWith("running_mean") || name.endsWith("running_var")) {
      const value = tf.fill(v.shape, 0.5 + 0.01 * i++);
      v.assign(value);
      value.dispose();
    }
  }
  return model;
}

function headerLength(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

Deno.test("a bundle round-trips weights, running statistics and metadata", async () => {
  const before = tf.memory().numTensors;
  const model = trainedModel(1);
  const bytes = await writeBundle(model, SPEC, META);
  const bundle = await readBundle(bytes, { source: "t.mfi" });
  assert.equal(bundle.info.format, BUNDLE_FORMAT);
  assert.deepEqual(bundle.info.spec, SPEC);
  assert.deepEqual(bundle.info.classNames, META.classNames);
  assert.deepEqual(bundle.info.normalization, META.normalization);
  assert.deepEqual(bundle.info.accuracy, META.accuracy);
  assert.equal(bundle.info.name, "tiny test model");
  assert.equal(bundle.info.parameters, countParameters(model));
  assert.match(bundle.info.tensorSha256, /^[0-9a-f]{64}$/);
  // Buffers are stored, parameters are counted without them.
  assert.equal(bundle.tensors.size, model.namedVariables().length);
  assert.ok([...bundle.tensors.keys()].some((k) => k.endsWith("running_var")));

  const copy = instantiateBundle(bundle);
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 3);
  const [a, b] = tf.tidy(() => [
    model.apply(x, { training: false }),
    copy.apply(x, { training: false }),
  ]);
  assert.deepEqual(await b.data(), await a.data());
  tf.dispose([x, a, b]);
  disposeModule(model);
  disposeModule(copy);
  assert.equal(tf.memory().numTensors, before, "no tensor outlives the models");
});

Deno.test("the file is plain safetensors with string metadata and no optimizer state", async () => {
  const model = build(SPEC, 2);
  const bytes = await writeBundle(model, SPEC, { ...META, accuracy: null, name: undefined });
  const file = decodeSafetensors(bytes);
  assert.equal(file.metadata.format, BUNDLE_FORMAT);
  assert.equal(file.metadata.accuracy, "null");
  assert.match(file.metadata.name, /resnet resnet18/);
  assert.deepEqual(JSON.parse(file.metadata.spec), JSON.parse(JSON.stringify(SPEC)));
  assert.deepEqual(
    [...file.tensors.keys()].sort(),
    model.namedVariables().map(([n]) => n).sort(),
  );
  // The recorded data hash is the SHA-256 of every byte after the header.
  const digest = await crypto.subtle.digest("SHA-256", bytes.slice(8 + headerLength(bytes)));
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(file.metadata.tensor_sha256, hex);
  disposeModule(model);
});

Deno.test("truncated, padded and tampered bundles are rejected with the reason", async () => {
  const model = build(SPEC, 3);
  const bytes = await writeBundle(model, SPEC, META);
  disposeModule(model);
  const hl = headerLength(bytes);
  await assert.rejects(
    readBundle(bytes.subarray(0, bytes.length - 1), { source: "cut.mfi" }),
    (e: Error) => e instanceof BundleError && /cut\.mfi.*truncated/.test(e.message),
  );
  const padded = new Uint8Array(bytes.length + 8);
  padded.set(bytes);
  await assert.rejects(readBundle(padded), BundleError);

  const flipped = bytes.slice();
  flipped[8 + hl + 100] ^= 0x01; // one bit of one weight
  await assert.rejects(readBundle(flipped), /tensor data SHA-256 .* modified or corrupted/);

  // Edit a class name in the header in place (same length): the header hash catches it.
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + hl));
  const edited = bytes.slice();
  edited.set(new TextEncoder().encode(text.replace("airplane", "airship")), 8);
  await assert.rejects(readBundle(edited), /header SHA-256 .* modified/);

  // Swap the offsets of two same-shaped tensors: the data hash is unchanged, the table is not.
  const header = JSON.parse(text);
  const names = Object.keys(header).filter((k) =>
    k !== "__metadata__" && /running_(mean|var)$/.test(k)
  );
  const [p, q] = names.filter((n) =>
    JSON.stringify(header[n].shape) === JSON.stringify(header[names[0]].shape)
  );
  [header[p].data_offsets, header[q].data_offsets] = [
    header[q].data_offsets,
    header[p].data_offsets,
  ];
  const swappedJson = new TextEncoder().encode(JSON.stringify(header).padEnd(hl, " "));
  assert.equal(swappedJson.length, hl);
  const swapped = bytes.slice();
  swapped.set(swappedJson, 8);
  await assert.rejects(readBundle(swapped), /header SHA-256/);

  // A plain safetensors file (e.g. a training checkpoint) is not a bundle.
  const plain = encodeSafetensors(
    new Map([["w", { dtype: "F32", shape: [1], data: new Float32Array(1) }]]),
  );
  await assert.rejects(readBundle(plain), /format is undefined.*deno task export/);
});

Deno.test("writeBundle validates the metadata and the model against the spec", async () => {
  const model = build(SPEC, 4);
  await assert.rejects(
    writeBundle(model, SPEC, { ...META, classNames: ["a", "b"] }),
    /2 labels but the spec has 3 classes/,
  );
  await assert.rejects(
    writeBundle(model, SPEC, {
      ...META,
      normalization: { mean: [0, 0, 0], std: [1, 0, 1] },
    }),
    /std must be > 0/,
  );
  await assert.rejects(
    writeBundle(model, SPEC, {
      ...META,
      normalization: { mean: [0, 0, 0], std: [1, 1, 1], extra: 1 } as never,
    }),
    /unknown key "extra"/,
  );
  await assert.rejects(
    writeBundle(model, SPEC, { ...META, accuracy: { ...META.accuracy!, top1: 93.6 } }),
    /top1 must be in \[0, 1\]/,
  );
  await assert.rejects(
    writeBundle(model, SPEC, {
      ...META,
      accuracy: { ...META.accuracy!, subset: "some" as "all" },
    }),
    /subset must be all, first or first-per-class/,
  );
  await assert.rejects(
    writeBundle(model, resnetSpec("resnet18", 3, 1 / 16), META),
    /parameters but its spec describes/,
  );
  disposeModule(model);
});

Deno.test("instantiateBundle rejects missing, unexpected and misshapen tensors", async () => {
  const model = build(SPEC, 5);
  const bundle = await readBundle(await writeBundle(model, SPEC, META));
  disposeModule(model);
  const before = tf.memory().numTensors;
  const edit = (
    f: (m: Map<string, Bundle["tensors"] extends ReadonlyMap<string, infer T> ? T : never>) => void,
  ): Bundle => {
    const tensors = new Map(bundle.tensors);
    f(tensors);
    return { info: bundle.info, tensors };
  };
  const first = [...bundle.tensors.keys()][0];
  // Renamed (the total size still matches the spec, so the name check is what refuses it).
  const rename = (
    m: Map<string, Bundle["tensors"] extends ReadonlyMap<string, infer T> ? T : never>,
  ) => {
    m.set("extra.weight", m.get(first)!);
    m.delete(first);
  };
  assert.throws(() => instantiateBundle(edit(rename)), new RegExp(`missing ${first}`));
  assert.throws(() => instantiateBundle(edit(rename)), /unexpected extra\.weight/);
  // Added or removed values no longer add up to the spec's parameter count: refused before
  // anything is built.
  assert.throws(
    () => instantiateBundle(edit((m) => m.delete(first))),
    /spec describes \d+ parameters but its tensors hold/,
  );
  assert.throws(
    () => instantiateBundle(edit((m) => m.set("extra.weight", m.get(first)!))),
    /spec describes \d+ parameters but its tensors hold/,
  );
  assert.throws(
    () =>
      instantiateBundle(edit((m) => {
        const t = m.get(first)!;
        m.set(first, { ...t, shape: [t.data.length] });
      })),
    new RegExp(
      `tensor "${first.replaceAll(".", "\\.")}" is F32 \\[\\d+\\], the spec's model needs`,
    ),
  );
  assert.equal(tf.memory().numTensors, before, "a failed load frees the model it built");
});

Deno.test("every model family round-trips: resnet, meta, hybrid, mfi-resnet", async () => {
  const base = resnetSpec("resnet18", 3, 1 / 32);
  const meanflow = (i: number, modules: 1 | 2): StageSpec => {
    const info = residualStageInfo("resnet18", i, 1 / 32);
    return validateModelSpec({
      ...base,
      family: "mfi-resnet",
      stages: base.stages.map((s, j) =>
        j === i
          ? {
            kind: "meanflow",
            config: {
              inChannels: info.inChannels,
              outChannels: info.outChannels,
              stride: info.stride,
              hidden: 4,
              modules,
            },
          }
          : s
      ),
    }).stages[i];
  };
  const specs: ModelSpec[] = [
    base,
    replaceStages(base, {
      0: meanflow(0, 1),
      1: meanflow(1, 1),
      2: meanflow(2, 1),
      3: meanflow(3, 2),
    }, "meta"),
    replaceStages(base, { 0: meanflow(0, 1), 2: meanflow(2, 1), 3: meanflow(3, 2) }, "hybrid"),
    replaceStages(base, { 3: meanflow(3, 2) }, "mfi-resnet"),
  ];
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 4);
  for (const spec of specs) {
    const model = build(spec, 9);
    const bundle = await readBundle(await writeBundle(model, spec, META));
    assert.equal(bundle.info.spec.family, spec.family);
    assert.equal(bundle.info.parameters, countParameters(model), spec.family);
    const copy = instantiateBundle(bundle);
    const [a, b] = tf.tidy(() => [
      model.apply(x, { training: false }),
      copy.apply(x, { training: false }),
    ]);
    assert.deepEqual(await b.data(), await a.data(), spec.family);
    tf.dispose([a, b]);
    disposeModule(model);
    disposeModule(copy);
  }
  x.dispose();
});

Deno.test("any single corrupted byte is rejected as a BundleError (seeded fuzz)", async () => {
  const model = build(SPEC, 6);
  const bytes = await writeBundle(model, SPEC, META);
  disposeModule(model);
  const rng = new Rng(11);
  const hl = headerLength(bytes);
  // Positions everywhere: length prefix, header JSON and padding, tensor data.
  const positions = [0, 3, 7, 8, 9, 8 + hl - 1, 8 + hl, bytes.length - 1];
  for (let i = 0; i < 150; i++) positions.push(rng.int(bytes.length));
  for (const pos of positions) {
    const bad = bytes.slice();
    bad[pos] ^= 1 << rng.int(8);
    await assert.rejects(readBundle(bad), BundleError, `byte ${pos}`);
  }
});

/** A real tiny bundle re-signed to declare `spec` (with a matching parameter count and labels). */
async function declaring(spec: unknown): Promise<Uint8Array> {
  const model = build(SPEC, 3);
  const honest = await writeBundle(model, SPEC, META);
  disposeModule(model);
  const s = validateModelSpec(spec);
  return await resignBundle(honest, (md) => {
    md.spec = JSON.stringify(spec);
    md.parameters = String(countSpecParameters(s).total);
    md.class_names = JSON.stringify(Array.from({ length: s.classes }, (_, i) => `c${i}`));
  });
}

Deno.test("a re-signed bundle declaring a huge model is refused from its spec, before building", async () => {
  const info = residualStageInfo("resnet18", 3, 1 / 32);
  const meanflowHeavy = {
    ...SPEC,
    family: "mfi-resnet",
    stages: SPEC.stages.map((s, j) =>
      j === 3
        ? {
          kind: "meanflow",
          config: {
            inChannels: info.inChannels,
            outChannels: info.outChannels,
            stride: info.stride,
            hidden: 8,
            modules: 1,
            blocks: 100_000,
          },
        }
        : s
    ),
  };
  const cases: [string, unknown, RegExp][] = [
    [
      "width",
      resnetSpec("resnet101", 10, 64),
      /width 64 exceeds the limit of 4 \(limits\.maxWidth\)/,
    ],
    ["classes", resnetSpec("resnet18", 20_000, 1 / 32), /20000 classes exceed the limit of 10000/],
    [
      "parameters",
      resnetSpec("resnet101", 1000, 3),
      /describes \d+ parameters, over the limit of 200000000/,
    ],
    ["depth", meanflowHeavy, /stage 3 has 100000 MeanFlow blocks, over the limit of 64/],
    [
      "custom arch",
      { ...SPEC, arch: { ...RESNET_ARCHS.resnet18, depths: [2, 2, 2, 2] } },
      /custom architecture; only resnet18, resnet34, resnet50, resnet101 are accepted/,
    ],
    [
      "tensors",
      resnetSpec("resnet18", 3, 1 / 16), // within every limit, but not what the file holds
      /spec describes \d+ parameters but its tensors hold \d+ parameter values/,
    ],
  ];
  for (const [what, spec, message] of cases) {
    const bytes = await declaring(spec);
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    await assert.rejects(
      readBundle(bytes, { source: "evil.mfi" }),
      (e) => e instanceof BundleError && /evil\.mfi/.test(e.message) && message.test(e.message),
      what,
    );
    // Refused from the spec alone: no model was built (a build of these takes gigabytes and
    // minutes); the bound is generous, the point is that nothing scales with the declared size.
    assert.ok(performance.now() - t0 < 5_000, `${what} took ${performance.now() - t0} ms`);
    assert.equal(tf.memory().numTensors, before, what);
  }
});

Deno.test("instantiateBundle checks the spec again before building a hand-made Bundle", async () => {
  const model = build(SPEC, 4);
  const bundle = await readBundle(await writeBundle(model, SPEC, META));
  disposeModule(model);
  const before = tf.memory().numTensors;
  const evil: Bundle = { ...bundle, info: { ...bundle.info, spec: resnetSpec("resnet50", 10, 4) } };
  assert.throws(() => instantiateBundle(evil), /over the limit of 200000000/);
  assert.throws(
    () => instantiateBundle(evil, { limits: { maxParameters: 1e9 } }),
    /spec describes 375429386 parameters but its tensors hold/,
  );
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("bundle limits can be raised; custom architectures load when allowed", async () => {
  // The tiny resnet18 written out as data instead of by name: refused by default, loads when
  // custom architectures are allowed (the tensors match it exactly).
  const custom = { ...SPEC, arch: { ...RESNET_ARCHS.resnet18 } };
  const bytes = await declaring(custom);
  await assert.rejects(readBundle(bytes), /custom architecture/);
  const bundle = await readBundle(bytes, { limits: { customArchitectures: true } });
  const m = instantiateBundle(bundle, { limits: { customArchitectures: true } });
  assert.equal(countParameters(m), countSpecParameters(SPEC).total);
  disposeModule(m);
  // A lower limit refuses what the default accepts.
  const model = build(SPEC, 5);
  const honest = await writeBundle(model, SPEC, META);
  disposeModule(model);
  await assert.rejects(
    readBundle(honest, { limits: { maxParameters: 1_000 } }),
    /over the limit of 1000 \(limits\.maxParameters\)/,
  );
  assert.equal(DEFAULT_BUNDLE_LIMITS.maxWidth, 4);
  assert.equal(MODEL_SPEC_FORMAT, SPEC.format);
  assert.throws(
    () => checkBundleSpec({ ...SPEC, width: 8 }, bundle.tensors, { source: "x" }),
    /Cannot load x: width 8 exceeds the limit of 4/,
  );
});

Deno.test("a bundle records the backend that produced it; old bundles without it still load", async () => {
  const model = build(SPEC, 6);
  try {
    // Given explicitly: as recorded, a software adapter included.
    for (
      const backend of [
        { label: "wasm (SIMD, 2 threads)", softwareAdapter: false },
        {
          label: "webgpu (software adapter: llvmpipe, vendor 65541, device 0)",
          softwareAdapter: true,
        },
        null,
      ]
    ) {
      const bundle = await readBundle(await writeBundle(model, SPEC, { ...META, backend }));
      assert.deepEqual(bundle.info.backend, backend);
    }
    // By default: the backend selectBackend chose, if it is the active one; else unknown.
    const unknown = await readBundle(await writeBundle(model, SPEC, META));
    assert.equal(unknown.info.backend, null);
    await selectBackend({ backend: "cpu", env: {} });
    const bytes = await writeBundle(model, SPEC, META);
    assert.deepEqual((await readBundle(bytes)).info.backend, {
      label: "cpu",
      softwareAdapter: false,
    });
    assert.equal(
      decodeSafetensors(bytes).metadata.backend,
      '{"label":"cpu","softwareAdapter":false}',
    );

    // A bundle written before the field existed (no "backend" key) loads, backend unknown.
    const old = await resignBundle(bytes, (metadata) => {
      delete metadata.backend;
    });
    assert.equal(decodeSafetensors(old).metadata.backend, undefined);
    const oldBundle = await readBundle(old, { source: "old.mfi" });
    assert.equal(oldBundle.info.backend, null);
    assert.equal(oldBundle.info.parameters, countParameters(model));

    // A recorded backend is validated like every other field.
    const bad: [unknown, RegExp][] = [
      [{ label: "cpu" }, /backend: "softwareAdapter" is missing/],
      [{ label: "cpu", softwareAdapter: false, gpu: 1 }, /unknown key "gpu"/],
      [{ label: "", softwareAdapter: false }, /backend.label must be a non-empty string/],
      [{ label: "cpu", softwareAdapter: "no" }, /backend.softwareAdapter must be true or false/],
      [{ label: "wasm (SIMD, 1 thread)", softwareAdapter: true }, /only webgpu runs on a software/],
      [
        { label: "webgpu (software adapter: llvmpipe)", softwareAdapter: false },
        /names a software adapter but backend.softwareAdapter is false/,
      ],
      ["wasm", /backend must be \{ label, softwareAdapter \} or null/],
    ];
    for (const [backend, message] of bad) {
      await assert.rejects(
        writeBundle(model, SPEC, { ...META, backend: backend as BundleMeta["backend"] }),
        message,
      );
      const forged = await resignBundle(bytes, (metadata) => {
        metadata.backend = JSON.stringify(backend);
      });
      await assert.rejects(
        readBundle(forged, { source: "forged.mfi" }),
        (e: Error) =>
          e instanceof BundleError && /forged\.mfi/.test(e.message) && message.test(e.message),
      );
    }
    const notJson = await resignBundle(bytes, (metadata) => {
      metadata.backend = "wasm";
    });
    await assert.rejects(readBundle(notJson), /metadata "backend" is not valid JSON/);
  } finally {
    disposeModule(model);
  }
});
