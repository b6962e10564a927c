import assert from "node:assert/strict";
import { type GpuLike, probeWebGpuGate, webgpuTestDefinition } from "./gpu_gate.ts";

const adapterGpu: GpuLike = {
  requestAdapter: () => Promise.resolve({ info: { description: "llvmpipe (LLVM 15.0.6)" } }),
};
const noAdapterGpu: GpuLike = { requestAdapter: () => Promise.resolve(null) };
const throwingGpu: GpuLike = { requestAdapter: () => Promise.reject(new Error("driver crashed")) };

Deno.test("probeWebGpuGate: adapter, no adapter, no WebGPU, a failing request; CI read from env", async () => {
  assert.deepEqual(await probeWebGpuGate({ env: {}, gpu: adapterGpu }), {
    available: true,
    ci: false,
    detail: "llvmpipe (LLVM 15.0.6)",
  });
  assert.deepEqual(await probeWebGpuGate({ env: { CI: "true" }, gpu: noAdapterGpu }), {
    available: false,
    ci: true,
    detail: "navigator.gpu.requestAdapter() found no adapter",
  });
  const none = await probeWebGpuGate({ env: { CI: "1" }, gpu: null });
  assert.equal(none.available, false);
  assert.equal(none.ci, true);
  const failing = await probeWebGpuGate({ env: { CI: "false" }, gpu: throwingGpu });
  assert.equal(failing.available, false);
  assert.equal(failing.ci, false);
  assert.match(failing.detail, /driver crashed/);
  for (const value of ["", "0", "no", "yes-please"]) {
    assert.equal((await probeWebGpuGate({ env: { CI: value }, gpu: null })).ci, false, value);
  }
  assert.equal((await probeWebGpuGate({ env: { CI: " TRUE " }, gpu: null })).ci, true);
});

Deno.test("webgpuTestDefinition: runs with an adapter, fails under CI without one, else ignored", async () => {
  let ran = 0;
  const body = () => {
    ran++;
  };
  const t = undefined as unknown as Deno.TestContext;
  const present = webgpuTestDefinition({ available: true, ci: true, detail: "gpu" }, "k", body);
  assert.equal(present.name, "k");
  assert.notEqual(present.ignore, true);
  await present.fn(t);
  assert.equal(ran, 1);

  const ci = webgpuTestDefinition({ available: false, ci: true, detail: "no adapter" }, "k", body);
  assert.notEqual(ci.ignore, true);
  await assert.rejects(
    async () => await ci.fn(t),
    (e: Error) =>
      /cannot run under CI/.test(e.message) && /no adapter/.test(e.message) &&
      /mesa-vulkan-drivers/.test(e.message),
  );
  assert.equal(ran, 1, "the body must not run without an adapter");

  const local = webgpuTestDefinition({ available: false, ci: false, detail: "none" }, "k", body);
  assert.equal(local.ignore, true);
  assert.equal(local.name, "k [ignored: no WebGPU adapter (none)]");
});
