// Add (float32, both operands of the output's shape) in WebAssembly SIMD, for tfjs-backend-wasm:
//
//   y[e] = a[e] + b[e]
//
// The gradient tape adds the two gradients of every tensor that two operations read (a residual
// block's input: its first convolution and the shortcut), whole activations each. tfjs-backend-wasm
// runs its `Add` on one thread; this one splits the elements over the own-kernel pool.
//
// Work units for threads (see simd.h): blocks of 16 elements (a 64-byte line, so that two shares
// write the same line only where y does not start on one); each share adds its own blocks. Every
// element is one float32 addition, so the result does not depend on the split (nor differs from
// any other correct addition).
//
// Built by `deno task build:kernels`. The module imports tfjs-backend-wasm's own memory and works
// on its tensors in place; no linear-memory stack is used.

#include "simd.h"

#define BLOCK 16

__attribute__((export_name("add_f32"))) void add_f32(const float* a, const float* b, float* y,
                                                     int n, int part, int parts) {
  const int blocks = (n + BLOCK - 1) / BLOCK;
  int e = BLOCK * share_begin(blocks, part, parts);
  const int e1b = BLOCK * share_end(blocks, part, parts);
  const int e1 = e1b < n ? e1b : n;
  for (; e + 16 <= e1; e += 16) {
    const v128_t s0 = wasm_f32x4_add(wasm_v128_load(a + e), wasm_v128_load(b + e));
    const v128_t s1 = wasm_f32x4_add(wasm_v128_load(a + e + 4), wasm_v128_load(b + e + 4));
    const v128_t s2 = wasm_f32x4_add(wasm_v128_load(a + e + 8), wasm_v128_load(b + e + 8));
    const v128_t s3 = wasm_f32x4_add(wasm_v128_load(a + e + 12), wasm_v128_load(b + e + 12));
    wasm_v128_store(y + e, s0);
    wasm_v128_store(y + e + 4, s1);
    wasm_v128_store(y + e + 8, s2);
    wasm_v128_store(y + e + 12, s3);
  }
  for (; e < e1; e++) y[e] = a[e] + b[e];
}
