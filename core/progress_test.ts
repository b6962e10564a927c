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
