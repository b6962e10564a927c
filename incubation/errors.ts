/**
 * Typed errors of the pipeline. The library knows no command line: it throws these with the
 * facts (which phase, what is missing), and entry points turn them into advice for their own
 * flags (e.g. `deno task reproduce` says "run `--phase baseline` first").
 *
 * @module
 */

/**
 * A phase cannot run because phases it reads are not complete in the run folder.
 *
 * @example
 * ```ts
 * import { PhaseNotReadyError } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const e = new PhaseNotReadyError("meta", ["compress:2"], "runs/x");
 * assert.deepEqual(e.missing, ["compress:2"]);
 * assert.match(e.message, /meta needs compress:2, which is not complete in runs\/x/);
 * ```
 */
export class PhaseNotReadyError extends Error {
  /** The phase that was asked for. */
  readonly phase: string;
  /** The phases it needs that are missing or incomplete, in plan order. */
  readonly missing: readonly string[];
  /** The run folder. */
  readonly runDir: string;

  /**
   * Builds the error and its message.
   *
   * @param phase The phase that cannot run.
   * @param missing The incomplete phases it needs.
   * @param runDir The run folder.
   */
  constructor(phase: string, missing: readonly string[], runDir: string) {
    super(
      `Cannot run ${phase}: ${phase} needs ${missing.join(", ")}, which ${
        missing.length === 1 ? "is" : "are"
      } not complete in ${runDir}`,
    );
    this.name = "PhaseNotReadyError";
    this.phase = phase;
    this.missing = Object.freeze([...missing]);
    this.runDir = runDir;
  }
}

/**
 * A phase id that the plan does not have.
 *
 * @example
 * ```ts
 * import { UnknownPhaseError } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const e = new UnknownPhaseError("incubate:4", ["baseline", "finetune"]);
 * assert.match(e.message, /Unknown phase "incubate:4"; this plan has baseline, finetune/);
 * ```
 */
export class UnknownPhaseError extends RangeError {
  /** The id asked for. */
  readonly phase: string;
  /** The ids the plan has. */
  readonly known: readonly string[];

  /**
   * Builds the error and its message.
   *
   * @param phase The unknown id.
   * @param known The plan's ids.
   */
  constructor(phase: string, known: readonly string[]) {
    super(`Unknown phase "${phase}"; this plan has ${known.join(", ")}`);
    this.name = "UnknownPhaseError";
    this.phase = phase;
    this.known = Object.freeze([...known]);
  }
}

/**
 * A run folder holds a complete phase made with another config.
 *
 * @example
 * ```ts
 * import { ForeignRunError } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const e = new ForeignRunError("runs/x", "baseline");
 * assert.match(e.message, /runs\/x holds a complete baseline made with another config/);
 * ```
 */
export class ForeignRunError extends Error {
  /** The run folder. */
  readonly runDir: string;
  /** The phase whose output belongs to another config. */
  readonly phase: string;

  /**
   * Builds the error and its message.
   *
   * @param runDir The run folder.
   * @param phase The phase.
   */
  constructor(runDir: string, phase: string) {
    super(
      `Run folder ${runDir} holds a complete ${phase} made with another config; ` +
        "use a new run folder, or delete that phase's folder to redo it",
    );
    this.name = "ForeignRunError";
    this.runDir = runDir;
    this.phase = phase;
  }
}
