import assert from "node:assert/strict";
import {
  assertNotInput,
  openAtomic,
  OverwriteInputError,
  uniqueTempPath,
  writeFileAtomic,
} from "./atomic_file.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("writeFileAtomic never follows a symlink or file planted at <out>.part", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The old writer opened `<out>.part` with truncate and wrote through a planted link.
    const victim = `${dir}/victim.txt`;
    await Deno.writeTextFile(victim, "precious");
    await Deno.symlink(victim, `${dir}/out.bin.part`);
    await writeFileAtomic(`${dir}/out.bin`, text("new"));
    assert.equal(await Deno.readTextFile(victim), "precious");
    assert.equal(await Deno.readTextFile(`${dir}/out.bin`), "new");
    assert.ok(
      (await Deno.lstat(`${dir}/out.bin.part`)).isSymlink,
      "the planted link is left alone",
    );
    // Nothing else is left behind.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["out.bin", "out.bin.part", "victim.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic: concurrent writers to one path never collide on a shared .part", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out.json`;
    const writers = Array.from({ length: 16 }, (_, i) => writeFileAtomic(path, text(`v${i}`)));
    await Promise.all(writers); // the old fixed `.part` name made some renames fail (ENOENT)
    assert.match(await Deno.readTextFile(path), /^v\d+$/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out.json"]);
    assert.notEqual(uniqueTempPath(path), uniqueTempPath(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an exclusive temp name that exists is an error, not an overwrite", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const w = await openAtomic(`${dir}/a`);
    await assert.rejects(
      Deno.open(w.tempPath, { createNew: true, write: true }),
      Deno.errors.AlreadyExists,
    );
    await w.abort();
    await w.abort();
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic refuses to write over an input (also through a symlink)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/model.safetensors`;
    await Deno.writeTextFile(input, "weights");
    await Deno.symlink(input, `${dir}/alias`);
    for (const out of [input, `${dir}/./model.safetensors`, `${dir}/alias`]) {
      await assert.rejects(
        writeFileAtomic(out, text("x"), { inputs: [input] }),
        (e: unknown) => e instanceof OverwriteInputError && /is the input/.test(e.message),
      );
    }
    assert.equal(await Deno.readTextFile(input), "weights");
    await assertNotInput(`${dir}/missing`, [input]);
    await writeFileAtomic(`${dir}/other`, text("x"), { inputs: [input] });
    // No temporary file is left by the refusals.
    assert.ok(![...Deno.readDirSync(dir)].some((e) => e.name.endsWith(".part")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
