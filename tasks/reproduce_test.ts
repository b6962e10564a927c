import assert from "node:assert/strict";
import { ForeignRunError, PhaseNotReadyError, UnknownPhaseError } from "@mfi/incubation";
import { UsageError } from "./_cli.ts";
import { adviseOn } from "./reproduce.ts";

Deno.test("adviseOn turns the pipeline's typed errors into --phase / --out advice (exit 2)", () => {
  const notReady = adviseOn(
    new PhaseNotReadyError("meta", ["baseline", "compress:1"], "runs/x"),
  );
  assert.ok(notReady instanceof UsageError);
  assert.equal(
    notReady.message,
    "--phase meta needs baseline, compress:1, not complete in runs/x: run `--phase baseline` " +
      "`--phase compress:1` first (same --out), or drop --phase to run every phase in order",
  );
  const unknown = adviseOn(new UnknownPhaseError("incubate:4", ["baseline", "finetune"]));
  assert.ok(unknown instanceof UsageError);
  assert.match(
    unknown.message,
    /^--phase incubate:4: this plan has no such phase; its phases are baseline, finetune$/,
  );
  const variant = adviseOn(new UnknownPhaseError("endpoint-only/compress:1", ["baseline"]));
  assert.match((variant as Error).message, /\(no ablation variants: add --ablation\)$/);
  const foreign = adviseOn(new ForeignRunError("runs/x", "baseline"));
  assert.ok(foreign instanceof UsageError);
  assert.match(
    foreign.message,
    /runs\/x holds a complete baseline made with another config: pass a new --out/,
  );
  const other = new Error("disk full");
  assert.equal(adviseOn(other), other);
});
