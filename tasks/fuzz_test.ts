import assert from "node:assert/strict";
import { formatFuzzTable, type FuzzRow } from "./fuzz.ts";

const FUZZ = new URL("./fuzz.ts", import.meta.url).pathname;

Deno.test("deno task fuzz: a small run with loopback-only permission rejects every hostile case", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--allow-net=127.0.0.1", // what the task grants: nothing else
      FUZZ,
      "--cases",
      "4",
      "--bomb-mib",
      "64",
      "--seconds",
      "60",
      "--seed",
      "3",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  const rows = text.split("\n").filter((l) => /^\| (image|bundle|HTTP)/.test(l));
  assert.equal(rows.length, 3, text);
  for (const line of rows) {
    const [, , cases, rejected, accepted, unexpected] = line.split("|").map((c) => c.trim());
    assert.ok(Number(cases) > 10, line);
    assert.ok(Number(rejected) > 0, line);
    assert.ok(Number(accepted) >= 1, line); // the valid inputs among the cases were accepted
    assert.equal(Number(unexpected), 0, line);
    assert.equal(Number(cases), Number(rejected) + Number(accepted), line);
    assert.match(line, /\d+ -> \d+ MiB \|$/);
  }
  assert.doesNotMatch(text, /unexpected in/);
});

Deno.test("formatFuzzTable lists unexpected cases under the table", () => {
  const row: FuzzRow = {
    target: "t",
    cases: 3,
    rejected: 1,
    accepted: 1,
    unexpected: 1,
    startRss: 100 * 1024 * 1024,
    peakRss: 150 * 1024 * 1024,
    failures: ["case 2: status 500"],
  };
  const table = formatFuzzTable([row]);
  assert.match(table, /^\| target \| cases \| rejected as expected/);
  assert.match(table, /\| t \| 3 \| 1 \| 1 \| 1 \| 100 -> 150 MiB \|/);
  assert.match(table, /unexpected in t: case 2: status 500/);
});
