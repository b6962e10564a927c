/**
 * The project's one progress bar: a live one-line bar on a terminal, plain periodic lines
 * otherwise (logs, CI). Training shows batches, loss, accuracy, images/s and ETA; transfers
 * (downloads) show MiB, MiB/s and ETA with the same bar (`unit: "bytes"`).
 *
 * @module
 */

/** Where progress text goes. */
export interface ProgressSink {
  /** Whether the sink is an interactive terminal (enables the live bar). */
  readonly isTerminal: boolean;
  /**
   * Writes text as is (no newline added).
   *
   * @param text The text.
   */
  write(text: string): void;
}

/** What {@linkcode ProgressState.done} counts. */
export type ProgressUnit = "items" | "bytes";

/** One progress observation. */
export interface ProgressState {
  /** Label, e.g. `epoch 3/10`. */
  readonly label: string;
  /** Batches done in this epoch (or bytes received, with `unit: "bytes"`). */
  readonly done: number;
  /** Batches per epoch (or bytes in all), if known (enables the bar and the ETA). */
  readonly total?: number;
  /**
   * `"items"` (default): counts as `done/total`. `"bytes"`: percentage, `MiB` and `MiB/s`
   * (computed from `done` and `seconds`).
   */
  readonly unit?: ProgressUnit;
  /** Running mean loss of the epoch. */
  readonly loss?: number;
  /** Running accuracy in [0, 1], if the loss reports one. */
  readonly accuracy?: number;
  /** Throughput. */
  readonly imagesPerSecond?: number;
  /** Seconds since the epoch started. */
  readonly seconds: number;
}

/**
 * Formats seconds as `m:ss` or `h:mm:ss`.
 *
 * @param seconds Non-negative seconds.
 * @returns The duration text (`?` if not finite).
 * @example
 * ```ts
 * import { formatDuration } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(formatDuration(75), "1:15");
 * assert.equal(formatDuration(3725), "1:02:05");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Formats one progress line (no newline): label, optional bar, counts, loss, accuracy, images/s
 * and ETA.
 *
 * @param state The observation.
 * @param barWidth Characters of the bar (0 for none).
 * @returns The line.
 * @example
 * ```ts
 * import { formatProgress } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const line = formatProgress({ label: "epoch 1/2", done: 5, total: 10, loss: 1.5, seconds: 10 }, 10);
 * assert.equal(line, "epoch 1/2 [=====     ] 5/10 loss 1.5000 ETA 0:10");
 * ```
 */
export function formatProgress(state: ProgressState, barWidth = 24): string {
  const parts = [state.label];
  const total = state.total;
  if (total !== undefined && total > 0 && barWidth > 0) {
    const filled = Math.min(barWidth, Math.round((state.done / total) * barWidth));
    parts.push(`[${"=".repeat(filled)}${" ".repeat(barWidth - filled)}]`);
  }
  if (state.unit === "bytes") {
    const mib = (bytes: number) => (bytes / MIB).toFixed(1);
    if (total !== undefined && total > 0) {
      parts.push(`${Math.floor((100 * Math.min(state.done, total)) / total)}%`);
      parts.push(`${mib(state.done)}/${mib(total)} MiB`);
    } else parts.push(`${mib(state.done)} MiB`);
    parts.push(`${mib(state.done / Math.max(1e-3, state.seconds))} MiB/s`);
  } else parts.push(total !== undefined ? `${state.done}/${total}` : `${state.done}`);
  if (state.loss !== undefined) parts.push(`loss ${state.loss.toFixed(4)}`);
  if (state.accuracy !== undefined) parts.push(`acc ${(100 * state.accuracy).toFixed(1)}%`);
  if (state.imagesPerSecond !== undefined) {
    parts.push(`${state.imagesPerSecond.toFixed(1)} img/s`);
  }
  if (total !== undefined && state.done > 0 && state.done < total) {
    parts.push(`ETA ${formatDuration((state.seconds / state.done) * (total - state.done))}`);
  }
  return parts.join(" ");
}

const MIB = 1024 * 1024;

/** Options of {@linkcode ProgressReporter}. */
export interface ProgressReporterOptions {
  /** Output (default: standard output, live bar if it is a terminal). */
  readonly sink?: ProgressSink;
  /** Seconds between plain lines when the sink is not a terminal (default 30). */
  readonly intervalSeconds?: number;
  /**
   * When the sink is not a terminal and the total is known, print a plain line each time another
   * `lineFraction` of the total is done (e.g. 0.1: at 0 %, 10 %, ..., 100 %) instead of every
   * `intervalSeconds`. In (0, 1]; default: off.
   */
  readonly lineFraction?: number;
  /** Seconds between live-bar redraws (default 0.1). */
  readonly redrawSeconds?: number;
}

/**
 * The default sink: standard output.
 *
 * @returns A sink writing to `Deno.stdout`.
 */
export function stdoutSink(): ProgressSink {
  return streamSink(Deno.stdout);
}

/**
 * A sink on standard error (progress of downloads, so that standard output stays data).
 *
 * @returns A sink writing to `Deno.stderr`.
 */
export function stderrSink(): ProgressSink {
  return streamSink(Deno.stderr);
}

function streamSink(stream: typeof Deno.stdout | typeof Deno.stderr): ProgressSink {
  const encoder = new TextEncoder();
  let isTerminal = false;
  try {
    isTerminal = stream.isTerminal();
  } catch {
    // Not a terminal when it cannot be asked.
  }
  return {
    isTerminal,
    write(text: string): void {
      const bytes = encoder.encode(text);
      let off = 0;
      while (off < bytes.length) off += stream.writeSync(bytes.subarray(off));
    },
  };
}

/**
 * Shows progress: redraws one line in place on a terminal, prints a plain line every
 * `intervalSeconds` otherwise; {@linkcode ProgressReporter.line} prints a permanent line (e.g. the
 * epoch summary) without garbling the bar.
 *
 * @example
 * ```ts
 * import { ProgressReporter } from "@mfi/core";
 * import assert from "node:assert/strict";
 * let text = "";
 * const p = new ProgressReporter({
 *   sink: { isTerminal: false, write: (s: string) => (text += s) },
 * });
 * p.update({ label: "epoch 1/1", done: 1, total: 2, seconds: 1 }, 0);
 * p.line("done");
 * assert.equal(text, "epoch 1/1 [============            ] 1/2 ETA 0:01\ndone\n");
 * ```
 */
export class ProgressReporter {
  readonly #sink: ProgressSink;
  readonly #interval: number;
  readonly #redraw: number;
  readonly #fraction: number | undefined;
  #last = -Infinity;
  #lastStep = -1;
  #barShown = false;

  /**
   * Creates a reporter.
   *
   * @param options Sink, intervals and the plain-line fraction.
   * @throws {RangeError} If `lineFraction` is not in (0, 1].
   */
  constructor(options: ProgressReporterOptions = {}) {
    this.#sink = options.sink ?? stdoutSink();
    this.#interval = options.intervalSeconds ?? 30;
    this.#redraw = options.redrawSeconds ?? 0.1;
    const f = options.lineFraction;
    if (f !== undefined && !(typeof f === "number" && f > 0 && f <= 1)) {
      throw new RangeError(`ProgressReporter: lineFraction must be in (0, 1], got ${f}`);
    }
    this.#fraction = f;
  }

  /**
   * Reports progress; throttled by time.
   *
   * @param state The observation.
   * @param now Current time in seconds (default `performance.now() / 1000`).
   */
  update(state: ProgressState, now: number = performance.now() / 1000): void {
    const final = state.total !== undefined && state.done >= state.total;
    if (this.#sink.isTerminal) {
      if (!final && now - this.#last < this.#redraw) return;
      this.#last = now;
      this.#sink.write(`\r\x1b[2K${formatProgress(state)}`);
      this.#barShown = true;
    } else {
      const total = state.total;
      if (this.#fraction !== undefined && total !== undefined && total > 0) {
        const step = Math.floor(Math.min(state.done, total) / total / this.#fraction + 1e-9);
        if (step <= this.#lastStep) return;
        this.#lastStep = step;
      } else {
        if (now - this.#last < this.#interval) return;
        this.#last = now;
      }
      this.#sink.write(`${formatProgress(state)}\n`);
    }
  }

  /**
   * Ends the live bar's line, if one is shown, so that what follows (an error) starts on its own
   * line; the bar stays visible.
   */
  endLine(): void {
    if (this.#barShown) this.#sink.write("\n");
    this.#barShown = false;
  }

  /**
   * Prints a permanent line, clearing the live bar first.
   *
   * @param text The line (no newline).
   */
  line(text: string): void {
    if (this.#barShown) this.#sink.write("\r\x1b[2K");
    this.#barShown = false;
    this.#sink.write(`${text}\n`);
  }

  /** Resets the plain-line timer (call at the start of an epoch). */
  reset(): void {
    this.#last = -Infinity;
    this.#lastStep = -1;
  }
}
