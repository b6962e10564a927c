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
// Sums run over blocks of ROWS rows in float32 registers, each block's partial sums then added in
// float64 (promoted f32x4 -> two f64x2) to a caller-provided buffer of 2 * c doubles; blocks are
// taken in row order from row 0 whatever the split.
//
// Work units for threads (see simd.h): the reductions split the channels in groups of 4 (each share
// sums every row of its channels); the elementwise passes split the rows. No share writes what
// another writes, and no result depends on the split.
//
// Built by `deno task build:kernels`. The module imports tfjs-backend-wasm's own memory and works
// on its tensors in place; no linear-memory stack is used.

#include "simd.h"

#define ROWS 8

// The channel range [*j0, *j1) of a reduction share: groups of 4 channels.
#define CHANNEL_SHARE(c, part, parts, j0, j1)       \
  int groups_ = ((c) + 3) / 4;                      \
  int j0 = share_begin(groups_, part, parts) * 4;   \
  int j1 = share_end(groups_, part, parts) * 4;     \
  if (j1 > (c)) j1 = (c);                           \
  int jv = j0 + ((j1 - j0) & ~3);

INLINE v128_t promote_high(v128_t v) {
  return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 2, 3));
}

// acc[j] += lo/hi (two f64x2 at acc + j).
INLINE void add2(double* acc, v128_t lo, v128_t hi) {
  wasm_v128_store(acc, wasm_f64x2_add(wasm_v128_load(acc), lo));
  wasm_v128_store(acc + 2, wasm_f64x2_add(wasm_v128_load(acc + 2), hi));
}

// acc[j] = sum over rows of x[r, j]; acc[c + j] = sum of x[r, j]^2 (float64), for this share's
// channels (zeroed first).
__attribute__((export_name("bn_stats_f32"))) void bn_stats_f32(const float* x, double* acc,
                                                               int rows, int c, int part,
                                                               int parts) {
  CHANNEL_SHARE(c, part, parts, j0, j1)
  double* sum = acc;
  double* sq = acc + c;
  for (int j = j0; j < j1; j++) {
    sum[j] = 0;
    sq[j] = 0;
  }
  int r = 0;
  for (; r + ROWS <= rows; r += ROWS) {
    const float* xb = x + (long)r * c;
    for (int j = j0; j < jv; j += 4) {
      v128_t s = wasm_f32x4_splat(0);
      v128_t q = wasm_f32x4_splat(0);
      for (int k = 0; k < ROWS; k++) {
        v128_t v = wasm_v128_load(xb + (long)k * c + j);
        s = wasm_f32x4_add(s, v);
        q = MFI_MADD(v, v, q);
      }
      add2(sum + j, wasm_f64x2_promote_low_f32x4(s), promote_high(s));
      add2(sq + j, wasm_f64x2_promote_low_f32x4(q), promote_high(q));
    }
    for (int k = 0; k < ROWS; k++) {
      for (int j = jv; j < j1; j++) {
        double v = xb[(long)k * c + j];
        sum[j] += v;
        sq[j] += v * v;
      }
    }
  }
  for (; r < rows; r++) {
    const float* xr = x + (long)r * c;
    for (int j = j0; j < jv; j += 4) {
      v128_t v = wasm_v128_load(xr + j);
      v128_t lo = wasm_f64x2_promote_low_f32x4(v);
      v128_t hi = promote_high(v);
      add2(sum + j, lo, hi);
      add2(sq + j, wasm_f64x2_mul(lo, lo), wasm_f64x2_mul(hi, hi));
    }
    for (int j = jv; j < j1; j++) {
      double v = xr[j];
      sum[j] += v;
      sq[j] += v * v;
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

// g = dy, zeroed where y <= 0 (when y != 0); acc[j] = sum of g, acc[c + j] = sum of g * x
// (float64), for this share's channels (zeroed first); g stored to dres when dres != 0.
__attribute__((export_name("bn_grad_sums_f32"))) void bn_grad_sums_f32(
    const float* dy, const float* x, const float* y, float* dres, double* acc, int rows, int c,
    int part, int parts) {
  CHANNEL_SHARE(c, part, parts, j0, j1)
  double* sum = acc;
  double* dot = acc + c;
  for (int j = j0; j < j1; j++) {
    sum[j] = 0;
    dot[j] = 0;
  }
  v128_t zero = wasm_f32x4_splat(0);
  int r = 0;
  for (; r + ROWS <= rows; r += ROWS) {
    long ob = (long)r * c;
    for (int j = j0; j < jv; j += 4) {
      v128_t s = wasm_f32x4_splat(0);
      v128_t d = wasm_f32x4_splat(0);
      for (int k = 0; k < ROWS; k++) {
        long o = ob + (long)k * c + j;
        v128_t g = wasm_v128_load(dy + o);
        if (y) g = wasm_v128_and(g, wasm_f32x4_gt(wasm_v128_load(y + o), zero));
        if (dres) wasm_v128_store(dres + o, g);
        s = wasm_f32x4_add(s, g);
        d = MFI_MADD(g, wasm_v128_load(x + o), d);
      }
      add2(sum + j, wasm_f64x2_promote_low_f32x4(s), promote_high(s));
      add2(dot + j, wasm_f64x2_promote_low_f32x4(d), promote_high(d));
    }
    for (int k = 0; k < ROWS; k++) {
      for (int j = jv; j < j1; j++) {
        long o = ob + (long)k * c + j;
        float g = dy[o];
        if (y && !(y[o] > 0)) g = 0;
        if (dres) dres[o] = g;
        sum[j] += g;
        dot[j] += (double)g * x[o];
      }
    }
  }
  for (; r < rows; r++) {
    long o = (long)r * c;
    for (int j = j0; j < jv; j += 4) {
      v128_t g = wasm_v128_load(dy + o + j);
      if (y) g = wasm_v128_and(g, wasm_f32x4_gt(wasm_v128_load(y + o + j), zero));
      if (dres) wasm_v128_store(dres + o + j, g);
      v128_t v = wasm_v128_load(x + o + j);
      v128_t glo = wasm_f64x2_promote_low_f32x4(g);
      v128_t ghi = promote_high(g);
      add2(sum + j, glo, ghi);
      add2(dot + j, wasm_f64x2_mul(glo, wasm_f64x2_promote_low_f32x4(v)),
           wasm_f64x2_mul(ghi, promote_high(v)));
    }
    for (int j = jv; j < j1; j++) {
      float g = dy[o + j];
      if (y && !(y[o + j] > 0)) g = 0;
      if (dres) dres[o + j] = g;
      sum[j] += g;
      dot[j] += (double)g * x[o + j];
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
