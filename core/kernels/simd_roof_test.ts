import assert from "node:assert/strict";
import {
  hasRelaxedSimd,
  measureSimdRoof,
  SIMD_ROOF_CHAINS,
  SIMD_ROOF_FLOPS_PER_ITERATION,
  simdRoofChecksum,
  simdRoofModule,
} from "./simd_roof.ts";

type Roof = (iterations: number) => number;

async function roofOf(relaxed: boolean): Promise<Roof> {
  const { instance } = await WebAssembly.instantiate(simdRoofModule({ relaxed }));
  return instance.exports.roof as Roof;
}

for (const relaxed of [false, true]) {
  Deno.test(`the SIMD roof module (${relaxed ? "relaxed_madd" : "mul+add"}) validates and computes the expected checksum`, async () => {
    const bytes = simdRoofModule({ relaxed });
    if (relaxed && !hasRelaxedSimd()) {
      assert.equal(WebAssembly.validate(bytes), false);
      return;
    }
    assert.ok(WebAssembly.validate(bytes));
    const roof = await roofOf(relaxed);
    // 0 and 1-2 iterations (8-16 rounds) are before convergence: every chain's value counts.
    for (const n of [0, 1, 2, 5, 1000]) assert.equal(roof(n), simdRoofChecksum(n), `n = ${n}`);
    assert.equal(roof(0), 279); // the sum of the 48 starting values
    assert.equal(roof(1000), SIMD_ROOF_CHAINS * 4 * 2); // every lane at the fixed point 2
  });
}

Deno.test("the SIMD roof counts 12 chains x 4 lanes x 2 flops x 8 rounds per iteration", () => {
  assert.equal(SIMD_ROOF_FLOPS_PER_ITERATION, 12 * 4 * 2 * 8);
  // The relaxed loop has one instruction per chain and round where the plain one has two.
  assert.ok(simdRoofModule({ relaxed: true }).length < simdRoofModule({ relaxed: false }).length);
});

Deno.test("measureSimdRoof runs on two worker threads and checks their checksums", async () => {
  const roof = await measureSimdRoof({ threads: 2, seconds: 0.005, repeats: 1, relaxed: false });
  assert.equal(roof.threads, 2);
  assert.equal(roof.relaxed, false);
  assert.ok(roof.gflops > 0 && Math.abs(roof.perThreadGflops * 2 - roof.gflops) < 1e-9);
});

Deno.test("measureSimdRoof rejects bad options, naming them", async () => {
  await assert.rejects(
    () => measureSimdRoof({ threads: 0 }),
    /threads must be a whole number >= 1, got 0/,
  );
  await assert.rejects(() => measureSimdRoof({ threads: 1.5 }), /threads must be .* got 1.5/);
  await assert.rejects(() => measureSimdRoof({ seconds: 0 }), /seconds must be > 0, got 0/);
  await assert.rejects(() => measureSimdRoof({ seconds: NaN }), /seconds must be > 0, got NaN/);
  await assert.rejects(
    () => measureSimdRoof({ repeats: 0 }),
    /repeats must be a whole number >= 1/,
  );
});
