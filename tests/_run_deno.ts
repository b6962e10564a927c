/**
 * Runs `deno run -A ...` from the repository root the way a user would, with colours off and no
 * stdin, and returns the exit code and decoded output: the one subprocess helper of the
 * command-line tests.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;

/** What a run printed and how it ended. */
export interface DenoRun {
  /** Exit code. */
  readonly code: number;
  /** Standard output, decoded. */
  readonly stdout: string;
  /** Standard error, decoded. */
  readonly stderr: string;
}

/**
 * `deno run -A <args>` in the repository root.
 *
 * @param args The script and its arguments, e.g. `["tasks/bench.ts", "--help"]`.
 * @param env Extra environment variables (`NO_COLOR=1` is always set).
 * @returns The exit code and output.
 */
export async function runDeno(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<DenoRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
