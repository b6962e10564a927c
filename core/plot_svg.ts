/**
 * A small dependency-free SVG line plot (e.g. test accuracy per epoch) for run reports.
 *
 * @module
 */

/** One line of a plot. */
export interface PlotSeries {
  /** Legend label. */
  readonly name: string;
  /** Points as [x, y]; points with a non-finite coordinate are skipped. */
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** Stroke colour (default: from a fixed palette). */
  readonly color?: string;
}

/** Options of {@linkcode linePlotSvg}. */
export interface LinePlotOptions {
  /** Title above the plot. */
  readonly title?: string;
  /** Label of the x axis. */
  readonly xLabel?: string;
  /** Label of the y axis. */
  readonly yLabel?: string;
  /** Width in pixels (default 640). */
  readonly width?: number;
  /** Height in pixels (default 400). */
  readonly height?: number;
  /** Fixed y range (default: the data's range with 5 % margin). */
  readonly yRange?: readonly [number, number];
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const MARGIN = { left: 64, right: 16, top: 36, bottom: 48 };

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** Round numbers for ticks: 1, 2 or 5 times a power of ten. */
function ticks(lo: number, hi: number, count: number): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function fmt(v: number): string {
  return Number(v.toFixed(2)).toString();
}

/**
 * Renders series as an SVG line plot with axes, ticks, labels and a legend.
 *
 * @param series The lines; at least one finite point overall.
 * @param options Title, axis labels, size and y range.
 * @returns The SVG document.
 * @throws {RangeError} If there is no finite point, or the size or range is invalid.
 * @example
 * ```ts
 * import { linePlotSvg } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const svg = linePlotSvg([{ name: "test", points: [[1, 0.5], [2, 0.7], [3, 0.8]] }], {
 *   title: "Test accuracy",
 *   xLabel: "epoch",
 * });
 * assert.ok(svg.startsWith("<svg"));
 * assert.match(svg, /<polyline/);
 * ```
 */
export function linePlotSvg(
  series: readonly PlotSeries[],
  options: LinePlotOptions = {},
): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  for (const [key, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isFinite(v) || v < 200) {
      throw new RangeError(`linePlotSvg: ${key} must be a number >= 200, got ${v}`);
    }
  }
  const clean = series.map((s) => ({
    ...s,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  }));
  const all = clean.flatMap((s) => s.points);
  if (all.length === 0) {
    throw new RangeError("linePlotSvg: no finite points to plot; pass at least one [x, y] pair");
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let y0: number, y1: number;
  if (options.yRange) {
    [y0, y1] = options.yRange;
    if (!(Number.isFinite(y0) && Number.isFinite(y1) && y1 > y0)) {
      throw new RangeError(`linePlotSvg: yRange must be [low, high] with high > low`);
    }
  } else {
    [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
    const pad = y1 > y0 ? (y1 - y0) * 0.05 : Math.max(Math.abs(y0) * 0.05, 1e-3);
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const pw = width - MARGIN.left - MARGIN.right;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const sx = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  if (options.title) {
    out.push(
      `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${
        escapeXml(options.title)
      }</text>`,
    );
  }
  for (const t of ticks(y0, y1, 5)) {
    const y = fmt(sy(t));
    out.push(
      `<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        Number(t.toPrecision(6))
      }</text>`,
    );
  }
  for (const t of ticks(x0, x1, 8)) {
    const x = fmt(sx(t));
    out.push(
      `<text x="${x}" y="${height - MARGIN.bottom + 16}" text-anchor="middle">${
        Number(t.toPrecision(6))
      }</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`,
  );
  if (options.xLabel) {
    out.push(
      `<text x="${MARGIN.left + pw / 2}" y="${height - 10}" text-anchor="middle">${
        escapeXml(options.xLabel)
      }</text>`,
    );
  }
  if (options.yLabel) {
    out.push(
      `<text x="14" y="${MARGIN.top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${
        MARGIN.top + ph / 2
      })">${escapeXml(options.yLabel)}</text>`,
    );
  }
  clean.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    const pts = s.points.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`).join(" ");
    if (s.points.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
    }
    for (const [x, y] of s.points) {
      out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.5" fill="${color}"/>`);
    }
    const ly = MARGIN.top + 14 + 16 * i;
    out.push(
      `<line x1="${MARGIN.left + 10}" x2="${
        MARGIN.left + 28
      }" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${MARGIN.left + 34}" y="${ly}" dominant-baseline="middle">${
        escapeXml(s.name)
      }</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
