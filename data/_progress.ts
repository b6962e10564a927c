/**
 * Download progress on `@mfi/core`'s one progress bar: a redrawn bar on a terminal, a plain line
 * every 10 % otherwise (every 5 s when the size is unknown).
 *
 * @module
 */
import { formatProgress, ProgressReporter, type ProgressState, stderrSink } from "@mfi/core";

/** How to show download progress: a bar on a terminal (`"auto"`), always a bar, plain lines, or nothing. */
export type ProgressMode = "auto" | "bar" | "lines" | "none";

/** A progress reporter for one transfer. */
export interface Progress {
  /** Reports the bytes received so far. */
  update(received: number): void;
  /** Prints the final line. */
  done(): void;
  /** Ends the bar's line after a failure so the error starts on its own line. */
  abort(): void;
}

const SILENT: Progress = Object.freeze({ update() {}, done() {}, abort() {} });

/**
 * Progress of one transfer.
 *
 * @param label What is transferred (the file name).
 * @param total Its size in bytes, if known.
 * @param mode Bar, lines, none, or a bar when standard error is a terminal (`"auto"`).
 * @param write Output (default: standard error).
 * @returns The reporter.
 */
export function createProgress(
  label: string,
  total: number | undefined,
  mode: ProgressMode,
  write?: (text: string) => void,
): Progress {
  if (mode === "none") return SILENT;
  const stderr = stderrSink();
  const isTerminal = mode === "bar" || (mode === "auto" && stderr.isTerminal);
  const reporter = new ProgressReporter({
    sink: { isTerminal, write: write ?? ((text) => stderr.write(text)) },
    intervalSeconds: 5,
    lineFraction: 0.1,
  });
  const start = performance.now();
  let received = 0;
  const state = (): ProgressState => ({
    label,
    done: received,
    total,
    unit: "bytes",
    seconds: (performance.now() - start) / 1000,
  });
  return {
    update(bytes: number): void {
      received = bytes;
      reporter.update(state());
    },
    abort(): void {
      reporter.endLine();
    },
    done(): void {
      // Plain lines with a known size already ended with the 100 % line.
      if (isTerminal || !total) reporter.line(`${formatProgress(state())} done`);
    },
  };
}
