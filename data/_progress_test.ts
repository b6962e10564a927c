import assert from "node:assert/strict";
import { createProgress } from "./_progress.ts";

Deno.test("progress: lines every 10%, bar redrawn in place, none silent", () => {
  const out: string[] = [];
  const lines = createProgress("x.tar.gz", 1000, "lines", (t) => out.push(t));
  for (let r = 0; r <= 1000; r += 50) lines.update(r);
  lines.done();
  assert.deepEqual(
    out.map((l) => l.split(" MiB")[0].replace(/ \[[= ]*\]/, "").split(" ").slice(0, 2).join(" ")),
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map((p) => `x.tar.gz ${p}%`),
  );
  assert.ok(out.every((l) => l.endsWith("\n") && !l.includes("\r")));
  const bar: string[] = [];
  const b = createProgress("x", 100, "bar", (t) => bar.push(t));
  b.update(50);
  b.done();
  assert.ok(bar[0].startsWith(`\r\x1b[2Kx [${"=".repeat(12)}${" ".repeat(12)}] 50% `), bar[0]);
  assert.ok(bar.at(-1)!.endsWith(" done\n"));
  assert.ok(bar.at(-1)!.startsWith("x [") && bar.at(-2) === "\r\x1b[2K", "done clears the bar");
  const aborted: string[] = [];
  const a = createProgress("x", 100, "bar", (t) => aborted.push(t));
  a.update(10);
  a.abort();
  assert.equal(aborted.at(-1), "\n");
  const none: string[] = [];
  const n = createProgress("x", 100, "none", (t) => none.push(t));
  n.update(100);
  n.done();
  assert.equal(none.length, 0);
});

Deno.test("progress: an unknown size prints MiB received and a done line", () => {
  const out: string[] = [];
  const p = createProgress("y", undefined, "lines", (t) => out.push(t));
  p.update(3 * 1024 * 1024);
  p.done();
  assert.match(out[0], /^y 3\.0 MiB [\d.]+ MiB\/s\n$/);
  assert.match(out.at(-1)!, /^y 3\.0 MiB [\d.]+ MiB\/s done\n$/);
  const silent: string[] = [];
  createProgress("z", 10, "lines", (t) => silent.push(t)).abort();
  assert.equal(silent.length, 0, "abort without a bar writes nothing");
});
