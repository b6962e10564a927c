import assert from "node:assert/strict";
import { MFI_KERNELS_CLANG } from "../core/kernels/_mfi_kernels_bytes.ts";
import { ownKernelBytes } from "../core/kernels/_own_kernels.ts";
import { buildKernels, clangVersion, KERNEL_OUTPUTS } from "./build_kernels.ts";

Deno.test("the embedded kernel bytes are the committed .wasm files", async () => {
  assert.deepEqual(ownKernelBytes(false), await Deno.readFile(KERNEL_OUTPUTS.plain));
  assert.deepEqual(ownKernelBytes(true), await Deno.readFile(KERNEL_OUTPUTS.shared));
});

const clang = await clangVersion();
const why = clang === undefined
  ? "clang is not installed (apt-get install clang lld)"
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
    assert.deepEqual(built.plain, await Deno.readFile(KERNEL_OUTPUTS.plain));
    assert.deepEqual(built.shared, await Deno.readFile(KERNEL_OUTPUTS.shared));
    assert.equal(built.module, await Deno.readTextFile(KERNEL_OUTPUTS.module));
  },
});

const objdump = await new Deno.Command("llvm-objdump", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

Deno.test({
  name: `the kernels never touch a global (no linear-memory stack in tfjs's heap)${
    objdump ? "" : " (skipped: llvm-objdump is not installed)"
  }`,
  ignore: !objdump,
  async fn() {
    for (const file of [KERNEL_OUTPUTS.plain, KERNEL_OUTPUTS.shared]) {
      const out = await new Deno.Command("llvm-objdump", {
        args: ["-d", file.pathname],
        stdout: "piped",
      })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      assert.ok(out.success && /f32x4\.mul/.test(text), "disassembly with SIMD multiplies");
      assert.doesNotMatch(text, /global\.(get|set)/);
      assert.doesNotMatch(text, /\bcall\b/); // everything inlined: no stack frames
    }
  },
});

Deno.test("buildKernels fails, naming the fix, without clang", async () => {
  await assert.rejects(
    () => buildKernels("/nonexistent/clang"),
    /cannot run; install clang and lld/,
  );
});
