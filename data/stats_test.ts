import assert from "node:assert/strict";
import { Rng } from "@mfi/core";
import type { CifarSplit } from "./load.ts";
import { channelStats, classCounts } from "./stats.ts";

Deno.test("channelStats: matches a two-pass float64 reference", () => {
  const rng = new Rng(2);
  const images = Uint8Array.from(
    { length: 5 * 3072 },
    (_, i) => (i % 3 === 1 ? 200 : rng.int(256)),
  );
  const { mean, std } = channelStats({ count: 5, images } as CifarSplit);
  for (let c = 0; c < 3; c++) {
    const values = [...images].filter((_, i) => i % 3 === c).map((v) => v / 255);
    const m = values.reduce((s, v) => s + v, 0) / values.length;
    const sd = Math.sqrt(values.reduce((s, v) => s + (v - m) ** 2, 0) / values.length);
    assert.ok(Math.abs(mean[c] - m) < 1e-12);
    assert.ok(Math.abs(std[c] - sd) < 1e-9);
  }
  assert.equal(std[1], 0);
  assert.throws(
    () => channelStats({ count: 0, images: new Uint8Array() } as CifarSplit),
    /no images/,
  );
});

Deno.test("classCounts: one count per class name", () => {
  const split = { count: 4, labels: Uint8Array.of(1, 1, 3, 0), classNames: ["a", "b", "c", "d"] };
  assert.deepEqual([...classCounts(split as unknown as CifarSplit)], [1, 2, 0, 1]);
});
