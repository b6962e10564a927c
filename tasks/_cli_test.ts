import assert from "node:assert/strict";
import {
  BACKEND_FLAGS,
  backendOptions,
  backendOptionsFromArgs,
  type CliSpec,
  helpText,
  parseCli,
  reportError,
  UsageError,
} from "./_cli.ts";

const SPEC: CliSpec = {
  name: "demo",
  summary: "a demo task",
  flags: {
    epochs: { type: "integer", min: 1, default: 10, doc: "passes over the data" },
    lr: { type: "number", above: 0, doc: "learning rate", example: "0.1" },
    shift: { type: "number", doc: "a signed offset" },
    "data-dir": { type: "string", placeholder: "DIR", doc: "data folder" },
    mode: { type: "string", choices: ["fast", "slow"], default: "fast", doc: "speed" },
    augment: { type: "boolean", default: true, doc: "flip and crop" },
    yes: { type: "boolean", doc: "do not ask" },
    set: { type: "string", multiple: true, doc: "override", example: "a=1" },
    out: { type: "string", short: "o", doc: "output" },
    ...BACKEND_FLAGS,
  },
  renamed: { dir: "--dir was renamed --data-dir; use --data-dir DIR" },
  examples: ["--epochs 3"],
};

Deno.test("parseCli: values, defaults, --no-X, negative numbers, repeatable, short aliases", () => {
  const p = parseCli(SPEC, []);
  assert.deepEqual(p.values, { epochs: 10, mode: "fast", augment: true, set: [] });
  assert.equal(p.help, false);
  assert.equal(p.given.size, 0);
  const q = parseCli(SPEC, [
    "--epochs=3",
    "--lr",
    "1e-3",
    "--shift",
    "-2.5",
    "--no-augment",
    "--yes",
    "--set",
    "a=1",
    "--set=b=2",
    "-o",
    "x",
    "--data-dir",
    "/d",
    "--mode",
    "slow",
  ]);
  assert.deepEqual(q.values, {
    epochs: 3,
    lr: 1e-3,
    shift: -2.5,
    augment: false,
    yes: true,
    set: ["a=1", "b=2"],
    out: "x",
    "data-dir": "/d",
    mode: "slow",
  });
  assert.deepEqual([...q.given].sort(), [
    "augment",
    "data-dir",
    "epochs",
    "lr",
    "mode",
    "out",
    "set",
    "shift",
    "yes",
  ]);
  assert.equal(parseCli(SPEC, ["--augment=false"]).values.augment, false);
  assert.equal(parseCli(SPEC, ["--no-augment", "--augment"]).values.augment, true);
  assert.equal(parseCli(SPEC, ["--help", "--bogus"]).help, true);
  assert.equal(parseCli(SPEC, ["--epochs", "0", "-h"]).help, true);
});

Deno.test("parseCli: every mistake is a one-line UsageError naming the flag and the fix", () => {
  const cases: [string[], RegExp][] = [
    [["--epochs", "-1"], /^--epochs must be a whole number >= 1; got -1$/],
    [["--epochs", "abc"], /--epochs must be a whole number; got "abc"/],
    [["--epochs", "1.5"], /--epochs must be a whole number; got "1.5"/],
    [["--epochs"], /--epochs needs a value, e.g. --epochs 10/],
    [["--epochs", "--yes"], /--epochs needs a value/],
    [["--lr", "0"], /--lr must be a number > 0; got 0/],
    [["--lr", "0x10"], /--lr must be a number; got "0x10"/],
    [["--mode", "medium"], /--mode must be one of fast, slow; got "medium"/],
    [["--epoch", "3"], /unknown flag --epoch; did you mean --epochs\?/],
    [["--bogus"], /unknown flag --bogus; deno task demo --help lists the flags/],
    [["-x"], /unknown flag -x/],
    [["--dir", "/d"], /--dir was renamed --data-dir/],
    [["--no-yes=1"], /--no-yes takes no value/],
    [["--yes=maybe"], /--yes takes no value \(or true\/false\)/],
    [["--no-epochs"], /unknown flag --no-epochs/],
    [["stray"], /unexpected argument "stray"/],
    [["--backend", "tpu"], /--backend must be one of webgpu, wasm, cpu; got "tpu"/],
    [["--threads", "0"], /--threads must be a whole number >= 1; got 0/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(
      () => parseCli(SPEC, args),
      (e: Error) => e instanceof UsageError && pattern.test(e.message) && !e.message.includes("\n"),
      args.join(" "),
    );
  }
});

Deno.test("parseCli: a value that starts with '-' is given inline, and the examples say so", () => {
  const spec: CliSpec = {
    name: "b",
    summary: "b",
    flags: { "v8-flags": { type: "string", example: "--no-x", doc: "flags" } },
    examples: [],
  };
  assert.equal(parseCli(spec, ["--v8-flags=--no-x"]).values["v8-flags"], "--no-x");
  assert.throws(
    () => parseCli(spec, ["--v8-flags", "--no-x"]),
    (e: Error) =>
      e instanceof UsageError && e.message === "--v8-flags needs a value, e.g. --v8-flags=--no-x",
  );
  assert.match(helpText(spec), /e\.g\. --v8-flags=--no-x/);
});

Deno.test("parseCli: positionals as a sub-command", () => {
  const spec: CliSpec = {
    name: "data",
    summary: "x",
    flags: {},
    positionals: { name: "COMMAND", doc: "check or download", min: 1, max: 1, choices: ["check"] },
    examples: [],
  };
  assert.deepEqual(parseCli(spec, ["check"]).positionals, ["check"]);
  assert.throws(() => parseCli(spec, []), /missing COMMAND/);
  assert.throws(() => parseCli(spec, ["check", "x"]), /unexpected argument "x"/);
  assert.throws(() => parseCli(spec, ["chek"]), /unknown command "chek"; expected one of check/);
  assert.deepEqual(parseCli(spec, ["--", "check"]).positionals, ["check"]);
});

Deno.test("helpText lists every flag with its type, default and an example", () => {
  const text = helpText(SPEC);
  for (const name of Object.keys(SPEC.flags)) {
    const line = text.split("\n").findIndex((l) =>
      l.includes(`--${name} `) || l.includes(`]${name}`)
    );
    assert.ok(line >= 0, `--${name} missing from the help`);
    // The entry runs to the next flag (a long flag name stands on a line of its own).
    const rest = text.split("\n").slice(line + 1);
    const end = rest.findIndex((l) => /^ {2}-/.test(l) || l.trim() === "");
    const entry = [text.split("\n")[line], ...rest.slice(0, end < 0 ? rest.length : end)].join(" ");
    assert.match(entry, /e\.g\. --/, `--${name} has no example`);
  }
  assert.match(
    text,
    /--\[no-\]augment\s+boolean\. flip and crop \(default: true\); e\.g\. --no-augment/,
  );
  assert.match(text, /--epochs N\s+integer >= 1\. passes over the data \(default: 10\)/);
  assert.match(text, /--backend webgpu\|wasm\|cpu/);
  assert.match(text, /-h, --help/);
  assert.match(text, /deno task demo --epochs 3/);
});

Deno.test("reportError: one line, exit 2 for usage errors and 1 otherwise", () => {
  const lines: string[] = [];
  const saved = console.error;
  console.error = (m: string) => lines.push(m);
  try {
    assert.equal(reportError("demo", new UsageError("bad flag")), 2);
    assert.equal(reportError("demo", new Error("two\nlines")), 1);
  } finally {
    console.error = saved;
  }
  assert.deepEqual(lines, ["demo: bad flag", "demo: two lines"]);
});

Deno.test("backend flags: parsed values and args scanning", () => {
  const spec: CliSpec = { name: "b", summary: "b", flags: BACKEND_FLAGS, examples: [] };
  assert.deepEqual(backendOptions(parseCli(spec, ["--threads", "4"]).values), { threads: 4 });
  assert.deepEqual(backendOptionsFromArgs([]), {});
  assert.deepEqual(backendOptionsFromArgs(["--backend", "wasm"]), { backend: "wasm" });
  assert.deepEqual(
    backendOptionsFromArgs(["train", "--epochs", "3", "--backend", "cpu", "--threads", "1", "-v"]),
    { backend: "cpu", threads: 1 },
  );
  assert.deepEqual(backendOptionsFromArgs(["--backend", "cpu", "--backend", "wasm"]), {
    backend: "wasm",
  });
  for (const bad of ["0", "-1", "1.5", "two", "", " "]) {
    assert.throws(
      () => backendOptionsFromArgs([`--threads=${bad}`]),
      (e: Error) => e instanceof UsageError && /--threads/.test(e.message),
      bad,
    );
  }
  assert.throws(() => backendOptionsFromArgs(["--backend"]), /--backend needs a value/);
});

Deno.test("helpText: an entry point without a deno task, long notes wrapped, no examples", () => {
  const text = helpText({
    name: "deploy",
    command: "deno serve tasks/x.ts",
    summary: "a module",
    flags: {},
    notes: `Environment:\n  MFI_X  one variable\n${"word ".repeat(40).trim()}`,
    examples: [],
  });
  assert.match(
    text,
    /^deno serve tasks\/x\.ts: a module\n\nUsage: deno serve tasks\/x\.ts \[options\]/,
  );
  assert.match(text, /\n {2}MFI_X {2}one variable\n/, "short note lines keep their indentation");
  for (const line of text.split("\n")) assert.ok(line.length <= 100, line);
  assert.doesNotMatch(text, /Examples:/);
  assert.throws(
    () =>
      parseCli({
        name: "deploy",
        command: "deno serve tasks/x.ts",
        summary: "",
        flags: {},
        examples: [],
      }, ["--port", "1"]),
    /^UsageError: unknown flag --port; deno serve tasks\/x\.ts --help lists the flags$/,
  );
});
