// The passes of the fused batch norm (core/kernels/batch_norm.ts) over channels-last tensors seen
// as [rows, c] (rows = every axis but the last), in WebAssembly SIMD, for tfjs-backend-wasm.
//
//   bn_stats_f32      per-channel sum(x) and sum(x^2)                  (training forward, pass 1)
//   bn_apply_f32      y = (x - center) * scale + shift (+ residual), ReLU   (forward, elementwise)
//   bn_grad_sums_f32  g = dy masked by y > 0; sum(g), sum(g * x);
//                     g written out as the residual's gradient          (backward, pass 1)
//   bn_grad_dx_f32    dx = k * (g - mean(g)) + b * (x - mean)           (backward, pass 2)
//
// Centring before scaling keeps the float32 results close to the textbook formula when a channel's
// mean is large against its spread (x * scale + (shift - mean * scale) would cancel).
//
// The per-channel arithmetic between the passes (mean, variance, scale, ...) is done by the caller.
//
// The reductions (bn_stats_f32, bn_grad_sums_f32) cut the rows into blocks of `block_rows` rows
// (the caller picks it from the tensor's shape only; a multiple of ROWS, the last block may be
// shorter) and write each block's per-channel sums, in float64, to the block's own slot of 2 * c
// doubles in `blocks` (slot b at blocks + 2 * c * b: the first sum of every channel, then the
// second); `blocks` holds as many slots again after those (slot nb + b), block b's accumulators
// while it runs. The caller adds the slots in block order, so the totals do not depend on which
// share ran which block. A block is taken in spans of about SPAN_ELEMENTS elements (whole rows):
// ROWS rows at a time in float32 registers (two chains of ROWS / 2 rows, then added), each such
// partial promoted (f32x4 -> two f64x2) and added to the span's float64 accumulators, rows after
// the last full ROWS promoted one by one, and the span's float64 sums added to the block's slot.
// So float32 rounding stays that of a sum of ROWS terms (a few ulps of the partial), every sum
// above it is float64, and the order of the additions depends on the shape only.
// The walk is row-major: ROWS rows (consecutive in memory) at a time, every group of 4 channels
// in them, the span's accumulators in the block's second slot (L1-resident), so memory is read in
// order. Walking each group of 4 channels down a span's rows instead (accumulators in registers,
// as these kernels did) was 2.5-3.5 times slower per byte than the elementwise passes; row-major,
// bn_stats_f32 took 26-39 % less time and bn_grad_sums_f32 14-16 % less inside ResNet-18/50
// x0.25 training steps (AMD EPYC, one thread, builds alternating step by step), 2.2x and 1.3x
// faster alone at 32768 x 64; the same bits.
//
// Work units for threads (see simd.h): the reductions split the blocks, the elementwise passes
// split the rows; both kinds read only the cache lines of their own rows. No share writes what
// another writes, and no result depends on the split.
//
// Built by `deno task build:kernels`. The module imports tfjs-backend-wasm's own memory and works
// on its tensors in place; no linear-memory stack is used.

#include "simd.h"

#define ROWS 8

INLINE v128_t promote_high(v128_t v) {
  return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 2, 3));
}

// acc[0..3] += lo, hi (two f64x2).
INLINE void add2(double* acc, v128_t lo, v128_t hi) {
  wasm_v128_store(acc, wasm_f64x2_add(wasm_v128_load(acc), lo));
  wasm_v128_store(acc + 2, wasm_f64x2_add(wasm_v128_load(acc + 2), hi));
}

// Rows of a pass over a block: about SPAN_ELEMENTS elements (a multiple of ROWS rows, at least
// ROWS), so that the channel groups' walks down the rows of one span hit the L1 cache.
#define SPAN_ELEMENTS 2048
INLINE int span_rows(int c) {
  int r = (SPAN_ELEMENTS / c) & ~(ROWS - 1);
  return r < ROWS ? ROWS : r;
}

// Block b of the reductions: its first row, its row count (the last block may be shorter); and
// the number of blocks. block_rows >= 1 (the caller's choice; a multiple of ROWS).
INLINE int block_first(int b, int block_rows) {
  return b * block_rows;
}
INLINE int block_count(int rows, int b, int block_rows) {
  int left = rows - b * block_rows;
  return left < block_rows ? left : block_rows;
}
INLINE int block_total(int rows, int block_rows) {
  return (rows + block_rows - 1) / block_rows;
}

// acc[0..3] (float64) += the sums of x[r, 0..3] over ROWS rows (stride c): two float32 chains of
// ROWS / 2 rows, added, promoted; sq[0..3] the same for x^2.
INLINE void stats_rows(const float* x, double* acc, double* sq, int c) {
  v128_t s0 = wasm_f32x4_splat(0), s1 = s0, q0 = s0, q1 = s0;
  for (int k = 0; k < ROWS; k += 2) {
    v128_t v0 = wasm_v128_load(x + (long)k * c);
    v128_t v1 = wasm_v128_load(x + (long)(k + 1) * c);
    s0 = wasm_f32x4_add(s0, v0);
    s1 = wasm_f32x4_add(s1, v1);
    q0 = MFI_MADD(v0, v0, q0);
    q1 = MFI_MADD(v1, v1, q1);
  }
  v128_t s = wasm_f32x4_add(s0, s1);
  v128_t q = wasm_f32x4_add(q0, q1);
  add2(acc, wasm_f64x2_promote_low_f32x4(s), promote_high(s));
  add2(sq, wasm_f64x2_promote_low_f32x4(q), promote_high(q));
}

// The same for one row (promoted first).
INLINE void stats_row(const float* x, double* acc, double* sq) {
  v128_t v = wasm_v128_load(x);
  v128_t lo = wasm_f64x2_promote_low_f32x4(v);
  v128_t hi = promote_high(v);
  add2(acc, lo, hi);
  add2(sq, wasm_f64x2_mul(lo, lo), wasm_f64x2_mul(hi, hi));
}

// The vector channel groups (cv channels) of a span of m rows at xs: their sums added to sum and
// their sums of squares to sq, through the span's accumulators acc (2c doubles). A span of one
// ROWS chunk adds its partials to sum and sq directly: 0 + p is p, so the bits are the same.
INLINE void stats_span(const float* xs, double* sum, double* sq, double* acc, int m, int c,
                       int cv) {
  if (m == ROWS) {
    for (int j = 0; j < cv; j += 4) stats_rows(xs + j, sum + j, sq + j, c);
    return;
  }
  for (int j = 0; j < 2 * c; j++) acc[j] = 0;
  int r = 0;
  for (; r + ROWS <= m; r += ROWS) {
    for (int j = 0; j < cv; j += 4) stats_rows(xs + (long)r * c + j, acc + j, acc + c + j, c);
  }
  for (; r < m; r++) {
    for (int j = 0; j < cv; j += 4) stats_row(xs + (long)r * c + j, acc + j, acc + c + j);
  }
  for (int j = 0; j < cv; j += 4) {
    add2(sum + j, wasm_v128_load(acc + j), wasm_v128_load(acc + j + 2));
    add2(sq + j, wasm_v128_load(acc + c + j), wasm_v128_load(acc + c + j + 2));
  }
}

// Per block of block_rows rows: blocks[2c b + j] = sum of x[r, j] over the block's rows,
// blocks[2c b + c + j] = sum of x[r, j]^2 (float64). This share's blocks only.
__attribute__((export_name("bn_stats_f32"))) void bn_stats_f32(const float* x, double* blocks,
                                                               int rows, int c, int block_rows,
                                                               int part, int parts) {
  int nb = block_total(rows, block_rows);
  int b1 = share_end(nb, part, parts);
  int cv = c & ~3;
  int span = span_rows(c);
  for (int b = share_begin(nb, part, parts); b < b1; b++) {
    int n = block_count(rows, b, block_rows);
    const float* xb = x + (long)block_first(b, block_rows) * c;
    double* sum = blocks + (long)b * 2 * c;
    double* sq = sum + c;
    double* acc = blocks + ((long)nb + b) * 2 * c;
    for (int j = 0; j < 2 * c; j++) sum[j] = 0;
    for (int r0 = 0; r0 < n; r0 += span) {
      int m = n - r0 < span ? n - r0 : span;
      const float* xs = xb + (long)r0 * c;
      stats_span(xs, sum, sq, acc, m, c, cv);
      for (int j = cv; j < c; j++) {
        for (int r = 0; r < m; r++) {
          double v = xs[(long)r * c + j];
          sum[j] += v;
          sq[j] += v * v;
        }
      }
    }
  }
}

// y = (x - center) * scale + shift (+ residual where residual != 0), then max(y, 0) where relu
// (NaN stays NaN). css holds center, scale and shift, c floats each.
__attribute__((export_name("bn_apply_f32"))) void bn_apply_f32(const float* x,
                                                               const float* residual, float* y,
                                                               const float* css, int rows, int c,
                                                               int relu, int part, int parts) {
  const float* center = css;
  const float* scale = css + c;
  const float* shift = css + 2 * c;
  int r0 = share_begin(rows, part, parts);
  int r1 = share_end(rows, part, parts);
  int cv = c & ~3;
  v128_t zero = wasm_f32x4_splat(0);
  for (int r = r0; r < r1; r++) {
    long o = (long)r * c;
    for (int j = 0; j < cv; j += 4) {
      v128_t xc = wasm_f32x4_sub(wasm_v128_load(x + o + j), wasm_v128_load(center + j));
      v128_t z = MFI_MADD(xc, wasm_v128_load(scale + j), wasm_v128_load(shift + j));
      if (residual) z = wasm_f32x4_add(z, wasm_v128_load(residual + o + j));
      if (relu) z = wasm_f32x4_pmax(z, zero);
      wasm_v128_store(y + o + j, z);
    }
    for (int j = cv; j < c; j++) {
      float z = (x[o + j] - center[j]) * scale[j] + shift[j];
      if (residual) z += residual[o + j];
      if (relu && z < 0) z = 0;
      y[o + j] = z;
    }
  }
}

// For one group of 4 channels over ROWS rows (stride c), pointers at the group's first element:
// g = dy, zeroed where y <= 0 (when y != 0), stored to dres (when dres != 0); sum[0..3] (float64)
// += the sum of g (two float32 chains of ROWS / 2 rows, added, promoted), dot[0..3] += the sum of
// g * x the same way.
INLINE void grad_rows(const float* dy, const float* x, const float* y, float* dres, double* sum,
                      double* dot, int c) {
  v128_t zero = wasm_f32x4_splat(0);
  v128_t s0 = zero, s1 = zero, d0 = zero, d1 = zero;
  for (int k = 0; k < ROWS; k += 2) {
    long o0 = (long)k * c;
    long o1 = o0 + c;
    v128_t g0 = wasm_v128_load(dy + o0);
    v128_t g1 = wasm_v128_load(dy + o1);
    if (y) {
      g0 = wasm_v128_and(g0, wasm_f32x4_gt(wasm_v128_load(y + o0), zero));
      g1 = wasm_v128_and(g1, wasm_f32x4_gt(wasm_v128_load(y + o1), zero));
    }
    if (dres) {
      wasm_v128_store(dres + o0, g0);
      wasm_v128_store(dres + o1, g1);
    }
    s0 = wasm_f32x4_add(s0, g0);
    s1 = wasm_f32x4_add(s1, g1);
    d0 = MFI_MADD(g0, wasm_v128_load(x + o0), d0);
    d1 = MFI_MADD(g1, wasm_v128_load(x + o1), d1);
  }
  v128_t s = wasm_f32x4_add(s0, s1);
  v128_t d = wasm_f32x4_add(d0, d1);
  add2(sum, wasm_f64x2_promote_low_f32x4(s), promote_high(s));
  add2(dot, wasm_f64x2_promote_low_f32x4(d), promote_high(d));
}

// The same for one row (promoted first).
INLINE void grad_row(const float* dy, const float* x, const float* y, float* dres, double* sum,
                     double* dot) {
  v128_t g = wasm_v128_load(dy);
  if (y) g = wasm_v128_and(g, wasm_f32x4_gt(wasm_v128_load(y), wasm_f32x4_splat(0)));
  if (dres) wasm_v128_store(dres, g);
  v128_t v = wasm_v128_load(x);
  v128_t glo = wasm_f64x2_promote_low_f32x4(g);
  v128_t ghi = promote_high(g);
  add2(sum, glo, ghi);
  add2(dot, wasm_f64x2_mul(glo, wasm_f64x2_promote_low_f32x4(v)),
       wasm_f64x2_mul(ghi, promote_high(v)));
}

// The vector channel groups (cv channels) of a span of m rows at offset os (g written to dres
// where dres != 0): the sums of g added to sum and those of g * x to dot, through the span's
// accumulators acc (2c doubles); a span of one ROWS chunk directly, as in stats_span.
INLINE void grad_span(const float* dy, const float* x, const float* y, float* dres, long os,
                      double* sum, double* dot, double* acc, int m, int c, int cv) {
  if (m == ROWS) {
    for (int j = 0; j < cv; j += 4) {
      long o = os + j;
      grad_rows(dy + o, x + o, y ? y + o : 0, dres ? dres + o : 0, sum + j, dot + j, c);
    }
    return;
  }
  for (int j = 0; j < 2 * c; j++) acc[j] = 0;
  int r = 0;
  for (; r + ROWS <= m; r += ROWS) {
    for (int j = 0; j < cv; j += 4) {
      long o = os + (long)r * c + j;
      grad_rows(dy + o, x + o, y ? y + o : 0, dres ? dres + o : 0, acc + j, acc + c + j, c);
    }
  }
  for (; r < m; r++) {
    for (int j = 0; j < cv; j += 4) {
      long o = os + (long)r * c + j;
      grad_row(dy + o, x + o, y ? y + o : 0, dres ? dres + o : 0, acc + j, acc + c + j);
    }
  }
  for (int j = 0; j < cv; j += 4) {
    add2(sum + j, wasm_v128_load(acc + j), wasm_v128_load(acc + j + 2));
    add2(dot + j, wasm_v128_load(acc + c + j), wasm_v128_load(acc + c + j + 2));
  }
}

// g = dy, zeroed where y <= 0 (when y != 0), stored to dres (when dres != 0); per block of
// block_rows rows: blocks[2c b + j] = sum of g[r, j] over the block's rows, blocks[2c b + c + j] =
// sum of g[r, j] * x[r, j] (float64). This share's blocks only.
__attribute__((export_name("bn_grad_sums_f32"))) void bn_grad_sums_f32(
    const float* dy, const float* x, const float* y, float* dres, double* blocks, int rows, int c,
    int block_rows, int part, int parts) {
  int nb = block_total(rows, block_rows);
  int b1 = share_end(nb, part, parts);
  int cv = c & ~3;
  int span = span_rows(c);
  for (int b = share_begin(nb, part, parts); b < b1; b++) {
    int n = block_count(rows, b, block_rows);
    long o0 = (long)block_first(b, block_rows) * c;
    double* sum = blocks + (long)b * 2 * c;
    double* dot = sum + c;
    double* acc = blocks + ((long)nb + b) * 2 * c;
    for (int j = 0; j < 2 * c; j++) sum[j] = 0;
    for (int r0 = 0; r0 < n; r0 += span) {
      int m = n - r0 < span ? n - r0 : span;
      long os = o0 + (long)r0 * c;
      grad_span(dy, x, y, dres, os, sum, dot, acc, m, c, cv);
      for (int j = cv; j < c; j++) {
        for (int r = 0; r < m; r++) {
          long o = os + (long)r * c + j;
          float g = dy[o];
          if (y && !(y[o] > 0)) g = 0;
          if (dres) dres[o] = g;
          sum[j] += g;
          dot[j] += (double)g * x[o];
        }
      }
    }
  }
}

// dx = k * (g - gmean) + b * (x - mean) per channel, g = dy zeroed where y <= 0 (when y != 0).
// kbmg holds k, b, mean and gmean, c floats each.
__attribute__((export_name("bn_grad_dx_f32"))) void bn_grad_dx_f32(const float* dy, const float* y,
                                                                   const float* x, float* dx,
                                                                   const float* kbmg, int rows,
                                                                   int c, int part, int parts) {
  int r0 = share_begin(rows, part, parts);
  int r1 = share_end(rows, part, parts);
  int cv = c & ~3;
  const float* k = kbmg;
  const float* b = kbmg + c;
  const float* mean = kbmg + 2 * c;
  const float* gmean = kbmg + 3 * c;
  v128_t zero = wasm_f32x4_splat(0);
  for (int r = r0; r < r1; r++) {
    long o = (long)r * c;
    for (int j = 0; j < cv; j += 4) {
      v128_t g = wasm_v128_load(dy + o + j);
      if (y) g = wasm_v128_and(g, wasm_f32x4_gt(wasm_v128_load(y + o + j), zero));
      v128_t xc = wasm_f32x4_sub(wasm_v128_load(x + o + j), wasm_v128_load(mean + j));
      v128_t gc = wasm_f32x4_sub(g, wasm_v128_load(gmean + j));
      v128_t t = wasm_f32x4_mul(wasm_v128_load(b + j), xc);
      wasm_v128_store(dx + o + j, MFI_MADD(wasm_v128_load(k + j), gc, t));
    }
    for (int j = cv; j < c; j++) {
      float g = dy[o + j];
      if (y && !(y[o + j] > 0)) g = 0;
      dx[o + j] = k[j] * (g - gmean[j]) + b[j] * (x[o + j] - mean[j]);
    }
  }
}
