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
