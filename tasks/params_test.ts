import assert from "node:assert/strict";
import { countParams, formatParams, PARAM_COUNTERS, type ParamCounter } from "./params.ts";

Deno.test("params: docs/method.md totals for every depth and both class counts", () => {
  const totals: Array<[string, number, number]> = [
    ["resnet18", 10, 11_173_962],
    ["resnet34", 10, 21_282_122],
    ["resnet34", 100, 21_328_292],
    ["resnet50", 10, 23_520_842],
    ["resnet50", 100, 23_705_252],
    ["resnet101", 10, 42_512_970],
  ];
  for (const [model, classes, total] of totals) {
    const r = countParams(["--model", model, "--classes", String(classes)]);
    assert.equal(r.total, total, `${model} ${classes}`);
    assert.equal(r.stem + r.stages.reduce((a, b) => a + b, 0) + r.head, r.total);
  }
  // Every baseline depth is registered (other families, e.g. mfi-resnet50, register beside them).
  for (const depth of ["resnet18", "resnet34", "resnet50", "resnet101"]) {
    assert.ok(Object.keys(PARAM_COUNTERS).includes(depth), depth);
  }
  const sixteenth = countParams(["--model", "resnet50", "--width", "1/16"]);
  assert.equal(sixteenth.width, 0.0625);
  assert.equal(sixteenth.stem, 3 * 3 * 3 * 4 + 2 * 4);
});

Deno.test("params: invalid arguments are errors naming the flag", () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /--model is required/],
    [["--model", "resnet51"], /--model "resnet51" is unknown/],
    [["--model", "toString"], /--model "toString" is unknown/],
    [["--model", "resnet18", "--classes", "0"], /--classes must be a whole number >= 1/],
    [["--model", "resnet18", "--classes", "10.5"], /--classes/],
    [["--model", "resnet18", "--classes", "ten"], /--classes/],
    [["--model", "resnet18", "--width", "0"], /--width must be a positive number/],
    [["--model", "resnet18", "--width", "x"], /--width/],
    [["--model", "resnet18", "--width", "1/0"], /--width/],
    [["--model", "resnet18", "--width", "1/x"], /--width/],
    [["--model", "resnet18", "--depth", "3"], /unknown flag --depth/],
    [["--model", "resnet18", "extra"], /unexpected argument "extra"; deno task params --help/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(() => countParams(args), pattern, args.join(" "));
  }
});

Deno.test("params: another model family plugs in through the registry", () => {
  const fake: ParamCounter = ({ classes, width }) => ({
    total: 1 + 2 + 3 + classes * width,
    stem: 1,
    stages: [2, 3],
    head: classes * width,
  });
  const r = countParams(["--model", "mfi-fake", "--classes", "100", "--width", "2"], {
    ...PARAM_COUNTERS,
    "mfi-fake": fake,
  });
  assert.deepEqual(r, {
    model: "mfi-fake",
    classes: 100,
    width: 2,
    total: 206,
    stem: 1,
    stages: [2, 3],
    head: 200,
  });
  assert.match(formatParams(r), /stage2\s+3\s+1\.46 %/);
});

Deno.test("params CLI: --json prints one object; bad input exits 2", async () => {
  const script = new URL("./params.ts", import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const ok = await run("--model", "resnet50", "--classes", "100", "--json");
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout), {
    model: "resnet50",
    classes: 100,
    width: 1,
    total: 23_705_252,
    stem: 1_856,
    stages: [215_808, 1_219_584, 7_098_368, 14_964_736],
    head: 204_900,
  });
  const bad = await run("--model", "resnet50", "--width=-1");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--width must be a positive number/);
});
