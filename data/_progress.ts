// Download progress: a redrawn bar on a terminal, plain lines (every 10%) otherwise.

/** How to show download progress: a bar on a terminal (`"auto"`), always a bar, plain lines, or nothing. */
export type ProgressMode = "auto" | "bar" | "lines" | "none";

/** A progress reporter for one transfer. */
export interface Progress {
  update(received: number): void;
  done(): void;
  /** Ends the bar's line after a failure so the error starts on its own line. */
  abort(): void;
}

const MiB = 1024 * 1024;

function isTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

export function createProgress(
  label: string,
  total: number | undefined,
  mode: ProgressMode,
  write: (text: string) => void = (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
): Progress {
  const resolved = mode === "auto" ? (isTerminal() ? "bar" : "lines") : mode;
  const start = performance.now();
  let lastDraw = -Infinity;
  let lastTenth = -1;
  let received = 0;
  const describe = (): string => {
    const seconds = Math.max(1e-3, (performance.now() - start) / 1000);
    const rate = `${(received / MiB / seconds).toFixed(1)} MiB/s`;
    const size = total
      ? `${(received / MiB).toFixed(1)}/${(total / MiB).toFixed(1)} MiB`
      : `${(received / MiB).toFixed(1)} MiB`;
    return `${size} ${rate}`;
  };
  return {
    update(bytes: number): void {
      received = bytes;
      if (resolved === "none") return;
      if (resolved === "bar") {
        const now = performance.now();
        if (now - lastDraw < 100) return;
        lastDraw = now;
        const fraction = total ? Math.min(1, received / total) : 0;
        const width = 30;
        const filled = Math.round(fraction * width);
        const bar = total
          ? `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${
            (100 * fraction).toFixed(0).padStart(3)
          }% `
          : "";
        write(`\r${label} ${bar}${describe()}\x1b[K`);
      } else if (total) {
        const tenth = Math.floor((10 * received) / total);
        if (tenth > lastTenth) {
          lastTenth = tenth;
          write(`${label}: ${tenth * 10}% (${describe()})\n`);
        }
      } else if (performance.now() - lastDraw > 5000) {
        lastDraw = performance.now();
        write(`${label}: ${describe()}\n`);
      }
    },
    abort(): void {
      if (resolved === "bar" && lastDraw > -Infinity) write("\n");
    },
    done(): void {
      if (resolved === "bar") write(`\r${label} ${describe()} done\x1b[K\n`);
      else if (resolved === "lines" && !total) write(`${label}: ${describe()} done\n`);
    },
  };
}
