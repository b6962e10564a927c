import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  type AdapterInfoLike,
  BACKEND_NAMES,
  backendLabel,
  describeBackend,
  isSoftwareAdapter,
  labelSaysSoftwareAdapter,
  parseBackendName,
  selectBackend,
  type SelectBackendOptions,
} from "./backend.ts";
import { wasmPackageRoot } from "./_wasm_init.ts";
import { assertNoLeak } from "./testing.ts";
import { probeWebGpuGate, webgpuTestDefinition } from "./gpu_gate.ts";

const GATE = await probeWebGpuGate();

const CHILD = new URL("./testdata/backend_conv.ts", import.meta.url).pathname;
const DIST = new URL("dist/", await wasmPackageRoot());

Deno.test("isSoftwareAdapter: hardware adapters pass, software and fallback adapters are refused", () => {
  const table: [AdapterInfoLike, boolean][] = [
    // Chrome/Dawn on hardware.
    [{ vendor: "nvidia", architecture: "ampere", device: "", description: "" }, false],
    [{
      vendor: "nvidia",
      architecture: "hopper",
      device: "0x2330",
      description: "NVIDIA H100 80GB HBM3",
    }, false],
    [{ vendor: "amd", architecture: "rdna-3", device: "", description: "" }, false],
    [{ vendor: "apple", architecture: "metal-3", device: "", description: "Apple M2 Pro" }, false],
    [{ vendor: "intel", architecture: "gen-12lp", device: "", description: "" }, false],
    // wgpu (Deno) on hardware: PCI vendor ids and driver descriptions.
    [
      { vendor: "4318", architecture: "", device: "8711", description: "NVIDIA GeForce RTX 3090" },
      false,
    ],
    [{
      vendor: "4098",
      architecture: "",
      device: "29772",
      description: "AMD Radeon RX 7900 XTX (RADV NAVI31)",
    }, false],
    [{
      vendor: "32902",
      architecture: "",
      device: "18086",
      description: "Intel(R) UHD Graphics 770 (ADL-S GT1)",
    }, false],
    [{ vendor: "nvidia", isFallbackAdapter: false }, false],
    // Software rasterisers.
    [{
      vendor: "65541",
      architecture: "",
      device: "0",
      description: "llvmpipe (LLVM 15.0.6, 256 bits)",
      isFallbackAdapter: true,
    }, true],
    [{
      vendor: "65541",
      architecture: "",
      device: "0",
      description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    }, true],
    [{ vendor: "mesa", architecture: "", device: "", description: "lavapipe" }, true],
    [{ vendor: "google", architecture: "swiftshader", device: "", description: "" }, true],
    [{
      vendor: "6880",
      architecture: "",
      device: "49374",
      description: "SwiftShader Device (Subzero)",
    }, true],
    [{ vendor: "0x10005", description: "" }, true],
    [{ vendor: "microsoft", description: "Microsoft Basic Render Driver" }, true],
    // A declared fallback adapter, whatever its name.
    [{ vendor: "nvidia", architecture: "ampere", isFallbackAdapter: true }, true],
    [{}, false],
  ];
  for (const [info, software] of table) {
    assert.equal(isSoftwareAdapter(info), software, JSON.stringify(info));
  }
});

Deno.test("describeBackend: one line per backend kind", () => {
  assert.equal(
    describeBackend({ name: "wasm", reason: "auto", threads: 1, simd: false }),
    "wasm (no SIMD, 1 thread): auto",
  );
  assert.equal(
    describeBackend({
      name: "webgpu",
      reason: "auto",
      threads: 1,
      simd: false,
      adapter: { vendor: "nvidia", architecture: "hopper", device: "", description: "NVIDIA H100" },
    }),
    "webgpu (NVIDIA H100, vendor nvidia, hopper): auto",
  );
});

Deno.test("parseBackendName accepts the valid names and lists them otherwise", () => {
  for (const name of BACKEND_NAMES) assert.equal(parseBackendName(` ${name.toUpperCase()} `), name);
  for (const bad of ["", "gpu", "webgl", "tensorflow", "wasm2"]) {
    assert.throws(
      () => parseBackendName(bad, "--backend"),
      (e: Error) =>
        e instanceof TypeError && /--backend/.test(e.message) &&
        /webgpu, wasm, cpu/.test(e.message),
    );
  }
});

Deno.test("selectBackend: cpu on request", async () => {
  const choice = await selectBackend({ backend: "cpu", env: {} });
  assert.equal(choice.name, "cpu");
  assert.equal(tf.getBackend(), "cpu");
  assert.equal(choice.threads, 1);
  assert.equal(choice.simd, false);
  assert.ok(Object.isFrozen(choice));
  assert.equal(describeBackend(choice), "cpu: requested (backend=cpu)");
  // Same settings: same answer, no re-initialisation.
  assert.equal(await selectBackend({ backend: "cpu", env: {} }), choice);
});

Deno.test("selectBackend: wasm (SIMD, 1 thread) from the npm package matches cpu", async () => {
  const cpu = await selectBackend({ backend: "cpu", env: {} });
  assert.equal(cpu.name, "cpu");
  const x = new Float32Array(2 * 6 * 6 * 3).map((_, i) => Math.sin(i));
  const k = new Float32Array(3 * 3 * 3 * 4).map((_, i) => Math.cos(i) * 0.1);
  const run = async () => {
    const y = tf.tidy(() =>
      tf.conv2d(tf.tensor4d(x, [2, 6, 6, 3]), tf.tensor4d(k, [3, 3, 3, 4]), 1, "same")
    );
    const data = await y.data();
    y.dispose();
    return data;
  };
  const expected = await run();
  const choice = await selectBackend({ backend: "wasm", threads: 1, env: {} });
  try {
    assert.equal(choice.name, "wasm");
    assert.equal(tf.getBackend(), "wasm");
    assert.equal(choice.threads, 1);
    assert.equal(choice.simd, true);
    assert.match(choice.wasmSource ?? "", /tfjs-backend-wasm-simd\.wasm$/);
    assert.equal(describeBackend(choice), "wasm (SIMD, 1 thread): requested (backend=wasm)");
    let got: Awaited<ReturnType<typeof run>> = new Float32Array();
    await assertNoLeak(async () => void (got = await run()), { steps: 1, label: "a conv run" });
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `at ${i}`);
    }
    // Back and forth with the same settings reuses the module: tensors held on it stay valid.
    const kept = tf.tensor1d([1, 2, 3]);
    await selectBackend({ backend: "cpu", env: {} });
    const again = await selectBackend({ backend: "wasm", threads: 1, env: {} });
    assert.equal(again.wasmSource, choice.wasmSource);
    assert.deepEqual(Array.from(await kept.data()), [1, 2, 3]);
    kept.dispose();
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("selectBackend: wasm.paths as a directory, and a clear error when it lacks the binary", async () => {
  try {
    const choice = await selectBackend({
      backend: "wasm",
      threads: 1,
      wasm: { paths: DIST.pathname },
      env: {},
    });
    assert.equal(choice.name, "wasm");
    assert.equal(choice.wasmSource, new URL("tfjs-backend-wasm-simd.wasm", DIST).pathname);
    await assert.rejects(
      selectBackend({
        backend: "wasm",
        threads: 1,
        wasm: { paths: "/nonexistent/mfi-wasm" },
        env: {},
      }),
      /tfjs-backend-wasm-simd\.wasm at \/nonexistent\/mfi-wasm\/tfjs-backend-wasm-simd\.wasm/,
    );
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("selectBackend: a bad wasm.paths is an error in the automatic choice too, never a cpu fallback", async () => {
  try {
    const outcome = await selectBackend({ wasm: { paths: "/nonexistent/mfi-wasm" }, env: {} }).then(
      (choice) => choice,
      (e: Error) => e,
    );
    if (outcome instanceof Error) {
      assert.match(
        outcome.message,
        /could not start from the binaries given \(wasm\.paths \/nonexistent\/mfi-wasm\): .*\/nonexistent\/mfi-wasm\/tfjs-backend-wasm.*Fix the location/,
      );
    } else {
      // Only a hardware WebGPU adapter may win over the (unused) wasm binaries.
      assert.equal(outcome.name, "webgpu");
    }
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("importing @mfi/core registers cpu and every gradient, silences tfjs-backend-cpu's Node.js banner, not real warnings", async () => {
  // tfjs-core alone registers neither the cpu backend nor any gradient (the umbrella package did).
  const code = [
    'import * as tf from "@tensorflow/tfjs-core";',
    `import "${new URL("./mod.ts", import.meta.url).href}";`,
    'await tf.setBackend("cpu");',
    "tf.tensor([1, 2]).print();",
    "const w = tf.tensor4d([1, 2, 3, 4], [2, 2, 1, 1]);",
    "const loss = (x: tf.Tensor) => tf.mean(tf.square(tf.conv2d(x as tf.Tensor4D, w, 1, 'same')));",
    "console.log('grad', Array.from(tf.grad(loss)(tf.ones([1, 2, 2, 1])).dataSync()).join(','));",
    'console.warn("a real warning");',
  ].join("\n");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.doesNotMatch(text, /running TensorFlow\.js in Node\.js/);
  assert.match(text, /a real warning/);
  assert.match(text, /\[1, 2\]/);
  // A gradient through conv2d, square and mean computes (tfjs-core alone throws "gradient
  // function not found for Mean").
  assert.match(text, /^grad [\d.]+,[\d.]+,[\d.]+,[\d.]+$/m);
});

Deno.test("selectBackend: wasm.paths as an http URL prefix (fetched), 404 is a clear error", async () => {
  const simd = await Deno.readFile(new URL("tfjs-backend-wasm-simd.wasm", DIST));
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/wasm/tfjs-backend-wasm-simd.wasm"
        ? new Response(simd, { headers: { "content-type": "application/wasm" } })
        : new Response("not here", { status: 404 }),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const choice = await selectBackend({
      backend: "wasm",
      threads: 1,
      wasm: { paths: new URL(`${base}/wasm`) },
      env: {},
    });
    assert.equal(choice.wasmSource, `${base}/wasm/tfjs-backend-wasm-simd.wasm`);
    await assert.rejects(
      selectBackend({
        backend: "wasm",
        threads: 1,
        wasm: { paths: `${base}/elsewhere/` },
        env: {},
      }),
      /Cannot fetch .*\/elsewhere\/tfjs-backend-wasm-simd\.wasm: HTTP 404/,
    );
  } finally {
    await tf.setBackend("cpu");
    ac.abort();
    await server.finished;
  }
});

Deno.test("selectBackend: corrupt wasm bytes are a clear error, and wasm still starts after", async () => {
  try {
    await assert.rejects(
      selectBackend({
        backend: "wasm",
        threads: 1,
        wasm: { binaries: { simd: new Uint8Array([0, 97, 115, 109, 9]) } },
        env: {},
      }),
      /tfjs-backend-wasm failed to start: CompileError.*\(binary from wasm\.binaries\.simd\)/,
    );
    assert.equal((await selectBackend({ backend: "wasm", threads: 1, env: {} })).name, "wasm");
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("selectBackend: MFI_BACKEND overrides the automatic choice; the option beats it", async () => {
  const choice = await selectBackend({ env: { MFI_BACKEND: "CPU" } });
  assert.equal(choice.name, "cpu");
  assert.equal(choice.reason, "requested (MFI_BACKEND=cpu)");
  await assert.rejects(
    selectBackend({ env: { MFI_BACKEND: "tpu" } }),
    (e: Error) =>
      e instanceof TypeError && /MFI_BACKEND/.test(e.message) && /"tpu"/.test(e.message) &&
      /webgpu, wasm, cpu/.test(e.message),
  );
  // An explicit option wins, so a bad environment value is not even read.
  assert.equal((await selectBackend({ backend: "cpu", env: { MFI_BACKEND: "tpu" } })).name, "cpu");
  await assert.rejects(
    selectBackend({ backend: "cpu", env: { MFI_THREADS: "two" } }),
    /MFI_THREADS/,
  );
});

Deno.test("selectBackend: invalid options are errors naming the option", async () => {
  await assert.rejects(
    selectBackend({ backend: "gpu" } as unknown as SelectBackendOptions),
    (e: Error) => e instanceof TypeError && /webgpu, wasm, cpu/.test(e.message),
  );
  for (const threads of [0, -1, 1.5, Number.NaN]) {
    await assert.rejects(selectBackend({ backend: "cpu", threads }), RangeError);
  }
  await assert.rejects(
    selectBackend({ backend: "cpu", thread: 2 } as unknown as SelectBackendOptions),
    /Unknown option thread/,
  );
  await assert.rejects(
    selectBackend({ backend: "cpu", wasm: { path: "x" } } as unknown as SelectBackendOptions),
    /Unknown option wasm\.path/,
  );
  await assert.rejects(
    selectBackend(
      { backend: "cpu", wasm: { binaries: { simd: [1, 2] } } } as unknown as SelectBackendOptions,
    ),
    /wasm\.binaries\.simd: expected a Uint8Array/,
  );
});

Deno.test("selectBackend: webgpu on a machine without a hardware adapter fails, naming the adapter", async () => {
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
  if (adapter !== null && !isSoftwareAdapter(adapter.info)) {
    return; // A real GPU: nothing to refuse here.
  }
  const expected = adapter === null
    ? /WebGPU was requested .*(no WebGPU adapter|no WebGPU \(navigator\.gpu\))/
    : new RegExp(`software rasteriser \\(${adapter.info.description.replace(/[()]/g, "\\$&")}`);
  await assert.rejects(
    selectBackend({ backend: "webgpu", env: {} }),
    (e: Error) => expected.test(e.message) && /--backend wasm/.test(e.message),
  );
  await assert.rejects(selectBackend({ env: { MFI_BACKEND: "webgpu" } }), /MFI_BACKEND=webgpu/);
});

async function runChild(
  args: string[],
  permissions: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, CHILD, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    // The child must end by itself; a worker that keeps it alive fails the test.
    signal: AbortSignal.timeout(120_000),
  });
  const t0 = performance.now();
  const child = command.spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(
    out.signal,
    null,
    `child ${args.join(" ")} was killed after ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
      `(it did not exit by itself); stdout: ${stdout.slice(0, 300)}; stderr: ${stderr}`,
  );
  assert.equal(out.code, 0, stderr);
  return { code: out.code, json: JSON.parse(stdout.trim().split("\n").at(-1)!), stderr };
}

Deno.test("wasm threads: a 2-thread child matches 1 thread and exits by itself", async () => {
  const shape = ["--shape", "2,8,8,16,24"];
  const one = await runChild(["--backend", "wasm", "--threads", "1", ...shape], ["-A"]);
  const two = await runChild(["--backend", "wasm", "--threads", "2", ...shape], ["-A"]);
  assert.equal(one.json.threads, 1);
  assert.equal(two.json.threads, 2);
  assert.equal(two.json.simd, true);
  const a = one.json.values as number[];
  const b = two.json.values as number[];
  assert.equal(a.length, 2 * 8 * 8 * 24);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= 1e-5, `at ${i}: ${a[i]} vs ${b[i]}`);
  }
});

Deno.test("wasm threads: more than 8 are capped at the pool size, with the reason", async () => {
  const child = await runChild(["--backend", "wasm", "--threads", "9"], ["-A"]);
  assert.equal(child.json.threads, 8);
  assert.match(child.json.reason as string, /9 threads requested, capped at 8/);
});

Deno.test("wasm threads from bytes need no permission at all", async () => {
  const bytes = await Deno.readFile(new URL("tfjs-backend-wasm-threaded-simd.wasm", DIST));
  const args = ["--backend", "wasm", "--threads", "2", "--stdin-binary", "threadedSimd"];
  const child = await runChild(args, [], bytes);
  assert.equal(child.json.threads, 2);
  const reference = await runChild(["--backend", "cpu"], ["-A"]);
  const a = child.json.values as number[];
  const b = reference.json.values as number[];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4, `at ${i}`);
});

Deno.test("auto choice without permissions falls back to cpu and says why", async () => {
  const child = await runChild([], []);
  assert.equal(child.json.backend, "cpu");
  assert.match(
    child.json.reason as string,
    /^auto: WebGPU refused, .*wasm failed .*no read permission/,
  );
});

Deno.test(webgpuTestDefinition(
  GATE,
  "webgpu path: --allow-software-adapter runs tfjs-backend-webgpu on our adapter, matching cpu",
  async () => {
    const child = await runChild(["--backend", "webgpu", "--allow-software-adapter"], ["-A"]);
    assert.equal(child.json.backend, "webgpu");
    if (child.json.softwareAdapter === true) {
      assert.match(child.json.reason as string, /SOFTWARE ADAPTER allowed by allowSoftwareAdapter/);
      assert.match(child.json.label as string, /^webgpu \(software adapter: /);
      assert.match(child.stderr, /WARNING: WebGPU runs on a SOFTWARE adapter/);
    } else {
      assert.doesNotMatch(child.json.label as string, /software/);
    }
    const reference = await runChild(["--backend", "cpu"], ["-A"]);
    const a = child.json.values as number[];
    const b = reference.json.values as number[];
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4, `at ${i}`);
  },
));

Deno.test("software-adapter switch: only with an explicit webgpu request; bad values named", async () => {
  for (const backend of ["cpu", "wasm"] as const) {
    await assert.rejects(
      selectBackend({ backend, allowSoftwareAdapter: true, env: {} }),
      (e: Error) =>
        e instanceof TypeError && /only applies to an explicit WebGPU request/.test(e.message) &&
        new RegExp(`backend=${backend}`).test(e.message) && /--backend webgpu/.test(e.message),
    );
  }
  await assert.rejects(
    selectBackend({ allowSoftwareAdapter: true, env: {} }),
    /left to the automatic choice/,
  );
  await assert.rejects(
    selectBackend({ allowSoftwareAdapter: true, env: { MFI_BACKEND: "cpu" } }),
    /MFI_BACKEND=cpu/,
  );
  await assert.rejects(
    selectBackend({ allowSoftwareAdapter: "yes" } as unknown as SelectBackendOptions),
    /allowSoftwareAdapter: expected true or false/,
  );
  for (const bad of ["2", "on", "ja"]) {
    await assert.rejects(
      selectBackend({ backend: "cpu", env: { MFI_ALLOW_SOFTWARE_ADAPTER: bad } }),
      (e: Error) => e instanceof TypeError && /MFI_ALLOW_SOFTWARE_ADAPTER/.test(e.message),
      bad,
    );
  }
  // Set in the environment with another backend, it is ignored, and the reason says so.
  const cpu = await selectBackend({ backend: "cpu", env: { MFI_ALLOW_SOFTWARE_ADAPTER: "1" } });
  assert.equal(cpu.name, "cpu");
  assert.equal(cpu.softwareAdapter, undefined);
  assert.match(cpu.reason, /MFI_ALLOW_SOFTWARE_ADAPTER ignored/);
});

Deno.test("the automatic choice never takes a software adapter, even with the switch set", async () => {
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
  try {
    const choice = await selectBackend({
      threads: 1,
      env: { MFI_ALLOW_SOFTWARE_ADAPTER: "1" },
    });
    assert.notEqual(choice.softwareAdapter, true);
    if (adapter !== null && isSoftwareAdapter(adapter.info)) {
      assert.notEqual(choice.name, "webgpu");
      assert.match(choice.reason, /^auto: WebGPU refused, .*software rasteriser/);
      assert.match(choice.reason, /MFI_ALLOW_SOFTWARE_ADAPTER ignored/);
    }
    if (choice.name === "webgpu") assert.equal(isSoftwareAdapter(choice.adapter!), false);
  } finally {
    await tf.setBackend("cpu");
  }
});

Deno.test("backendLabel says software adapter, so results and reports carry it", () => {
  const adapter = {
    vendor: "65541",
    architecture: "",
    device: "0",
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  };
  const base = { name: "webgpu" as const, reason: "r", threads: 1, simd: false, adapter };
  assert.equal(
    backendLabel({ ...base, softwareAdapter: true }),
    "webgpu (software adapter: llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541, device 0)",
  );
  assert.equal(
    backendLabel(base),
    "webgpu (llvmpipe (LLVM 15.0.6, 256 bits), vendor 65541, device 0)",
  );
  assert.equal(
    backendLabel({ name: "webgpu", reason: "r", threads: 1, simd: false, softwareAdapter: true }),
    "webgpu (software adapter)",
  );
  // Readers that kept only the label (bundles, reports) find the software adapter in it.
  assert.equal(labelSaysSoftwareAdapter(backendLabel({ ...base, softwareAdapter: true })), true);
  assert.equal(labelSaysSoftwareAdapter(backendLabel(base)), false);
  for (const label of ["wasm (SIMD, 2 threads)", "cpu", "", "software adapter", "webgpu"]) {
    assert.equal(labelSaysSoftwareAdapter(label), false, label);
  }
});

Deno.test("wasm from bytes needs no file-system permission (single thread)", async () => {
  const bytes = await Deno.readFile(new URL("tfjs-backend-wasm-simd.wasm", DIST));
  const child = await runChild(
    ["--backend", "wasm", "--threads", "1", "--stdin-binary", "simd"],
    [],
    bytes,
  );
  assert.equal(child.json.backend, "wasm");
  assert.equal(child.json.threads, 1);
  const reference = await runChild(["--backend", "cpu"], ["-A"]);
  const a = child.json.values as number[];
  const b = reference.json.values as number[];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4, `at ${i}`);
});

Deno.test("wasm starts in a consumer outside the workspace whose import map lacks tfjs-backend-wasm", async () => {
  // A program in its own folder with its own deno.json, importing @mfi/core by path: its import
  // map has what core's modules import by bare name, but not tfjs-backend-wasm, which core must
  // load and locate by itself.
  const dir = await Deno.makeTempDir({ prefix: "mfi-consumer-" });
  try {
    const root = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    const imports = { ...root.imports };
    delete imports["@tensorflow/tfjs-backend-wasm"];
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ imports }));
    await Deno.copyFile(new URL("../deno.lock", import.meta.url), `${dir}/deno.lock`);
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      [
        'import * as tf from "@tensorflow/tfjs-core";',
        `import { selectBackend } from "${new URL("./mod.ts", import.meta.url).href}";`,
        'const choice = await selectBackend({ backend: "wasm", threads: 1, env: {} });',
        "const y = tf.add(tf.tensor([1, 2]), tf.tensor([3, 4]));",
        "console.log(JSON.stringify({ name: choice.name, source: choice.wasmSource, " +
        "values: Array.from(await y.data()) }));",
      ].join("\n"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.equal(result.name, "wasm");
    assert.match(result.source, /tfjs-backend-wasm.*\.wasm$/);
    assert.deepEqual(result.values, [4, 6]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
