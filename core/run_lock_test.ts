import assert from "node:assert/strict";
import { acquireRunLock, LOCK_FILE, RunLockedError, withRunLock } from "./run_lock.ts";

Deno.test("a second run on a locked folder is refused with the holder named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lock = await acquireRunLock(dir, { command: "deno task train --out runs/a" });
    const info = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
    assert.equal(info.pid, Deno.pid);
    assert.equal(info.command, "deno task train --out runs/a");
    assert.ok(typeof info.hostname === "string" && info.hostname.length > 0);
    assert.ok(!Number.isNaN(Date.parse(info.startedAt)));
    await assert.rejects(acquireRunLock(dir), (e: unknown) => {
      assert.ok(e instanceof RunLockedError);
      assert.equal(e.holder?.pid, Deno.pid);
      assert.match(e.message, new RegExp(`held by pid ${Deno.pid} on .* since .*runs/a`));
      return true;
    });
    await lock.release();
    await lock.release();
    await assert.rejects(Deno.stat(`${dir}/${LOCK_FILE}`), Deno.errors.NotFound);
    assert.equal(await withRunLock(dir, () => Promise.resolve("ok")), "ok");
    await assert.rejects(Deno.stat(`${dir}/${LOCK_FILE}`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stale lock (dead pid on this host) is removed with a message", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A process that has exited: its pid is free (until reused, which is unlikely this soon).
    const child = new Deno.Command("true").spawn();
    const { pid } = child;
    await child.status;
    const stale = {
      pid,
      hostname: Deno.hostname(),
      startedAt: "2020-01-01T00:00:00Z",
      command: "x",
    };
    await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, JSON.stringify(stale));
    const messages: string[] = [];
    const lock = await acquireRunLock(dir, { onStale: (m) => messages.push(m) });
    assert.equal(messages.length, 1);
    assert.match(messages[0], new RegExp(`stale lock .*pid ${pid} .*no longer running`));
    assert.equal(lock.info.pid, Deno.pid);
    await lock.release();

    // A live pid, or a lock from another host, is never broken.
    await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, JSON.stringify({ ...stale, pid: 1 }));
    await assert.rejects(acquireRunLock(dir), /held by pid 1 /);
    await Deno.writeTextFile(
      `${dir}/${LOCK_FILE}`,
      JSON.stringify({ ...stale, hostname: "elsewhere.example" }),
    );
    await assert.rejects(acquireRunLock(dir), /on elsewhere\.example/);
    await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, "garbage");
    await assert.rejects(acquireRunLock(dir), /cannot be read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scoped locks: separate phases run side by side; the whole folder excludes them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const one = await acquireRunLock(dir, { scopes: ["incubate:1"], command: "phase 1" });
    const two = await acquireRunLock(dir, { scopes: ["incubate:2", "incubate:3"] });
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      [".lock.incubate_1", ".lock.incubate_2", ".lock.incubate_3"],
    );
    // A shared scope is refused, and the refused call leaves none of its files behind.
    await assert.rejects(
      acquireRunLock(dir, { scopes: ["incubate:0", "incubate:1"] }),
      /\.lock\.incubate_1 is held by pid \d+ .*\(phase 1\)/,
    );
    await assert.rejects(Deno.stat(`${dir}/.lock.incubate_0`), Deno.errors.NotFound);
    await assert.rejects(acquireRunLock(dir), /\.lock\.incubate_\d is held/);
    await assert.rejects(Deno.stat(`${dir}/${LOCK_FILE}`), Deno.errors.NotFound);
    await one.release();
    await two.release();
    const whole = await acquireRunLock(dir);
    await assert.rejects(acquireRunLock(dir, { scopes: ["finetune"] }), /\.lock is held/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [LOCK_FILE]);
    await whole.release();
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
