import assert from "node:assert/strict";
import { linePlotSvg } from "./plot_svg.ts";

function polylines(svg: string): Array<Array<[number, number]>> {
  return [...svg.matchAll(/<polyline[^>]* points="([^"]*)"/g)].map((m) =>
    m[1].split(" ").map((p) => p.split(",").map(Number) as [number, number])
  );
}

Deno.test("linePlotSvg maps data to the plot area: x left to right, y bottom to top", () => {
  const svg = linePlotSvg(
    [{ name: "test acc", points: [[1, 0], [2, 0.5], [3, 1]] }],
    { width: 400, height: 300, yRange: [0, 1] },
  );
  // Plot area: x from 64 to 400-16=384, y from 36 to 300-48=252.
  assert.deepEqual(polylines(svg), [[[64, 252], [224, 144], [384, 36]]]);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="400" height="300"/);
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  for (const tick of ["0", "0.2", "0.4", "0.6", "0.8", "1"]) {
    assert.match(svg, new RegExp(`dominant-baseline="middle">${tick}</text>`));
  }
});

Deno.test("linePlotSvg: several series, skipped non-finite points, escaping, single points", () => {
  const svg = linePlotSvg([
    { name: "a<b & c", points: [[1, 2], [2, NaN], [3, 4]] },
    { name: "single", points: [[2, 3]], color: "black" },
  ], { title: 'x "y"', xLabel: "epoch", yLabel: "accuracy" });
  const lines = polylines(svg);
  assert.equal(lines.length, 1); // a single point draws a dot, no line
  assert.equal(lines[0].length, 2);
  assert.equal((svg.match(/<circle/g) ?? []).length, 3);
  assert.match(svg, /a&lt;b &amp; c/);
  assert.match(svg, /x &quot;y&quot;/);
  assert.match(svg, /stroke="black"/);
  assert.ok(!svg.includes("NaN"));
  // One x value only, constant y: still a valid plot.
  assert.doesNotMatch(linePlotSvg([{ name: "s", points: [[5, 1]] }]), /NaN|Infinity/);
});

Deno.test("linePlotSvg rejects empty data and invalid sizes", () => {
  assert.throws(() => linePlotSvg([]), /no finite points/);
  assert.throws(() => linePlotSvg([{ name: "s", points: [[NaN, 1]] }]), /no finite points/);
  assert.throws(() => linePlotSvg([{ name: "s", points: [[1, 1]] }], { width: 10 }), /width/);
  assert.throws(
    () => linePlotSvg([{ name: "s", points: [[1, 1]] }], { yRange: [1, 0] }),
    /yRange/,
  );
});

/** The legend's frame: the rect drawn with the legend's light stroke. */
function legendBox(svg: string): { x: number; y: number; w: number; h: number } {
  const m = svg.match(
    /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="white" fill-opacity/,
  );
  assert.ok(m, "no legend");
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

function circles(svg: string): Array<[number, number]> {
  return [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((
    m,
  ) => [Number(m[1]), Number(m[2])]);
}

function frameRect(svg: string): { x: number; y: number; w: number; h: number } {
  const m = svg.match(
    /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/,
  )!;
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

Deno.test("linePlotSvg: the legend covers no data point, inside a free corner or below the plot", () => {
  // A rising line leaves the top-left corner free.
  const rising = linePlotSvg([{ name: "acc", points: [[1, 1], [2, 2], [3, 3], [4, 4]] }]);
  const a = legendBox(rising);
  const fa = frameRect(rising);
  assert.ok(a.x >= fa.x && a.y >= fa.y && a.y + a.h <= fa.y + fa.h, "inside the plot");
  // Lines through all four corners: the legend goes below the plot area.
  const crossing = linePlotSvg([
    { name: "up", points: [[1, 0], [2, 1]] },
    { name: "down", points: [[1, 1], [2, 0]] },
  ]);
  const b = legendBox(crossing);
  const fb = frameRect(crossing);
  assert.ok(b.y >= fb.y + fb.h, `legend at y ${b.y} is below the plot (ends at ${fb.y + fb.h})`);
  for (const svg of [rising, crossing]) {
    const box = legendBox(svg);
    for (const [x, y] of circles(svg)) {
      const inside = x >= box.x && x <= box.x + box.w && y >= box.y && y <= box.y + box.h;
      assert.ok(!inside, `point (${x}, ${y}) under the legend`);
    }
  }
});

Deno.test("linePlotSvg: a series of one point is labelled beside it; pointLabels label any point", () => {
  const svg = linePlotSvg([
    { name: "baseline", points: [[0.37, 49.3]] },
    { name: "meta", points: [[0.19, 24.2]] },
    { name: "curve", points: [[0.2, 30], [0.3, 40]], pointLabels: ["", "end"] },
  ]);
  for (const label of ["baseline", "meta", "end"]) {
    assert.match(svg, new RegExp(`dominant-baseline="middle" fill="[^"]+">${label}</text>`), label);
  }
  assert.doesNotMatch(svg, /fill="[^"]+">curve<\/text>/, "a multi-point series is not labelled");
  // Points only: both extremes sit off the frame.
  const frame = frameRect(svg);
  for (const [x] of circles(svg)) assert.ok(x > frame.x + 4 && x < frame.x + frame.w - 4);
});

Deno.test("linePlotSvg: integer ticks on an integer axis, also over a short range", () => {
  const tickValues = (svg: string, axis: "x" | "y") =>
    [...svg.matchAll(
      axis === "y"
        ? /text-anchor="end" dominant-baseline="middle">([^<]+)</g
        : /<text x="[\d.]+" y="[\d.]+" text-anchor="middle">([-\d.]+)</g,
    )].map((m) => Number(m[1]));
  const stages = linePlotSvg([{ name: "fit", points: [[1, 0.4], [2, 0.5], [3, 0.6], [4, 0.45]] }]);
  assert.deepEqual(tickValues(stages, "x"), [1, 2, 3, 4]);
  const epochs = linePlotSvg([{ name: "acc", points: [[1, 20.5], [2, 30.25]] }]);
  assert.ok(tickValues(epochs, "x").every(Number.isInteger), `${tickValues(epochs, "x")}`);
  // A real-valued axis keeps fractional ticks; integer y data gets integer y ticks.
  const counts = linePlotSvg([{ name: "n", points: [[0.5, 1], [1.5, 2], [2.5, 3]] }]);
  assert.ok(tickValues(counts, "x").some((t) => !Number.isInteger(t)));
  assert.ok(tickValues(counts, "y").every(Number.isInteger), `${tickValues(counts, "y")}`);
  // The option overrides the guess.
  const forced = linePlotSvg([{ name: "n", points: [[1, 1], [2, 2]] }], { xInteger: false });
  assert.ok(tickValues(forced, "x").some((t) => !Number.isInteger(t)));
});
