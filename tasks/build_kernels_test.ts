import assert from "node:assert/strict";
import { MFI_KERNELS_CLANG } from "../core/kernels/_mfi_kernels_bytes.ts";
import { ownKernelBytes } from "../core/kernels/_own_kernels.ts";
import { buildKernels, clangVersion, KERNEL_OUTPUTS, KERNEL_VARIANTS } from "./build_kernels.ts";

Deno.test("the embedded kernel bytes are the committed .wasm files", async () => {
  assert.deepEqual(ownKernelBytes(false), await Deno.readFile(KERNEL_OUTPUTS.plain));
  assert.deepEqual(ownKernelBytes(true), await Deno.readFile(KERNEL_OUTPUTS.shared));
  assert.deepEqual(ownKernelBytes(false, true), await Deno.readFile(KERNEL_OUTPUTS.relaxed));
  assert.deepEqual(ownKernelBytes(true, true), await Deno.readFile(KERNEL_OUTPUTS.relaxedShared));
});

const clang = await clangVersion();
const why = clang === undefined
  ? "clang 19 is not installed (apt-get install clang-19 lld-19)"
  : clang !== MFI_KERNELS_CLANG
  ? `clang is "${clang}", the binaries were built by "${MFI_KERNELS_CLANG}"`
  : "";

Deno.test({
  name: `the committed kernel binaries are what the C sources build${
    why ? ` (skipped: ${why})` : ""
  }`,
  ignore: why !== "",
  async fn() {
    const built = await buildKernels();
    for (const v of KERNEL_VARIANTS) {
      assert.deepEqual(built.binaries[v], await Deno.readFile(KERNEL_OUTPUTS[v]), v);
    }
    assert.equal(built.module, await Deno.readTextFile(KERNEL_OUTPUTS.module));
  },
});

// LLVM 19's objdump: older ones cannot decode relaxed SIMD.
const objdump = await new Deno.Command("llvm-objdump-19", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

Deno.test({
  name: `the kernels never touch a global (no linear-memory stack in tfjs's heap)${
    objdump ? "" : " (skipped: llvm-objdump-19 is not installed)"
  }`,
  ignore: !objdump,
  async fn() {
    for (const v of KERNEL_VARIANTS) {
      const out = await new Deno.Command("llvm-objdump-19", {
        args: ["-d", KERNEL_OUTPUTS[v].pathname],
        stdout: "piped",
      })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      // objdump 19 prints relaxed SIMD as <unknown> with its bytes: fd 85 02 = f32x4.relaxed_madd.
      const madd = v.startsWith("relaxed") ? /fd 85 02\s+<unknown>/ : /f32x4\.mul/;
      assert.ok(out.success && madd.test(text), `${v}: disassembly with SIMD multiply-adds`);
      if (!v.startsWith("relaxed")) assert.doesNotMatch(text, /<unknown>/, v);
      // A linear-memory stack (address-taken locals, arrays that stay in memory) would show as
      // reads and writes of the stack-pointer global; calls between kernel functions are fine
      // (their frames are the engine's, not tfjs's heap).
      assert.doesNotMatch(text, /global\.(get|set)/);
    }
  },
});

Deno.test("buildKernels fails, naming the fix, without clang", async () => {
  await assert.rejects(
    () => buildKernels("/nonexistent/clang"),
    /cannot run; install clang 19 and its lld/,
  );
});
