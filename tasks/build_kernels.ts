/**
 * `deno task build:kernels`: compiles our own WASM SIMD kernels (`core/kernels/src/*.c`) with
 * clang 19 and its lld (Debian: `apt-get install clang-19 lld-19`) into four binaries: importing a
 * plain memory (tfjs-backend-wasm's single-threaded builds) or a shared one (its threaded build),
 * each with relaxed SIMD (`f32x4.relaxed_madd`, fused on CPUs with FMA) and without it (for
 * runtimes that do not validate relaxed SIMD). It writes them as
 * `core/kernels/mfi_kernels{,_shared,_relaxed,_relaxed_shared}.wasm` and, base64-encoded, as
 * `core/kernels/_mfi_kernels_bytes.ts`, which the library imports: loading the kernels needs no
 * permission and users need no toolchain.
 *
 * Usage: `deno task build:kernels [--check]` (`--check`: build into memory and exit 1 if the
 * committed files differ, without writing).
 *
 * @module
 */
import { type CliSpec, runCli } from "./_cli.ts";

/** `deno task build:kernels`'s command line. */
export const BUILD_KERNELS_CLI: CliSpec = {
  name: "build:kernels",
  summary: "compile core/kernels/src/*.c with clang/lld into the committed WASM kernel binaries",
  flags: {
    check: {
      type: "boolean",
      default: false,
      doc: "build in memory and fail if the committed binaries differ (writes nothing)",
    },
    clang: {
      type: "string",
      placeholder: "PATH",
      default: "clang-19",
      example: "/usr/bin/clang-19",
      doc: "the clang to build with, 16 or newer for relaxed SIMD (it needs its wasm-ld, from lld)",
    },
  },
  examples: ["--check", "--clang /usr/bin/clang-19"],
};

const KERNELS = new URL("../core/kernels/", import.meta.url);

/** The C sources, in link order. */
export const KERNEL_SOURCES: readonly string[] = [
  "src/conv2d_backprop_filter.c",
  "src/conv2d.c",
  "src/batch_norm.c",
  "src/optimizer_step.c",
  "src/add.c",
];

/** The four binaries: memory kind (plain or shared) x instruction set (SIMD or relaxed SIMD). */
export type KernelVariant = "plain" | "shared" | "relaxed" | "relaxedShared";

/** The variants, in the order the generated module lists them. */
export const KERNEL_VARIANTS: readonly KernelVariant[] = [
  "plain",
  "shared",
  "relaxed",
  "relaxedShared",
];

/** The committed outputs. */
export const KERNEL_OUTPUTS = {
  plain: new URL("mfi_kernels.wasm", KERNELS),
  shared: new URL("mfi_kernels_shared.wasm", KERNELS),
  relaxed: new URL("mfi_kernels_relaxed.wasm", KERNELS),
  relaxedShared: new URL("mfi_kernels_relaxed_shared.wasm", KERNELS),
  module: new URL("_mfi_kernels_bytes.ts", KERNELS),
} as const;

/** The constant of `_mfi_kernels_bytes.ts` that holds each variant. */
const CONSTANTS: Record<KernelVariant, string> = {
  plain: "MFI_KERNELS_PLAIN",
  shared: "MFI_KERNELS_SHARED",
  relaxed: "MFI_KERNELS_RELAXED",
  relaxedShared: "MFI_KERNELS_RELAXED_SHARED",
};

/** clang flags common to all binaries (besides the output and the sources). */
export const CLANG_FLAGS: readonly string[] = [
  "--target=wasm32",
  "-msimd128",
  "-mbulk-memory",
  "-O3",
  // Instructions in source order within a block: clang's default scheduler hoists a register
  // tile's loads ahead of its multiply-adds (the backward filter's 6 x 8 tile: six broadcasts
  // live at once), which V8, allocating registers in that order, pays for with accumulators
  // spilled to the stack. Measured (AMD EPYC, one thread, best of 10 alternating rounds): the
  // backward filter 1.04-1.06x with this flag alone, the forward and input-gradient kernels
  // 0.98-1.03x (unchanged).
  "-mllvm",
  "-pre-RA-sched=source",
  "-nostdlib",
  "-ffreestanding",
  "-Wall",
  "-Werror",
  "-Wl,--no-entry",
  "-Wl,--import-memory",
  "-Wl,--strip-all",
];

/** Extra flags of the shared-memory binaries (tfjs's threaded build has a shared 4 GiB memory). */
export const SHARED_FLAGS: readonly string[] = [
  "-matomics",
  "-Wl,--shared-memory",
  "-Wl,--max-memory=4294967296",
];

/** Extra flags of each variant. */
export const VARIANT_FLAGS: Record<KernelVariant, readonly string[]> = {
  plain: [],
  shared: SHARED_FLAGS,
  relaxed: ["-mrelaxed-simd"],
  relaxedShared: ["-mrelaxed-simd", ...SHARED_FLAGS],
};

/** The first line of `clang --version`, or undefined when clang cannot run. */
export async function clangVersion(clang = "clang-19"): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(clang, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).split("\n")[0].trim() : undefined;
  } catch {
    return undefined;
  }
}

async function compile(clang: string, flags: readonly string[]): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "mfi-kernels-" });
  try {
    const out = `${dir}/k.wasm`;
    const args = [...CLANG_FLAGS, ...flags, "-o", out, ...KERNEL_SOURCES];
    const r = await new Deno.Command(clang, {
      args,
      cwd: KERNELS,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!r.success) {
      throw new Error(
        `${clang} ${args.join(" ")} failed (exit ${r.code}):\n${
          new TextDecoder().decode(r.stderr)
        }`,
      );
    }
    return await Deno.readFile(out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What {@linkcode buildKernels} produced. */
export interface BuiltKernels {
  /** Each variant's binary. */
  readonly binaries: Readonly<Record<KernelVariant, Uint8Array>>;
  /** The text of `_mfi_kernels_bytes.ts`. */
  readonly module: string;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Lines of at most 100 characters (the repository's line width), as string literal parts. */
function chunks(text: string): string {
  const parts = text.match(/.{1,90}/g) ?? [""];
  return parts.map((p) => `  "${p}"`).join(" +\n");
}

/**
 * Builds both binaries and the TypeScript module that embeds them.
 *
 * @param clang The clang executable.
 * @returns The bytes and the module text.
 * @throws {Error} When clang is missing or the build fails (with clang's message).
 */
export async function buildKernels(clang = "clang-19"): Promise<BuiltKernels> {
  const version = await clangVersion(clang);
  if (version === undefined) {
    throw new Error(
      `${clang} cannot run; install clang 19 and its lld (Debian: apt-get install clang-19 lld-19) ` +
        "or pass --clang PATH",
    );
  }
  const binaries = {} as Record<KernelVariant, Uint8Array>;
  for (const v of KERNEL_VARIANTS) binaries[v] = await compile(clang, VARIANT_FLAGS[v]);
  const module = [
    "// Generated by `deno task build:kernels` from core/kernels/src/*.c: do not edit.",
    "// deno-fmt-ignore-file",
    "",
    `/** The clang that built the binaries below. */`,
    `export const MFI_KERNELS_CLANG = ${JSON.stringify(version)};`,
    "",
    ...KERNEL_VARIANTS.flatMap((v) => [
      `/** ${KERNEL_OUTPUTS[v].pathname.split("/").pop()}, base64. */`,
      `export const ${CONSTANTS[v]} =\n${chunks(base64(binaries[v]))};`,
      "",
    ]),
  ].join("\n");
  return { binaries, module };
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function main(values: Readonly<Record<string, unknown>>): Promise<void> {
  const built = await buildKernels(values.clang as string);
  if (values.check) {
    const stale: string[] = [];
    const read = (u: URL) => Deno.readFile(u).catch(() => new Uint8Array());
    for (const v of KERNEL_VARIANTS) {
      if (!same(await read(KERNEL_OUTPUTS[v]), built.binaries[v])) {
        stale.push(KERNEL_OUTPUTS[v].pathname.split("/").pop()!);
      }
    }
    const text = await Deno.readTextFile(KERNEL_OUTPUTS.module).catch(() => "");
    if (text !== built.module) stale.push("_mfi_kernels_bytes.ts");
    if (stale.length > 0) {
      throw new Error(`stale: ${stale.join(", ")}; run deno task build:kernels and commit them`);
    }
    console.log("build:kernels: the committed binaries are what the sources build");
    return;
  }
  const wrote: string[] = [];
  for (const v of KERNEL_VARIANTS) {
    await Deno.writeFile(KERNEL_OUTPUTS[v], built.binaries[v]);
    wrote.push(`${KERNEL_OUTPUTS[v].pathname.split("/").pop()} (${built.binaries[v].length} B)`);
  }
  await Deno.writeTextFile(KERNEL_OUTPUTS.module, built.module);
  console.log(`build:kernels: wrote ${wrote.join(", ")} and _mfi_kernels_bytes.ts`);
}

if (import.meta.main) await runCli(BUILD_KERNELS_CLI, ({ values }) => main(values));
