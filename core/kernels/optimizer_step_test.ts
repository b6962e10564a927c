import * as tf from "@tensorflow/tfjs-core";
import "../backend.ts"; // registers the cpu backend and the gradients (tfjs-core has neither)
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { AdamW } from "../adamw.ts";
import type { Optimizer, OptimizerState } from "../optimizer.ts";
import { selectBackend } from "../backend.ts";
import { Sgd } from "../sgd.ts";
import { assertNoLeak } from "../testing.ts";
import type { Variable } from "../tf_types.ts";
import { profileKernels } from "./kernel_profile.ts";
import { ADAMW_STEP_KERNEL, adamWStep, SGD_STEP_KERNEL, sgdStep } from "./optimizer_step.ts";
import { registerWasmTrainingKernels } from "./register.ts";
import { values } from "./_test_util.ts";
import { ownKernels } from "./_own_kernels.ts";
import type { WasmBackend } from "./_wasm.ts";

const SHAPES = [[3, 3, 4, 5], [5], [7, 3], [1]];

type Make = (vars: [string, Variable][]) => Optimizer;

interface Trajectory {
  params: Float32Array[];
  state: OptimizerState;
  kernels: string[];
}

/** Three steps of `make`'s optimizer on `backend`, the third skipping one gradient. */
async function trajectory(backend: "cpu" | "wasm", make: Make): Promise<Trajectory> {
  await tf.setBackend(backend);
  if (backend === "wasm") registerWasmTrainingKernels();
  const vars = SHAPES.map((s, i) =>
    [`v${i}`, tf.variable(tf.tensor(values(s.reduce((a, b) => a * b), 10 + i), s))] as [
      string,
      Variable,
    ]
  );
  const opt = make(vars);
  const kernels: string[] = [];
  try {
    for (let step = 0; step < 3; step++) {
      const grads = new Map(
        vars.filter((_, i) => !(step === 2 && i === 1)).map(([name, v], i) => [
          name,
          tf.tensor(values(v.size, 100 * step + i), v.shape),
        ]),
      );
      const { calls } = await profileKernels(backend, () => opt.applyGradients(grads, 0.05));
      kernels.push(...calls.map((c) => c.name));
      tf.dispose([...grads.values()]);
    }
    return {
      params: vars.map(([, v]) => v.dataSync() as Float32Array),
      state: await opt.getState(),
      kernels,
    };
  } finally {
    opt.dispose();
    tf.dispose(vars.map(([, v]) => v));
    await tf.setBackend("cpu");
  }
}

const cases: [string, Make][] = [
  ["Sgd, momentum, coupled decay on all", (v) => new Sgd(v, { momentum: 0.9, weightDecay: 5e-4 })],
  [
    "Sgd, Nesterov, decay excluding 1-d",
    (v) =>
      new Sgd(v, {
        momentum: 0.9,
        nesterov: true,
        weightDecay: 0.01,
        weightDecayFilter: "exclude-1d",
      }),
  ],
  ["Sgd without momentum", (v) => new Sgd(v, { weightDecay: 0.1 })],
  ["AdamW, default decay", (v) => new AdamW(v)],
  [
    "AdamW, decay excluding 1-d, other betas",
    (v) =>
      new AdamW(v, {
        betas: [0.8, 0.99],
        epsilon: 1e-6,
        weightDecay: 0.05,
        weightDecayFilter: "exclude-1d",
      }),
  ],
];

for (const [what, make] of cases) {
  Deno.test(`${what}: one wasm kernel per step gives the cpu backend's per-variable values exactly`, async () => {
    const cpu = await trajectory("cpu", make);
    const wasm = await trajectory("wasm", make);
    const kernel = what.startsWith("Sgd") ? SGD_STEP_KERNEL : ADAMW_STEP_KERNEL;
    assert.deepEqual(wasm.kernels, [kernel, kernel, kernel]);
    assert.ok(!cpu.kernels.includes(kernel));
    wasm.params.forEach((p, i) => assert.deepEqual(p, cpu.params[i], `parameter ${i}`));
    assert.equal(wasm.state.iterations, 3);
    assert.equal(wasm.state.iterations, cpu.state.iterations);
    assert.deepEqual([...wasm.state.tensors.keys()], [...cpu.state.tensors.keys()]);
    for (const [name, t] of cpu.state.tensors) {
      assert.deepEqual(wasm.state.tensors.get(name)!.data, t.data, name);
    }
  });
}

Deno.test("the fused optimizer steps leave no tensor or heap byte behind on wasm", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  const vars = SHAPES.map((s, i) => [`v${i}`, tf.variable(tf.ones(s))] as [string, Variable]);
  const grads = new Map(vars.map(([name, v]) => [name, tf.onesLike(v)]));
  const opts = [new Sgd(vars, { momentum: 0.9, weightDecay: 1e-4 }), new AdamW(vars)];
  try {
    for (const opt of opts) {
      await assertNoLeak(() => opt.applyGradients(grads, 0.1), {
        bytes: true,
        label: `${opt.kind} step`,
      });
    }
  } finally {
    opts.forEach((o) => o.dispose());
    tf.dispose([...grads.values(), ...vars.map(([, v]) => v)]);
    await tf.setBackend("cpu");
  }
});

Deno.test("sgdStep and adamWStep reject mismatched gradients, slots and per-entry attributes", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  try {
    tf.tidy(() => {
      const p = tf.zeros([2, 3]);
      const attrs = { lr: 0.1, momentum: 0.9, nesterov: false, weightDecays: [0] };
      assert.throws(
        () => sgdStep([{ param: p, grad: tf.zeros([3, 2]), slots: [tf.zeros([2, 3])] }], attrs),
        /gradient 0 has shape \[3,2\], its parameter \[2,3\]/,
      );
      assert.throws(
        () => sgdStep([{ param: p, grad: tf.zeros([2, 3]), slots: [] }], attrs),
        /entry 0 has 0 slots, expected 1/,
      );
      assert.throws(
        () => sgdStep([{ param: p, grad: p, slots: [p] }], { ...attrs, weightDecays: [0, 0] }),
        /2 weight decays for 1 entries/,
      );
      assert.throws(
        () =>
          adamWStep([{ param: p, grad: p, slots: [p, p] }], {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            stepSize: 0.1,
            bc2Sqrt: 0.1,
            decayFactors: [],
          }),
        /0 decay factors for 1 entries/,
      );
      assert.throws(
        () =>
          sgdStep([{ param: tf.zeros([2], "int32"), grad: tf.zeros([2], "int32"), slots: [] }], {
            ...attrs,
            momentum: 0,
          }),
        /needs float32 parameters and gradients/,
      );
    });
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("the optimizer kernels give the same bits for any split into (part, parts) shares", async () => {
  await tf.setBackend("wasm");
  registerWasmTrainingKernels();
  const backend = tf.backend() as unknown as WasmBackend;
  const wasm = backend.wasm;
  const kernels = ownKernels(wasm);
  const sizes = [13, 4, 1, 30];
  const at = (u: tf.Tensor) => backend.dataIdMap.get(u.dataId).memoryOffset;
  const ins = sizes.map((n, i) => [0, 1, 2, 3].map((k) => tf.tensor1d(values(n, 10 * i + k))));
  try {
    const run = (adam: boolean, parts: number): Float32Array[] => {
      const outs = sizes.map((n) => [0, 1, 2].map(() => tf.zeros([n])));
      const ints = tf.tensor1d(
        sizes.flatMap((n, i) => [...ins[i].map(at), ...outs[i].map(at), n]),
        "int32",
      );
      const floats = tf.tensor1d(adam ? [1, 0.99, 1, 0.98] : [0, 0.01, 0, 0.5]);
      for (let part = 0; part < parts; part++) {
        if (adam) {
          kernels.adamw_step_f32(
            at(ints),
            at(floats),
            4,
            0.9,
            0.999,
            0.1,
            0.001,
            1e-8,
            0.1,
            0.2,
            part,
            parts,
          );
        } else {
          kernels.sgd_step_f32(at(ints), at(floats), 4, 0.1, 0.9, 1, part, parts);
        }
      }
      const data = outs.flat().map((t) => t.dataSync() as Float32Array);
      tf.dispose([...outs.flat(), ints, floats]);
      return data;
    };
    for (const adam of [false, true]) {
      const one = run(adam, 1);
      assert.ok(one[0].some((v) => v !== 0), "the parameters were written");
      for (const parts of [2, 3, 8]) {
        run(adam, parts).forEach((r, i) =>
          assert.deepEqual(r, one[i], `${parts} parts, output ${i}`)
        );
      }
    }
  } finally {
    tf.dispose(ins.flat());
    await tf.setBackend("cpu");
  }
});

Deno.test("on the threaded wasm build (shared memory) the fused steps give the same bits too", async () => {
  const choice = await selectBackend({ backend: "wasm", threads: 2, env: {} });
  assert.equal(choice.threads, 2);
  try {
    for (const [what, make] of [cases[1], cases[4]]) {
      const cpu = await trajectory("cpu", make);
      const wasm = await trajectory("wasm", make);
      assert.ok(wasm.kernels.every((k) => k === SGD_STEP_KERNEL || k === ADAMW_STEP_KERNEL), what);
      wasm.params.forEach((p, i) => assert.deepEqual(p, cpu.params[i], `${what}: parameter ${i}`));
    }
  } finally {
    await selectBackend({ backend: "wasm", threads: 1, env: {} });
    await tf.setBackend("cpu");
  }
});
