/**
 * A small dependency-free SVG line and point plot (e.g. test accuracy per epoch, accuracy against
 * parameters) for run reports. Made to be read at a glance: the legend sits in a corner of the
 * plot that no data crosses, else below it; a series of a single point is labelled
 * beside the point; an axis whose values are all integers gets integer ticks only.
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
  /**
   * A text beside each point, in the order of `points` (empty string: none). Default: a series
   * of one point is labelled with its `name`, others are not.
   */
  readonly pointLabels?: readonly string[];
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
  /** Integer ticks only on the x axis (default: when every x value is an integer). */
  readonly xInteger?: boolean;
  /** Integer ticks only on the y axis (default: when every y value is an integer). */
  readonly yInteger?: boolean;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const MARGIN = { left: 64, right: 16, top: 36, bottom: 48 };

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** Round numbers for ticks: 1, 2 or 5 times a power of ten (at least 1 on an integer axis). */
function ticks(lo: number, hi: number, count: number, integer = false): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  if (integer) step = Math.max(1, Math.round(step));
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
  const clean = series.map((s) => {
    const kept = s.points
      .map((p, i) => ({ p, label: s.pointLabels?.[i] ?? "" }))
      .filter(({ p: [x, y] }) => Number.isFinite(x) && Number.isFinite(y));
    return {
      ...s,
      points: kept.map((k) => k.p),
      labels: s.pointLabels !== undefined
        ? kept.map((k) => k.label)
        : kept.length === 1
        ? [s.name]
        : kept.map(() => ""),
    };
  });
  const all = clean.flatMap((s) => s.points);
  if (all.length === 0) {
    throw new RangeError("linePlotSvg: no finite points to plot; pass at least one [x, y] pair");
  }
  const xInteger = options.xInteger ?? all.every(([x]) => Number.isInteger(x));
  const yInteger = options.yInteger ?? all.every(([, y]) => Number.isInteger(y));
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  else if (clean.some((s) => s.points.length === 1)) {
    // Single (labelled) points: keep them off the frame.
    const pad = (x1 - x0) * (clean.every((s) => s.points.length <= 1) ? 0.08 : 0.03);
    [x0, x1] = [x0 - pad, x1 + pad];
  }
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
  const named = clean.filter((s) => s.name !== "");
  const legendW = 44 + Math.max(0, ...named.map((s) => textWidth(s.name)));
  const legendH = 8 + 16 * named.length;
  // Try the plot area's four corners for the legend; else put it outside, below the plot.
  let bottom = MARGIN.bottom;
  let legend: { x: number; y: number } | undefined;
  const frame = () => {
    const pw = width - MARGIN.left - MARGIN.right;
    const ph = height - MARGIN.top - bottom;
    const sx = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * pw;
    const sy = (y: number): number => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * ph;
    return { pw, ph, sx, sy };
  };
  let f = frame();
  const labelBoxes = (sx: (x: number) => number, sy: (y: number) => number) =>
    placeLabels(clean, sx, sy, MARGIN.left, MARGIN.left + f.pw);
  if (named.length > 0) {
    const boxes = labelBoxes(f.sx, f.sy).map((l) => l.box);
    const corners = [
      { x: MARGIN.left + 6, y: MARGIN.top + 6 },
      { x: MARGIN.left + f.pw - legendW - 6, y: MARGIN.top + 6 },
      { x: MARGIN.left + f.pw - legendW - 6, y: MARGIN.top + f.ph - legendH - 6 },
      { x: MARGIN.left + 6, y: MARGIN.top + f.ph - legendH - 6 },
    ];
    legend = corners.find((c) =>
      legendW + 12 <= f.pw && legendH + 12 <= f.ph &&
      !clean.some((s) =>
        crosses(s.points.map(([x, y]) => [f.sx(x), f.sy(y)]), c, legendW, legendH)
      ) &&
      !boxes.some((b) => overlaps(b, { x: c.x, y: c.y, w: legendW, h: legendH }))
    );
    if (legend === undefined) {
      bottom = Math.min(MARGIN.bottom + legendH + 6, Math.floor(height * 0.45));
      f = frame();
      legend = { x: MARGIN.left, y: height - legendH - 4 };
    }
  }
  const { pw, ph, sx, sy } = f;
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
  for (const t of ticks(y0, y1, 5, yInteger)) {
    const y = fmt(sy(t));
    out.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        Number(t.toPrecision(6))
      }</text>`,
    );
  }
  for (const t of ticks(x0, x1, 8, xInteger)) {
    const x = fmt(sx(t));
    out.push(
      `<text x="${x}" y="${height - bottom + 16}" text-anchor="middle">${
        Number(t.toPrecision(6))
      }</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`,
  );
  if (options.xLabel) {
    out.push(
      `<text x="${MARGIN.left + pw / 2}" y="${height - bottom + 38}" text-anchor="middle">${
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
    const r = s.points.length === 1 ? 4 : 2.5;
    for (const [x, y] of s.points) {
      out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="${r}" fill="${color}"/>`);
    }
  });
  for (const l of labelBoxes(sx, sy)) {
    out.push(
      `<text x="${fmt(l.x)}" y="${
        fmt(l.y)
      }" text-anchor="${l.anchor}" dominant-baseline="middle" ` +
        `fill="${escapeXml(l.color)}">${escapeXml(l.text)}</text>`,
    );
  }
  if (legend !== undefined) {
    out.push(
      `<rect x="${fmt(legend.x)}" y="${fmt(legend.y)}" width="${legendW}" height="${legendH}" ` +
        `fill="white" fill-opacity="0.9" stroke="#bbb"/>`,
    );
    named.forEach((s, i) => {
      const color = escapeXml(s.color ?? PALETTE[clean.indexOf(s) % PALETTE.length]);
      const ly = legend!.y + 12 + 16 * i;
      out.push(
        `<line x1="${fmt(legend!.x + 8)}" x2="${fmt(legend!.x + 26)}" y1="${fmt(ly)}" ` +
          `y2="${fmt(ly)}" stroke="${color}" stroke-width="2"/>`,
        `<text x="${fmt(legend!.x + 32)}" y="${fmt(ly)}" dominant-baseline="middle">${
          escapeXml(s.name)
        }</text>`,
      );
    });
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Approximate width in pixels of 12 px sans-serif text. */
function textWidth(text: string): number {
  return Math.ceil(text.length * 7.2);
}

interface Box {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** True if a polyline (or its points) comes within `pad` px of the box at (x, y). */
function crosses(
  pts: ReadonlyArray<readonly [number, number]>,
  at: { x: number; y: number },
  w: number,
  h: number,
  pad = 4,
): boolean {
  const inside = ([px, py]: readonly [number, number]) =>
    px >= at.x - pad && px <= at.x + w + pad && py >= at.y - pad && py <= at.y + h + pad;
  if (pts.some(inside)) return true;
  for (let i = 1; i < pts.length; i++) {
    const [ax, ay] = pts[i - 1];
    const [bx, by] = pts[i];
    for (let k = 1; k < 32; k++) {
      if (inside([ax + ((bx - ax) * k) / 32, ay + ((by - ay) * k) / 32])) return true;
    }
  }
  return false;
}

/** Positions of point labels: beside the point where no line or earlier label is, else below. */
function placeLabels(
  series: ReadonlyArray<
    & {
      readonly points: ReadonlyArray<readonly [number, number]>;
      readonly labels: readonly string[];
    }
    & { readonly color?: string }
  >,
  sx: (x: number) => number,
  sy: (y: number) => number,
  plotLeft: number,
  plotRight: number,
): Label[] {
  const lines = series.map((s) => s.points.map(([x, y]) => [sx(x), sy(y)] as const));
  const placed: Label[] = [];
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    s.points.forEach(([px, py], j) => {
      const text = s.labels[j];
      if (!text) return;
      const w = textWidth(text);
      const cx = sx(px);
      const cy = sy(py);
      const fitsRight = cx + 8 + w <= plotRight - 2;
      const fitsLeft = cx - 8 - w >= plotLeft + 2;
      const candidates: { dx: number; dy: number; anchor: "start" | "end" }[] = [];
      for (const [fits, dx, anchor] of [[fitsRight, 8, "start"], [fitsLeft, -8, "end"]] as const) {
        if (fits) { for (const dy of [0, -12, 12, -24, 24]) candidates.push({ dx, dy, anchor }); }
      }
      if (candidates.length === 0) candidates.push({ dx: 8, dy: 0, anchor: "start" });
      const at = (c: { dx: number; dy: number; anchor: "start" | "end" }) => {
        const x = cx + c.dx;
        const y = cy + c.dy;
        const box = { x: c.anchor === "start" ? x : x - w, y: y - 7, w, h: 14 };
        return { x, y, anchor: c.anchor, text, color, box };
      };
      const free = (l: Label) =>
        !placed.some((p) => overlaps(p.box, l.box)) &&
        !lines.some((pts) => pts.length > 1 && crosses(pts, l.box, l.box.w, l.box.h, 1));
      let label = candidates.map(at).find(free);
      if (label === undefined) {
        label = at(candidates[0]);
        while (placed.some((p) => overlaps(p.box, label!.box))) {
          label = { ...label, y: label.y + 14, box: { ...label.box, y: label.box.y + 14 } };
        }
      }
      placed.push(label);
    });
  });
  return placed;
}

interface Label {
  readonly x: number;
  readonly y: number;
  readonly anchor: "start" | "end";
  readonly text: string;
  readonly color: string;
  readonly box: Box;
}
