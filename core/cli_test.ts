import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import {
  BACKEND_ARG_HELP,
  BACKEND_ARG_OPTIONS,
  backendOptionsFromArgs,
  backendOptionsFromValues,
} from "./cli.ts";

Deno.test("backendOptionsFromArgs: both flag forms, other flags and positionals ignored", () => {
  assert.deepEqual(backendOptionsFromArgs([]), {});
  assert.deepEqual(backendOptionsFromArgs(["--backend", "wasm"]), { backend: "wasm" });
  assert.deepEqual(backendOptionsFromArgs(["--backend=WebGPU"]), { backend: "webgpu" });
  assert.deepEqual(backendOptionsFromArgs(["--threads=4"]), { threads: 4 });
  assert.deepEqual(
    backendOptionsFromArgs(["train", "--epochs", "3", "--backend", "cpu", "--threads", "1", "-v"]),
    { backend: "cpu", threads: 1 },
  );
  // The last occurrence wins, as with parseArgs.
  assert.deepEqual(backendOptionsFromArgs(["--backend", "cpu", "--backend", "wasm"]), {
    backend: "wasm",
  });
});

Deno.test("backendOptionsFromArgs: invalid values are errors naming the flag", () => {
  assert.throws(
    () => backendOptionsFromArgs(["--backend", "gpu"]),
    (e: Error) =>
      e instanceof TypeError && /--backend/.test(e.message) &&
      /webgpu, wasm, cpu/.test(e.message),
  );
  assert.throws(() => backendOptionsFromArgs(["--backend"]), /--backend needs a value/);
  for (const bad of ["0", "-1", "1.5", "two", "", " ", "1e3", "0x2"]) {
    assert.throws(
      () => backendOptionsFromArgs([`--threads=${bad}`]),
      (e: Error) => e instanceof RangeError && /--threads/.test(e.message),
      bad,
    );
  }
  assert.throws(() => backendOptionsFromArgs(["--threads"]), RangeError);
});

Deno.test("BACKEND_ARG_OPTIONS composes with a task's own strict parseArgs", () => {
  const { values, positionals } = parseArgs({
    args: ["--backend", "wasm", "--threads", "2", "--steps", "10", "run"],
    options: { ...BACKEND_ARG_OPTIONS, steps: { type: "string" } },
    allowPositionals: true,
  });
  assert.deepEqual(backendOptionsFromValues(values), { backend: "wasm", threads: 2 });
  assert.equal(values.steps, "10");
  assert.deepEqual(positionals, ["run"]);
  assert.throws(() => backendOptionsFromValues({ backend: true }), /--backend needs a value/);
  assert.match(BACKEND_ARG_HELP, /--backend webgpu\|wasm\|cpu/);
  assert.match(BACKEND_ARG_HELP, /--threads N/);
});
