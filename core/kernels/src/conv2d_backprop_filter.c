// Conv2DBackpropFilter (NHWC input, HWIO filter) in WebAssembly SIMD, for tfjs-backend-wasm.
//
//   dw[i, j, ci, co] = sum over b, oy, ox of  x[b, oy*sh + i - pt, ox*sw + j - pl, ci] * dy[b, oy, ox, co]
//
// For each image and each filter tap (i, j), dw[i, j] ([cin, cout]) accumulates x_tap^T dy over the
// tap's valid output pixels, taken in chunks of about PIXEL_CHUNK pixels (whole output rows; images
// smaller than that, several whole images) so that the rows of x and dy a chunk reads stay in the
// L1 cache while every channel tile passes over them. A register tile of 6 input channels x 8
// output channels (12 f32x4 accumulators, the forward kernel's shape) is loaded from dw, updated
// over the chunk's pixels (two f32x4 loads of dy and six broadcasts of x per pixel) and stored
// back. Chunking small images together matters at 4 x 4 (the last stage of a CIFAR ResNet): a tile
// that loaded and stored its accumulators for every image's 9-16 pixels ran the filter gradient
// 1.13-1.26x slower there (one thread, builds alternating in one process, Intel Xeon host). The
// tile is a function of its own (`tile_6x8`, and `tile_6x8_images` for chunks of several images),
// and the binaries are built with source-order instruction scheduling (build_kernels.ts), so that
// V8 keeps the 12 accumulators, the two dy vectors and a broadcast in its 15 SIMD registers.
// Tails: 4, 3, 2 or 1 input channels x 8 output channels (the stem's 3 input channels take 3 x 8
// tiles), then 4 output channels, then scalars.
// Within one image group (below) every element sums its products in the order images, rows,
// columns: chunking and tiling do not change a bit.
//
// Image groups: conv2d_backprop_filter_groups_f32 splits the images into `groups` consecutive
// near-equal groups (a number the caller derives from the shapes only); group 0 accumulates into
// dw, group g > 0 into its own partial pw + (g - 1) * kh*kw*cin*cout, and
// conv2d_backprop_filter_sum_f32 then adds the partials to dw in group order. Work units are
// (group, tap, output-channel block, input-channel block), group-major, so that a share's units
// stream the images of one group (of two at most) rather than all of them.
//
// Work units for threads (see simd.h): output-channel blocks 8 wide (near-equal blocks where there
// are fewer than 12 input channels); each share zeroes and accumulates only its units,
// images in order, so the sums do not depend on the split.
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
  const float* x;   // the first image, [h, w, cin]
  const float* dy;  // the first image, [ho, wo, cout]
  int w, cin, wo, cout, sh, sw;
  int images, ximg, dimg;  // images, and floats from one image to the next in x and in dy
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
    for (int b = 0; b < g->images; b++)                                                     \
      for (int oy = g->oy0, iy = g->iy0; oy < g->oy1; oy++, iy += g->sh) {                  \
        const float* xp = g->x + b * g->ximg + (iy * g->w + g->ix0) * g->cin + ci0;         \
        const float* dp = g->dy + b * g->dimg + (oy * g->wo + g->ox0) * g->cout + co0;      \
        for (int ox = g->ox0; ox < g->ox1; ox++, xp += xstep, dp += g->cout) {              \
          v128_t d[CV];                                                                     \
          for (int c = 0; c < CV; c++) d[c] = wasm_v128_load(dp + 4 * c);                   \
          for (int r = 0; r < CI; r++) {                                                    \
            v128_t xv = wasm_v128_load32_splat(xp + r);                                     \
            for (int c = 0; c < CV; c++) acc[r][c] = MFI_MADD(xv, d[c], acc[r][c]);         \
          }                                                                                 \
        }                                                                                   \
      }                                                                                     \
    for (int r = 0; r < CI; r++)                                                            \
      for (int c = 0; c < CV; c++) wasm_v128_store(dw + (ci0 + r) * g->cout + co0 + 4 * c, acc[r][c]); \
  }

// The main tile: 6 input channels x 8 output channels of dw (rows cout floats apart) over `rows`
// rows of `cols` pixels, x at xp (pixels xstep floats apart, rows xrow apart), dy at dp (pixels
// cout floats apart, rows drow apart); tile_6x8_images over `images` such blocks, ximg and dimg
// floats apart in x and dy (small images that tap_block_pixels could not make one row). Two
// functions, so that one image's blocks run the same code as before images were chunked.
// Arguments are plain numbers (no struct in memory: no linear-memory stack).
#define T68_LOAD(k)                                 \
  v128_t a##k##0 = wasm_v128_load(dw + (k) * cout); \
  v128_t a##k##1 = wasm_v128_load(dw + (k) * cout + 4);
#define T68_STEP(k)                                   \
  {                                                   \
    const v128_t v = wasm_v128_load32_splat(xq + (k)); \
    a##k##0 = MFI_MADD(v, d0, a##k##0);               \
    a##k##1 = MFI_MADD(v, d1, a##k##1);               \
  }
#define T68_STORE(k)                           \
  wasm_v128_store(dw + (k) * cout, a##k##0);   \
  wasm_v128_store(dw + (k) * cout + 4, a##k##1);
#define T68_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5)
// The rows of one block, from x at XP and dy at DP (both advanced).
#define T68_ROWS(XP, DP)                                                 \
  for (int r = 0; r < rows; r++, XP += xrow, DP += drow) {               \
    const float* xq = XP;                                                \
    const float* dq = DP;                                                \
    _Pragma("clang loop unroll(disable)")                                \
    for (int c = 0; c < cols; c++, xq += xstep, dq += cout) {            \
      const v128_t d0 = wasm_v128_load(dq), d1 = wasm_v128_load(dq + 4); \
      T68_ALL(T68_STEP)                                                  \
    }                                                                    \
  }
__attribute__((noinline)) static void tile_6x8(const float* xp, const float* dp, float* dw,
                                               int rows, int cols, int xstep, int xrow, int drow,
                                               int cout) {
  T68_ALL(T68_LOAD)
  T68_ROWS(xp, dp)
  T68_ALL(T68_STORE)
}
__attribute__((noinline)) static void tile_6x8_images(const float* xp, const float* dp, float* dw,
                                                      int images, int rows, int cols, int xstep,
                                                      int xrow, int drow, int ximg, int dimg,
                                                      int cout) {
  T68_ALL(T68_LOAD)
  for (int b = 0; b < images; b++) {
    const float* xr = xp + b * ximg;
    const float* dr = dp + b * dimg;
    T68_ROWS(xr, dr)
  }
  T68_ALL(T68_STORE)
}

TILE(4, 2)
TILE(3, 2)
TILE(2, 2)
TILE(1, 2)
TILE(4, 1)
TILE(1, 1)

// Output channels co0.. (fewer than 4): plain scalars.
static void tile_scalar(const struct geometry* g, float* dw, int ci, int co) {
  float acc = dw[ci * g->cout + co];
  const int xstep = g->sw * g->cin;
  for (int b = 0; b < g->images; b++)
    for (int oy = g->oy0, iy = g->iy0; oy < g->oy1; oy++, iy += g->sh) {
      const float* xp = g->x + b * g->ximg + (iy * g->w + g->ix0) * g->cin + ci;
      const float* dp = g->dy + b * g->dimg + (oy * g->wo + g->ox0) * g->cout + co;
      for (int ox = g->ox0; ox < g->ox1; ox++, xp += xstep, dp += g->cout) acc += *xp * *dp;
    }
  dw[ci * g->cout + co] = acc;
}

// Widest output-channel block of a work unit (the main tile's width), and input channels per
// block (a multiple of the main tile's 6).
#define CO_BLOCK 8
#define CI_BLOCK 24
// Work units below which input channels are split into blocks too.
#define MIN_UNITS 32
// Output pixels per chunk (whole rows, at least one; or whole images, see filter_grad).
#define PIXEL_CHUNK 64

// Channels [c0, c1) x [co0, co1) of tap (i, j) over the pixels of g's images: 8-wide tiles
// (6 input channels at a time, then 4, 3, 2, 1), 4-wide, then scalars.
INLINE void tap_block_pixels(const struct geometry* g, float* t, int c0, int c1, int co0, int co1) {
  // The main tile's pixels: rows that follow each other in both x and dy (whole rows at stride 1,
  // a 1x1 filter's or a middle-column tap's) are one row, and so are images that do: the same
  // pixels in the same order, with fewer, longer runs of the inner loop.
  int images = g->images, rows = g->oy1 - g->oy0, cols = g->ox1 - g->ox0;
  const int xstep = g->sw * g->cin, xrow = g->sh * g->w * g->cin, drow = g->wo * g->cout;
  if (xrow == cols * xstep && drow == cols * g->cout) {
    cols *= rows;
    rows = 1;
    if (g->ximg == cols * xstep && g->dimg == cols * g->cout) {
      cols *= images;
      images = 1;
    }
  }
  int co = co0;
  for (; co + 8 <= co1; co += 8) {
    int ci = c0;
    for (; ci + 6 <= c1; ci += 6) {
      const float* xp = g->x + (g->iy0 * g->w + g->ix0) * g->cin + ci;
      const float* dp = g->dy + (g->oy0 * g->wo + g->ox0) * g->cout + co;
      if (images == 1)
        tile_6x8(xp, dp, t + ci * g->cout + co, rows, cols, xstep, xrow, drow, g->cout);
      else
        tile_6x8_images(xp, dp, t + ci * g->cout + co, images, rows, cols, xstep, xrow, drow,
                        g->ximg, g->dimg, g->cout);
    }
    for (; ci + 4 <= c1; ci += 4) tile_4_2(g, t, ci, co);
    if (c1 - ci == 3) { tile_3_2(g, t, ci, co); ci += 3; }
    if (c1 - ci == 2) { tile_2_2(g, t, ci, co); ci += 2; }
    for (; ci < c1; ci++) tile_1_2(g, t, ci, co);
  }
  for (; co + 4 <= co1; co += 4) {
    int ci = c0;
    for (; ci + 4 <= c1; ci += 4) tile_4_1(g, t, ci, co);
    for (; ci < c1; ci++) tile_1_1(g, t, ci, co);
  }
  for (; co < co1; co++)
    for (int ci = c0; ci < c1; ci++) tile_scalar(g, t, ci, co);
}

// The same over the tap's valid pixels; of one image a chunk of whole output rows at a time (g's
// images, where more than one, are small enough to take whole).
INLINE void tap_block(const struct geometry* g, float* t, int c0, int c1, int co0, int co1) {
  if (g->images > 1) {
    tap_block_pixels(g, t, c0, c1, co0, co1);
    return;
  }
  int rows = PIXEL_CHUNK / (g->ox1 - g->ox0);
  if (rows < 1) rows = 1;
  struct geometry c = *g;
  for (int oy = g->oy0; oy < g->oy1; oy += rows) {
    c.oy0 = oy;
    c.oy1 = oy + rows < g->oy1 ? oy + rows : g->oy1;
    c.iy0 = g->iy0 + (oy - g->oy0) * g->sh;
    tap_block_pixels(&c, t, c0, c1, co0, co1);
  }
}

// Boundary k of n near-equal blocks over [0, total), on a multiple of `align` (the last is total).
INLINE int block_edge(int total, int n, int k, int align) {
  if (k >= n) return total;
  int e = (int)(((long long)total * k) / n);
  return e - e % align;
}

// A work unit: tap, output-channel block [co0, co1), input-channel block [c0, c1). Units are
// numbered taps outermost, then input-channel blocks, output-channel blocks innermost, so that a
// share (consecutive units) takes every output block of an input block before the next input
// block: each share reads its own input channels of x (a few floats per pixel, scattered over the
// pixel's row: latency-bound reads) rather than every share reading all of them, and reads dy's
// rows whole. With output blocks outermost (as this kernel had), 16 shares each re-read half of x
// per image: a 1x1 512 -> 128 filter gradient at 4 x 4 (batch 32, one group) ran 1.06x faster on
// two threads than on one (0.98-1.13x over 6 rounds, Intel Xeon host, inside one process); this
// order 1.98x (1.26-2.14x), 256 -> 64 at 8 x 8 1.61x -> 2.45x, one thread unchanged (0.96-1.02x
// by the median of 5 rounds, builds alternating in one process). No sum depends on the order.
struct unit {
  int tap, co0, co1, c0, c1;
};

INLINE struct unit unit_at(int u, int cin, int cout, int nco, int nci) {
  struct unit r;
  const int cob = u % nco, cib = (u / nco) % nci;
  r.tap = u / (nci * nco);
  if (cin >= 12) {
    // 8-wide blocks (the last one narrower).
    r.co0 = cob * CO_BLOCK;
    r.co1 = cob + 1 < nco ? r.co0 + CO_BLOCK : cout;
  } else {
    // Few input channels (the stem's 3): near-equal blocks, which take 3 x 8 tiles.
    r.co0 = block_edge(cout, nco, cob, 4);
    r.co1 = block_edge(cout, nco, cob + 1, 4);
  }
  r.c0 = block_edge(cin, nci, cib, 6);
  r.c1 = block_edge(cin, nci, cib + 1, 6);
  return r;
}

// Units of one image group: taps x output-channel blocks (at most 8 wide, see unit_at), and
// where all groups together have fewer than MIN_UNITS (a 1x1 filter, few channels) x near-equal
// input-channel blocks (at most about 24), so that there are units enough for the shares. (More
// blocks than needed cost a little locality: each unit streams its pixels separately.)
INLINE void filter_grad(const float* x, const float* dy, float* dw, float* pw, int n, int h, int w,
                        int cin, int ho, int wo, int cout, int kh, int kw, int sh, int sw, int pt,
                        int pl, int groups, int part, int parts) {
  const int nco = (cout + CO_BLOCK - 1) / CO_BLOCK;
  const int nci = groups * kh * kw * nco >= MIN_UNITS ? 1 : (cin + CI_BLOCK - 1) / CI_BLOCK;
  const int per_group = kh * kw * nco * nci;
  const int size = kh * kw * cin * cout;
  // Images of fewer than PIXEL_CHUNK output pixels go several to a chunk, so that a tile's
  // accumulators pass over about PIXEL_CHUNK pixels between loading and storing dw.
  const int per_chunk = ho * wo < PIXEL_CHUNK ? PIXEL_CHUNK / (ho * wo) : 1;
  const int u0 = share_begin(groups * per_group, part, parts);
  const int u1 = share_end(groups * per_group, part, parts);
  for (int u = u0; u < u1; u++) {
    const int grp = u / per_group;
    const struct unit r = unit_at(u % per_group, cin, cout, nco, nci);
    float* t = (grp == 0 ? dw : pw + (grp - 1) * size) + r.tap * cin * cout;
    for (int ci = r.c0; ci < r.c1; ci++)
      for (int co = r.co0; co < r.co1; co++) t[ci * cout + co] = 0.0f;
  }
  for (int grp = u0 / per_group; grp < groups && grp * per_group < u1; grp++) {
    float* target = grp == 0 ? dw : pw + (grp - 1) * size;
    const int v0 = u0 > grp * per_group ? u0 - grp * per_group : 0;
    const int v1 = u1 < (grp + 1) * per_group ? u1 - grp * per_group : per_group;
    const int b1 = even_end(n, grp, groups);
    for (int b = even_begin(n, grp, groups); b < b1; b += per_chunk) {
      const int images = b + per_chunk < b1 ? per_chunk : b1 - b;
      struct geometry g = {x + b * h * w * cin, dy + b * ho * wo * cout, w, cin, wo, cout, sh, sw,
                           images, h * w * cin, ho * wo * cout};
      for (int u = v0; u < v1; u++) {
        const struct unit r = unit_at(u, cin, cout, nco, nci);
        const int i = r.tap / kw, j = r.tap % kw;
        g.oy0 = first_valid(i, pt, sh);
        g.oy1 = end_valid(i, pt, sh, h, ho);
        g.ox0 = first_valid(j, pl, sw);
        g.ox1 = end_valid(j, pl, sw, w, wo);
        if (g.oy0 >= g.oy1 || g.ox0 >= g.ox1) continue;
        g.iy0 = g.oy0 * sh + i - pt;
        g.ix0 = g.ox0 * sw + j - pl;
        tap_block(&g, target + r.tap * cin * cout, r.c0, r.c1, r.co0, r.co1);
      }
    }
  }
}

// dw over all images (one group).
__attribute__((export_name("conv2d_backprop_filter_f32")))
void conv2d_backprop_filter_f32(const float* x, const float* dy, float* dw, int n, int h, int w,
                                int cin, int ho, int wo, int cout, int kh, int kw, int sh, int sw,
                                int pt, int pl, int part, int parts) {
  filter_grad(x, dy, dw, 0, n, h, w, cin, ho, wo, cout, kh, kw, sh, sw, pt, pl, 1, part, parts);
}

// Group 0's sums into dw, group g's into pw + (g - 1) * kh*kw*cin*cout (see the top).
__attribute__((export_name("conv2d_backprop_filter_groups_f32")))
void conv2d_backprop_filter_groups_f32(const float* x, const float* dy, float* dw, float* pw, int n,
                                       int h, int w, int cin, int ho, int wo, int cout, int kh,
                                       int kw, int sh, int sw, int pt, int pl, int groups, int part,
                                       int parts) {
  filter_grad(x, dy, dw, pw, n, h, w, cin, ho, wo, cout, kh, kw, sh, sw, pt, pl, groups, part,
              parts);
}

// dw[e] += pw[0][e], then += pw[1][e], ... (groups - 1 partials of `size` floats each, in order),
// shares of 4-float blocks.
__attribute__((export_name("conv2d_backprop_filter_sum_f32")))
void conv2d_backprop_filter_sum_f32(float* dw, const float* pw, int size, int groups, int part,
                                    int parts) {
  const int blocks = (size + 3) / 4;
  const int e0 = 4 * share_begin(blocks, part, parts);
  const int e1b = 4 * share_end(blocks, part, parts);
  const int e1 = e1b < size ? e1b : size;
  int e = e0;
  for (; e + 4 <= e1; e += 4) {
    v128_t s = wasm_v128_load(dw + e);
    for (int g = 0; g < groups - 1; g++) s = wasm_f32x4_add(s, wasm_v128_load(pw + g * size + e));
    wasm_v128_store(dw + e, s);
  }
  for (; e < e1; e++) {
    float s = dw[e];
    for (int g = 0; g < groups - 1; g++) s += pw[g * size + e];
    dw[e] = s;
  }
}
