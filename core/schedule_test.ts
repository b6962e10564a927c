import assert from "node:assert/strict";
import { constantSchedule, cosineSchedule } from "./schedule.ts";

Deno.test("cosine without warm-up: base at step 0, half at the middle, min at the last step", () => {
  const lr = cosineSchedule({ baseLr: 0.1, totalSteps: 11, minLr: 0.001 });
  assert.equal(lr(0), 0.1);
  assert.ok(Math.abs(lr(5) - (0.001 + 0.099 / 2)) < 1e-12);
  assert.equal(lr(10), 0.001);
  assert.equal(lr(11), 0.001);
  for (let s = 1; s <= 10; s++) assert.ok(lr(s) < lr(s - 1), `not decreasing at ${s}`);
  for (let s = 0; s < 10; s++) assert.ok(lr(s) > lr(10), `last step is not the minimum (${s})`);
});

Deno.test("cosine with warm-up: linear ramp, peak at the end of warm-up, min at the end", () => {
  const lr = cosineSchedule({ baseLr: 0.4, totalSteps: 20, warmupSteps: 4 });
  assert.ok(Math.abs(lr(0) - 0.4 / 5) < 1e-12);
  assert.ok(Math.abs(lr(3) - 0.4 * 4 / 5) < 1e-12);
  assert.equal(lr(4), 0.4);
  assert.ok(lr(5) < 0.4);
  assert.equal(lr(19), 0);
  const values = Array.from({ length: 20 }, (_, s) => lr(s));
  assert.equal(Math.min(...values), lr(19));
  assert.equal(Math.max(...values), lr(4));
});

Deno.test("cosine edge cases and invalid inputs", () => {
  assert.equal(cosineSchedule({ baseLr: 1, totalSteps: 1 })(0), 0);
  const two = cosineSchedule({ baseLr: 1, totalSteps: 2, minLr: 0.5 });
  assert.deepEqual([two(0), two(1)], [1, 0.5]);
  assert.throws(() => cosineSchedule({ baseLr: -1, totalSteps: 10 }), /baseLr/);
  assert.throws(() => cosineSchedule({ baseLr: 1, totalSteps: 0 }), /totalSteps/);
  assert.throws(
    () => cosineSchedule({ baseLr: 1, totalSteps: 10, warmupSteps: 10 }),
    /warmupSteps/,
  );
  assert.throws(() => cosineSchedule({ baseLr: 1, totalSteps: 10, minLr: 2 }), /minLr/);
  assert.throws(() => cosineSchedule({ baseLr: 1, totalSteps: 10 })(-1), /step must be/);
  assert.throws(() => cosineSchedule({ baseLr: 1, totalSteps: 10 })(1.5), /step must be/);
  assert.equal(constantSchedule(0.3)(7), 0.3);
  assert.throws(() => constantSchedule(NaN), /lr must be/);
});
