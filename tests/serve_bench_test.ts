/**
 * Keeps `tasks/bench_serve.ts` working: a tiny run (16 requests, 2 concurrent, one cold start)
 * must finish, answer every request with 200 and report a flat tensor count. Timings are not
 * asserted (performance claims live in the benchmark's own output).
 */
import assert from "node:assert/strict";

Deno.test("bench:serve runs end to end and reports flat tensors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-bench-test-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        new URL("../tasks/bench_serve.ts", import.meta.url).pathname,
        "--requests",
        "16",
        "--concurrency",
        "2",
        "--cold-starts",
        "1",
        "--width",
        "0.0625",
        "--input",
        "raw",
        "--out",
        `${dir}/bench.json`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /tensors after warm-up and each round: (\d+) \/ \1 \/ \1 \(flat\)/);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/bench.json`));
    assert.equal(json.rounds.length, 2);
    assert.equal(json.rounds[0].requests, 16);
    assert.equal(json.rounds[0].non200, 0);
    assert.ok(json.coldStart.medianFirstAnswerMs >= json.coldStart.medianListenMs);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
