import assert from "node:assert/strict";
import { hasRelaxedSimd, measureSimdRoof } from "./simd_roof.ts";
import {
  SIMD_TILE_FLOPS_PER_ITERATION,
  SIMD_TILE_PIXELS,
  SIMD_TILE_ROWS,
  SIMD_TILE_VECTORS,
  simdTileChecksum,
  simdTileModule,
} from "./simd_tile.ts";

interface Tile {
  roof(iterations: number): number;
  memory: WebAssembly.Memory;
}

async function tileOf(relaxed: boolean): Promise<Tile> {
  const { instance } = await WebAssembly.instantiate(simdTileModule({ relaxed }));
  return instance.exports as unknown as Tile;
}

const variants = [false, ...(hasRelaxedSimd() ? [true] : [])];

for (const relaxed of variants) {
  const kind = relaxed ? "relaxed_madd" : "mul+add";
  Deno.test(`the tile loop (${kind}) validates and returns every accumulator's start after whole passes`, async () => {
    const tile = await tileOf(relaxed);
    for (const n of [0, 1, 2, 7, 1000]) assert.equal(tile.roof(n), simdTileChecksum(), `n = ${n}`);
    assert.equal(simdTileChecksum(), 279); // the sum of the 48 starting values
  });

  Deno.test(`the tile loop (${kind}) multiplies every broadcast with both vectors of its pixel`, async () => {
    const tile = await tileOf(relaxed);
    // Operands that do not cancel: vector lane l of pixel p = (1 + l + p % 3) / 1024, broadcast r
    // of pixel p = (1 + r + p % 5) / 8; every product and sum is exact in float32.
    const f = new Float32Array(tile.memory.buffer);
    const vec = (p: number, l: number) => (1 + l + (p % 3)) / 1024;
    const bc = (p: number, r: number) => (1 + r + (p % 5)) / 8;
    for (let p = 0; p < SIMD_TILE_PIXELS; p++) {
      for (let l = 0; l < 8; l++) f[p * 8 + l] = vec(p, l);
      for (let r = 0; r < 8; r++) f[(SIMD_TILE_PIXELS + p) * 8 + r] = bc(p, r);
    }
    for (const n of [1, 3]) {
      let sum = Math.fround(0);
      for (let r = 0; r < SIMD_TILE_ROWS; r++) {
        for (let v = 0; v < SIMD_TILE_VECTORS; v++) {
          for (let lane = 0; lane < 4; lane++) {
            let acc = -3 + 0.375 * ((r * SIMD_TILE_VECTORS + v) * 4 + lane);
            for (let pass = 0; pass < n; pass++) {
              for (let p = 0; p < SIMD_TILE_PIXELS; p++) acc += bc(p, r) * vec(p, v * 4 + lane);
            }
            sum = Math.fround(sum + acc);
          }
        }
      }
      assert.equal(tile.roof(n), sum, `n = ${n}`);
    }
  });
}

Deno.test("the tile loop counts 64 pixels x 6 broadcasts x 2 vectors x 4 lanes x 2 flops per pass", () => {
  assert.equal(SIMD_TILE_FLOPS_PER_ITERATION, 64 * 6 * 2 * 4 * 2);
});

Deno.test("measureSimdRoof runs the tile loop on two worker threads and checks their checksums", async () => {
  const tile = await measureSimdRoof({
    threads: 2,
    seconds: 0.005,
    repeats: 1,
    relaxed: false,
    loop: "tile",
  });
  assert.equal(tile.loop, "tile");
  assert.equal(tile.threads, 2);
  assert.ok(tile.gflops > 0 && Math.abs(tile.perThreadGflops * 2 - tile.gflops) < 1e-9);
  await assert.rejects(
    () => measureSimdRoof({ loop: "tiles" as "tile" }),
    /loop must be "chains" or "tile", got "tiles"/,
  );
});
