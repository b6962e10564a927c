// Shared by every kernel source: the SIMD helpers and the calling convention.
//
// Calling convention: every exported kernel ends with `int part, int parts` and computes only its
// share `part` (0 <= part < parts) of the work, writing output elements no other share writes, in
// an order that does not depend on `parts` (so the result is bit-identical for any thread count).
// A single-threaded call passes (0, 1). `share_begin`/`share_end` split n work units into shares
// of decreasing size (see below); `even_begin`/`even_end` split them evenly.
//
// The kernels run on tfjs-backend-wasm's own memory and must not use the linear-memory stack
// (that memory belongs to tfjs): no arrays or address-taken locals that cannot live in registers
// (WebAssembly locals). Calls are fine: their frames are the engine's.

#ifndef MFI_SIMD_H
#define MFI_SIMD_H

#include <wasm_simd128.h>

#define INLINE static inline __attribute__((always_inline))

// a * b + c. With relaxed SIMD (the binaries built with -mrelaxed-simd) one f32x4.relaxed_madd,
// fused where the CPU has FMA; otherwise a multiply and an add.
#ifdef __wasm_relaxed_simd__
#define MFI_MADD(a, b, c) wasm_f32x4_relaxed_madd((a), (b), (c))
#else
#define MFI_MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

// The first work unit of share `part` of `parts` over `n` units (share_end = the next share's
// first): share k begins at n * (1 - (1 - k / parts)^2), so the shares shrink linearly from about
// 2n / parts to n / parts^2. The pool's agents claim shares in order, each taking the next one
// when done with its last; with shares that shrink, the agent that finishes first waits at most
// for a small last share of the other (with even shares: for up to a whole one). The pool makes
// several shares per thread, so the first ones, twice the even size, do not unbalance it.
INLINE int share_begin(int n, int part, int parts) {
  const long long k = part, p = parts;
  return (int)(((long long)n * (k * (2 * p - k))) / (p * p));
}
INLINE int share_end(int n, int part, int parts) {
  return share_begin(n, part + 1, parts);
}

// The first unit of part `part` of `parts` equal parts of `n` units (even_end = the next one's).
INLINE int even_begin(int n, int part, int parts) {
  return (int)(((long long)n * part) / parts);
}
INLINE int even_end(int n, int part, int parts) {
  return (int)(((long long)n * (part + 1)) / parts);
}

#endif
