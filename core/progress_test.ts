import assert from "node:assert/strict";
import { formatDuration, formatProgress, ProgressReporter } from "./progress.ts";

Deno.test("formatProgress shows bar, counts, loss, accuracy, throughput and ETA", () => {
  const line = formatProgress(
    {
      label: "epoch 2/5",
      done: 30,
      total: 120,
      loss: 0.12345,
      accuracy: 0.5,
      imagesPerSecond: 640,
      seconds: 6,
    },
    8,
  );
  assert.equal(line, "epoch 2/5 [==      ] 30/120 loss 0.1235 acc 50.0% 640.0 img/s ETA 0:18");
  assert.equal(formatProgress({ label: "e", done: 3, seconds: 1 }, 8), "e 3");
  assert.equal(formatDuration(NaN), "?");
  assert.equal(formatDuration(59.6), "1:00");
});

Deno.test("ProgressReporter redraws in place on a terminal and prints throttled lines otherwise", () => {
  let tty = "";
  const live = new ProgressReporter({ sink: { isTerminal: true, write: (s) => (tty += s) } });
  live.update({ label: "a", done: 1, total: 4, seconds: 1 }, 0);
  live.update({ label: "a", done: 2, total: 4, seconds: 2 }, 0.01); // throttled
  live.update({ label: "a", done: 4, total: 4, seconds: 4 }, 0.02); // final: always drawn
  live.line("summary");
  assert.equal(tty.split("\r\x1b[2K").length - 1, 3);
  assert.ok(tty.endsWith("\r\x1b[2Ksummary\n"));
  assert.ok(!tty.includes("2/4"));

  let log = "";
  const plain = new ProgressReporter({
    sink: { isTerminal: false, write: (s) => (log += s) },
    intervalSeconds: 10,
  });
  for (let t = 0; t <= 25; t++) plain.update({ label: "b", done: t, total: 100, seconds: t }, t);
  assert.equal(log.trim().split("\n").length, 3); // t = 0, 10, 20
  assert.ok(!log.includes("\r"));
});

Deno.test("formatProgress shows bytes as percent, MiB and MiB/s", () => {
  const MiB = 1024 * 1024;
  assert.equal(
    formatProgress({ label: "f", done: 2 * MiB, total: 8 * MiB, unit: "bytes", seconds: 1 }, 4),
    "f [=   ] 25% 2.0/8.0 MiB 2.0 MiB/s ETA 0:03",
  );
  assert.equal(
    formatProgress({ label: "f", done: MiB, unit: "bytes", seconds: 2 }, 4),
    "f 1.0 MiB 0.5 MiB/s",
  );
});

Deno.test("ProgressReporter prints a plain line per lineFraction and ends a live bar's line", () => {
  let log = "";
  const plain = new ProgressReporter({
    sink: { isTerminal: false, write: (s) => (log += s) },
    lineFraction: 0.25,
  });
  for (let d = 0; d <= 100; d += 5) {
    plain.update({ label: "c", done: d, total: 100, seconds: 1 }, 0);
  }
  assert.deepEqual(
    log.trim().split("\n").map((l) => l.match(/ (\d+)\/100/)?.[1]),
    ["0", "25", "50", "75", "100"],
  );
  for (const lineFraction of [0, -0.1, 1.5, NaN]) {
    assert.throws(() => new ProgressReporter({ lineFraction }), /lineFraction must be in \(0, 1\]/);
  }
  let tty = "";
  const live = new ProgressReporter({ sink: { isTerminal: true, write: (s) => (tty += s) } });
  live.endLine();
  assert.equal(tty, "", "no bar shown: nothing to end");
  live.update({ label: "a", done: 1, total: 4, seconds: 1 }, 0);
  live.endLine();
  assert.ok(tty.endsWith("\n"));
});
