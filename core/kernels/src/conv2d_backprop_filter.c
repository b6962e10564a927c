// Conv2DBackpropFilter (NHWC input, HWIO filter) in WebAssembly SIMD, for tfjs-backend-wasm.
//
//   dw[i, j, ci, co] = sum over b, oy, ox of  x[b, oy*sh + i - pt, ox*sw + j - pl, ci] * dy[b, oy, ox, co]
//
// For each image and each filter tap (i, j), dw[i, j] ([cin, cout]) accumulates x_tap^T dy over the
// tap's valid output pixels, taken in chunks of about PIXEL_CHUNK pixels (whole output rows) so
// that the rows of x and dy a chunk reads stay in the L1 cache while every channel tile passes over
// them. A register tile of 3 input channels x 12 output channels (9 f32x4 accumulators: with the
// fused MFI_MADD of the relaxed build, one more chain than 4 x 8 hides more of its latency, while
// 12 accumulators run out of registers in V8) is loaded from dw, updated over the chunk's pixels
// (three f32x4 loads of dy and three broadcasts of x per pixel) and stored back. Tails: 1 input
// channel at a time, then 8 and 4 output channels (tiles of 4 x 8 and 4 x 4), then scalars.
// Every element still sums its products in the order images, rows, columns: chunking and tiling
// do not change a bit.
//
// Work units for threads (see simd.h): (tap, block of up to 12 output channels); each share zeroes
// and accumulates only its units, images in order, so the sums do not depend on the split.
//
// Built by `deno task build:kernels` (clang/lld --target=wasm32 -msimd128 -O3 -nostdlib). The module
// imports tfjs-backend-wasm's own memory and works on its tensors in place.

#include "simd.h"

// First and one-past-last output index whose input index o*s + k - p lies in [0, n).
INLINE int first_valid(int k, int p, int s) {
  int d = p - k;  // need o*s >= d
  return d <= 0 ? 0 : (d + s - 1) / s;
}
INLINE int end_valid(int k, int p, int s, int n, int no) {
  int d = n - 1 + p - k;  // need o*s <= d
  if (d < 0) return 0;
  int e = d / s + 1;
  return e < no ? e : no;
}

struct geometry {
  const float* x;   // this image, [h, w, cin]
  const float* dy;  // this image, [ho, wo, cout]
  int w, cin, wo, cout, sh, sw;
  int oy0, oy1, ox0, ox1;  // valid output rows/columns of this tap
  int iy0, ix0;            // input row/column of output (oy0, ox0)
};

// A tile of CI input channels x (4 * CV) output channels.
#define TILE(CI, CV)                                                                        \
  static void tile_##CI##_##CV(const struct geometry* g, float* dw, int ci0, int co0) {     \
    v128_t acc[CI][CV];                                                                     \
    for (int r = 0; r < CI; r++)                                                            \
      for (int c = 0; c < CV; c++) acc[r][c] = wasm_v128_load(dw + (ci0 + r) * g->cout + co0 + 4 * c); \
    const int xstep = g->sw * g->cin;                                                       \
    for (int oy = g->oy0, iy = g->iy0; oy < g->oy1; oy++, iy += g->sh) {                    \
      const float* xp = g->x + (iy * g->w + g->ix0) * g->cin + ci0;                          \
      const float* dp = g->dy + (oy * g->wo + g->ox0) * g->cout + co0;                       \
      for (int ox = g->ox0; ox < g->ox1; ox++, xp += xstep, dp += g->cout) {                \
        v128_t d[CV];                                                                       \
        for (int c = 0; c < CV; c++) d[c] = wasm_v128_load(dp + 4 * c);                     \
        for (int r = 0; r < CI; r++) {                                                      \
          v128_t xv = wasm_v128_load32_splat(xp + r);                                       \
          for (int c = 0; c < CV; c++) acc[r][c] = MFI_MADD(xv, d[c], acc[r][c]); \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    for (int r = 0; r < CI; r++)                                                            \
      for (int c = 0; c < CV; c++) wasm_v128_store(dw + (ci0 + r) * g->cout + co0 + 4 * c, acc[r][c]); \
  }

TILE(3, 3)
TILE(1, 3)
TILE(4, 2)
TILE(1, 2)
TILE(4, 1)
TILE(1, 1)

// Output channels co0.. (fewer than 4): plain scalars.
static void tile_scalar(const struct geometry* g, float* dw, int ci, int co) {
  float acc = dw[ci * g->cout + co];
  const int xstep = g->sw * g->cin;
  for (int oy = g->oy0, iy = g->iy0; oy < g->oy1; oy++, iy += g->sh) {
    const float* xp = g->x + (iy * g->w + g->ix0) * g->cin + ci;
    const float* dp = g->dy + (oy * g->wo + g->ox0) * g->cout + co;
    for (int ox = g->ox0; ox < g->ox1; ox++, xp += xstep, dp += g->cout) acc += *xp * *dp;
  }
  dw[ci * g->cout + co] = acc;
}

// Output channels per work unit (the main tile's width).
#define BLOCK 12
// Output pixels per chunk (whole rows; at least one row).
#define PIXEL_CHUNK 64

// Output channels [co0, co1) of tap (i, j) for one image, over the pixels of g: 12-wide tiles,
// then 8-wide, 4-wide, then scalars.
INLINE void tap_block_pixels(const struct geometry* g, float* t, int cin, int co0, int co1) {
  int co = co0;
  for (; co + 12 <= co1; co += 12) {
    int ci = 0;
    for (; ci + 3 <= cin; ci += 3) tile_3_3(g, t, ci, co);
    for (; ci < cin; ci++) tile_1_3(g, t, ci, co);
  }
  for (; co + 8 <= co1; co += 8) {
    int ci = 0;
    for (; ci + 4 <= cin; ci += 4) tile_4_2(g, t, ci, co);
    for (; ci < cin; ci++) tile_1_2(g, t, ci, co);
  }
  for (; co + 4 <= co1; co += 4) {
    int ci = 0;
    for (; ci + 4 <= cin; ci += 4) tile_4_1(g, t, ci, co);
    for (; ci < cin; ci++) tile_1_1(g, t, ci, co);
  }
  for (; co < co1; co++)
    for (int ci = 0; ci < cin; ci++) tile_scalar(g, t, ci, co);
}

// The same over the tap's valid pixels, a chunk of whole output rows at a time.
INLINE void tap_block(const struct geometry* g, float* t, int cin, int co0, int co1) {
  int rows = PIXEL_CHUNK / (g->ox1 - g->ox0);
  if (rows < 1) rows = 1;
  struct geometry c = *g;
  for (int oy = g->oy0; oy < g->oy1; oy += rows) {
    c.oy0 = oy;
    c.oy1 = oy + rows < g->oy1 ? oy + rows : g->oy1;
    c.iy0 = g->iy0 + (oy - g->oy0) * g->sh;
    tap_block_pixels(&c, t, cin, co0, co1);
  }
}

__attribute__((export_name("conv2d_backprop_filter_f32")))
void conv2d_backprop_filter_f32(const float* x, const float* dy, float* dw, int n, int h, int w,
                                int cin, int ho, int wo, int cout, int kh, int kw, int sh, int sw,
                                int pt, int pl, int part, int parts) {
  const int blocks = (cout + BLOCK - 1) / BLOCK;  // output-channel blocks per tap
  const int u0 = share_begin(kh * kw * blocks, part, parts);
  const int u1 = share_end(kh * kw * blocks, part, parts);
  for (int u = u0; u < u1; u++) {
    const int tap = u / blocks, co0 = (u % blocks) * BLOCK;
    const int co1 = co0 + BLOCK < cout ? co0 + BLOCK : cout;
    float* t = dw + tap * cin * cout;
    for (int ci = 0; ci < cin; ci++)
      for (int co = co0; co < co1; co++) t[ci * cout + co] = 0.0f;
  }
  for (int b = 0; b < n; b++) {
    struct geometry g = {x + b * h * w * cin, dy + b * ho * wo * cout, w, cin, wo, cout, sh, sw};
    for (int u = u0; u < u1; u++) {
      const int tap = u / blocks, i = tap / kw, j = tap % kw, co0 = (u % blocks) * BLOCK;
      const int co1 = co0 + BLOCK < cout ? co0 + BLOCK : cout;
      g.oy0 = first_valid(i, pt, sh);
      g.oy1 = end_valid(i, pt, sh, h, ho);
      g.ox0 = first_valid(j, pl, sw);
      g.ox1 = end_valid(j, pl, sw, w, wo);
      if (g.oy0 >= g.oy1 || g.ox0 >= g.ox1) continue;
      g.iy0 = g.oy0 * sh + i - pt;
      g.ix0 = g.ox0 * sw + j - pl;
      tap_block(&g, dw + tap * cin * cout, cin, co0, co1);
    }
  }
}
