/**
 * The gate of the WebGPU tests: whether this machine has a WebGPU adapter (a software one counts:
 * the tests select it with `allowSoftwareAdapter`), and what a test does without one. Under CI
 * (`CI=true`) a missing adapter fails the test, because CI installs Mesa's software Vulkan driver
 * (`.ci/run`) and must never pass by skipping; elsewhere the test is ignored, with the reason in
 * its name.
 *
 * @module
 */

/** What {@linkcode probeWebGpuGate} found. */
export interface WebGpuGate {
  /** True when `navigator.gpu.requestAdapter()` returned an adapter (hardware or software). */
  readonly available: boolean;
  /** True under CI (`CI` is `true` or `1`): a missing adapter is then a failure. */
  readonly ci: boolean;
  /** The adapter's description, or why there is none. */
  readonly detail: string;
}

/** The part of `navigator.gpu` the gate uses. */
export interface GpuLike {
  /** Resolves to an adapter (with `info`) or null. */
  requestAdapter(): Promise<{ readonly info?: { readonly description?: string } } | null>;
}

/** Options of {@linkcode probeWebGpuGate}. */
export interface WebGpuGateOptions {
  /** Where `CI` is read; default `Deno.env` where `--allow-env` permits it, else nothing. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The WebGPU entry point; default `navigator.gpu` (absent without WebGPU). */
  readonly gpu?: GpuLike | null;
}

function readCi(): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: "CI" }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get("CI");
  } catch {
    return undefined;
  }
}

/**
 * Looks for a WebGPU adapter and reads whether this is CI.
 *
 * @param options The environment and the WebGPU entry point, for testing the gate itself.
 * @returns The gate.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probeWebGpuGate } from "@mfi/core/testing";
 *
 * const gate = await probeWebGpuGate({ env: { CI: "true" }, gpu: null });
 * assert.deepEqual(gate, { available: false, ci: true, detail: "this runtime has no navigator.gpu" });
 * ```
 */
export async function probeWebGpuGate(options: WebGpuGateOptions = {}): Promise<WebGpuGate> {
  const ciValue = options.env !== undefined ? options.env.CI : readCi();
  const ci = ciValue !== undefined && /^(true|1)$/i.test(ciValue.trim());
  const gpu = options.gpu !== undefined
    ? options.gpu
    : ((globalThis.navigator as unknown as { gpu?: GpuLike })?.gpu ?? null);
  if (gpu === null) return { available: false, ci, detail: "this runtime has no navigator.gpu" };
  let adapter;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { available: false, ci, detail: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (adapter === null) {
    return { available: false, ci, detail: "navigator.gpu.requestAdapter() found no adapter" };
  }
  return { available: true, ci, detail: adapter.info?.description || "unnamed adapter" };
}

/** The advice a missing adapter comes with. */
export const WEBGPU_INSTALL_HINT: string =
  "On Debian/Ubuntu install Mesa's software Vulkan driver: apt-get install --no-install-recommends " +
  "libvulkan1 mesa-vulkan-drivers (.ci/run does this)";

/**
 * The `Deno.test` definition of a WebGPU test under the gate: the test itself when an adapter
 * exists; without one, under CI a test that fails saying why, elsewhere the test marked `ignore`
 * with the reason in its name.
 *
 * @param gate What {@linkcode probeWebGpuGate} found.
 * @param name The test's name.
 * @param fn The test.
 * @returns A definition for `Deno.test`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { webgpuTestDefinition } from "@mfi/core/testing";
 *
 * const body = () => {};
 * const local = webgpuTestDefinition({ available: false, ci: false, detail: "none" }, "t", body);
 * assert.equal(local.ignore, true);
 * assert.match(local.name, /no WebGPU adapter \(none\)/);
 * const ci = webgpuTestDefinition({ available: false, ci: true, detail: "none" }, "t", body);
 * assert.notEqual(ci.ignore, true);
 * await assert.rejects(async () => await ci.fn(undefined as unknown as Deno.TestContext), /CI/);
 * ```
 */
export function webgpuTestDefinition(
  gate: WebGpuGate,
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
): Deno.TestDefinition & { fn: (t: Deno.TestContext) => void | Promise<void> } {
  if (gate.available) return { name, fn };
  if (gate.ci) {
    return {
      name,
      fn: () => {
        throw new Error(
          `WebGPU test "${name}" cannot run under CI (CI is set): ${gate.detail}. CI must have a ` +
            `WebGPU adapter. ${WEBGPU_INSTALL_HINT}.`,
        );
      },
    };
  }
  return { name: `${name} [ignored: no WebGPU adapter (${gate.detail})]`, ignore: true, fn };
}
