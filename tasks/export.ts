/**
 * `deno task export --checkpoint DIR --out model.mfi`: turns a training checkpoint into a
 * single-file inference bundle (weights + batch-norm statistics, spec, labels, normalisation,
 * parameter count, recorded accuracy, the backend that trained it, SHA-256s; no optimizer state). See `bundleFromCheckpoint`
 * in `@mfi/serve` for where each field comes from.
 *
 * `--checkpoint` takes a sidecar (`.../output.json`), a checkpoint directory (its newest complete
 * checkpoint is used) or a pipeline phase directory (its `output/` checkpoint).
 * Options: `--spec FILE.json`, `--dataset cifar10|cifar100`, `--class-names FILE` (one per line,
 * as CIFAR's `batches.meta.txt`), `--name TEXT`, `--no-accuracy`.
 * Permissions: `--allow-read` (checkpoint, spec, names) and `--allow-write` (the bundle).
 * `--out` must not be one of the inputs (the checkpoint's sidecar or weights, the spec, the names,
 * also through a symlink or a hard link): the export refuses before writing anything.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { latestCheckpoint, readCheckpoint, selectBackend, writeFileAtomic } from "@mfi/core";
import type { ModelSpec } from "@mfi/incubation";
import { bundleFromCheckpoint } from "@mfi/serve";

const USAGE = "usage: deno task export --checkpoint DIR|SIDECAR.json --out model.mfi " +
  "[--spec spec.json] [--dataset cifar10|cifar100] [--class-names FILE] [--name TEXT] [--no-accuracy]";

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Resolves `--checkpoint` to a sidecar path.
 *
 * @param path A sidecar, a checkpoint directory or a phase directory.
 * @returns The sidecar path.
 * @throws {Error} If no complete checkpoint is there.
 */
async function resolveCheckpoint(path: string): Promise<string> {
  if (path.endsWith(".json")) return path;
  if (!(await isDir(path))) {
    throw new Error(`--checkpoint ${path} is neither a .json sidecar nor a directory`);
  }
  const direct = await latestCheckpoint(path);
  if (direct) return direct;
  if (await isDir(`${path}/output`)) {
    const output = await latestCheckpoint(`${path}/output`);
    if (output) return output;
  }
  throw new Error(
    `No complete checkpoint in ${path} (nor in ${path}/output): a checkpoint is a <name>.json ` +
      `sidecar beside its weights file, written by saveCheckpoint`,
  );
}

/** The canonical path `path` names (the file a symlink leads to), whether or not it exists. */
async function canonical(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    const slash = path.lastIndexOf("/");
    const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
    try {
      return `${await Deno.realPath(dir)}/${path.slice(slash + 1)}`;
    } catch {
      return path;
    }
  }
}

async function fileId(path: string): Promise<string | undefined> {
  try {
    const s = await Deno.stat(path);
    return s.ino === null || s.dev === null ? undefined : `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Refuses an output path that is (or links to) one of the inputs.
 *
 * @param out The `--out` path.
 * @param inputs What the export reads, by role.
 * @throws {Error} Naming the input `out` would overwrite.
 */
async function refuseOverwritingInput(
  out: string,
  inputs: ReadonlyArray<readonly [role: string, path: string | undefined]>,
): Promise<void> {
  const outPath = await canonical(out);
  const outId = await fileId(out);
  for (const [role, path] of inputs) {
    if (path === undefined) continue;
    const same = (await canonical(path)) === outPath ||
      (outId !== undefined && (await fileId(path)) === outId);
    if (same) {
      throw new Error(
        `--out ${out} is ${role} (${path}), an input of this export; refusing to write over it. ` +
          `Choose another --out, e.g. model.mfi`,
      );
    }
  }
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      checkpoint: { type: "string" },
      out: { type: "string" },
      spec: { type: "string" },
      dataset: { type: "string" },
      "class-names": { type: "string" },
      name: { type: "string" },
      "no-accuracy": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.checkpoint || !values.out) {
    throw new TypeError(`--checkpoint and --out are required\n${USAGE}`);
  }
  const dataset = values.dataset;
  if (dataset !== undefined && dataset !== "cifar10" && dataset !== "cifar100") {
    throw new TypeError(`--dataset must be cifar10 or cifar100, got "${dataset}"`);
  }
  await selectBackend({ backend: "cpu" });
  const sidecar = await resolveCheckpoint(values.checkpoint);
  const inputs: [string, string | undefined][] = [
    ["the checkpoint", values.checkpoint],
    ["the checkpoint's sidecar", sidecar],
    ["the spec file", values.spec],
    ["the class names file", values["class-names"]],
  ];
  await refuseOverwritingInput(values.out, inputs);
  const checkpoint = await readCheckpoint(sidecar);
  const slash = sidecar.lastIndexOf("/");
  const weights = `${slash < 0 ? "." : sidecar.slice(0, slash)}/${checkpoint.sidecar.weightsFile}`;
  await refuseOverwritingInput(values.out, [["the checkpoint's weights", weights]]);
  const spec = values.spec
    ? JSON.parse(await Deno.readTextFile(values.spec)) as ModelSpec
    : undefined;
  const classNames = values["class-names"]
    ? (await Deno.readTextFile(values["class-names"])).split("\n").map((s) => s.trim()).filter(
      Boolean,
    )
    : undefined;
  const { bytes, info } = await bundleFromCheckpoint(checkpoint, {
    spec,
    dataset,
    classNames,
    name: values.name,
    accuracy: values["no-accuracy"] ? null : undefined,
  });
  await writeFileAtomic(values.out, bytes);
  const acc = info.accuracy
    ? `${
      (100 * info.accuracy.top1).toFixed(2)
    } % on ${info.accuracy.examples} ${info.accuracy.dataset} ${info.accuracy.split} images`
    : "not recorded";
  console.log(
    [
      `wrote ${values.out} (${(bytes.length / 1e6).toFixed(2)} MB) from ${sidecar}`,
      `  model: ${info.name}`,
      `  parameters: ${info.parameters}`,
      `  classes: ${info.classNames.length} (${info.classNames.slice(0, 3).join(", ")}, ...)`,
      `  accuracy: ${acc}`,
      `  trained on: ${info.backend?.label ?? "unknown (the checkpoint does not record it)"}`,
      `  tensor sha-256: ${info.tensorSha256}`,
    ].join("\n"),
  );
  if (info.backend?.softwareAdapter) {
    console.warn(
      `export: WARNING: this model was trained on a SOFTWARE WebGPU adapter ` +
        `(--allow-software-adapter): a test run; the bundle records it.`,
    );
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`export: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
