import assert from "node:assert/strict";
import { createProgress } from "./_progress.ts";

Deno.test("progress: lines every 10%, bar redrawn in place, none silent", () => {
  const out: string[] = [];
  const lines = createProgress("x.tar.gz", 1000, "lines", (t) => out.push(t));
  for (let r = 0; r <= 1000; r += 50) lines.update(r);
  lines.done();
  assert.deepEqual(
    out.map((l) => l.split(" (")[0]),
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map((p) => `x.tar.gz: ${p}%`),
  );
  assert.ok(out.every((l) => l.endsWith("\n")));
  const bar: string[] = [];
  const b = createProgress("x", 100, "bar", (t) => bar.push(t));
  b.update(50);
  b.done();
  assert.ok(bar[0].startsWith(`\rx [${"#".repeat(15)}${" ".repeat(15)}]  50% `), bar[0]);
  assert.ok(bar.at(-1)!.endsWith("done\x1b[K\n"));
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
