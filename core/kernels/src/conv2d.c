// Conv2D (NHWC input, HWIO filter) and the stride phases of Conv2DBackpropInput in WebAssembly
// SIMD, for tfjs-backend-wasm.
//
// One core (`conv_units`, which `conv2d_rects_f32` runs for each rectangle) computes a
// stride-(sy, sx) correlation of an input xb of hb x wb pixels (the caller keeps every tap it
// asks for in bounds) with a packed filter, and writes each output pixel wherever the caller
// says (rows ry + a*ty, columns rx + c*tx of an output of yh x yw pixels): one rectangle of the
// forward output (ty = tx = 1), or of a stride phase of the input gradient (its interleaved pixels
// of dx). With kh = 0 (no tap) it writes the pixels as zeros.
//
//   y[b, ry + a*ty, rx + c*tx, co] = sum over i < kh, j < kw, ci of
//       xb[b, oy0 + a*sy + i, ox0 + c*sx + j, ci] * f[co / 8][i, j, ci, co % 8]
//
// The output pixels (b, a, c) are flattened, so tiles of R pixels stay full across row and image
// boundaries; a tile of R pixels x 8 output channels keeps 2R f32x4 accumulators in registers and
// runs over every tap and input channel with two vector loads of the filter and R broadcasts of
// the input per input channel (2R multiply-adds). The kw taps of one filter row read kw * cin
// consecutive floats of the input (and of the packed filter): one loop per filter row.
// The filter is packed by `conv2d_pack_filter_f32` into blocks of 8 output channels
// ([cout/8][kh][kw][cin][8], zero beyond cout) that are read sequentially. The plans
// (_conv_own_plan.ts) read the input in place: the output is split into rectangles whose taps are
// all inside the input, and `conv2d_rects_f32` computes all of them in one call, each with a
// window (the taps in bounds) of one packed filter, and writes the rectangles without taps (the
// input gradient's pixels that no tap reaches) as zeros.
// Tails: the last tile repeats its last pixel and stores only the real ones; the last channel
// block stores only the real lanes. A 1x1 tile first touches (loads: WebAssembly has no prefetch)
// the next tile's input lines, whose misses would otherwise stall the next tile's first channel
// block (a 1x1 tile has few multiply-adds per input line). Tiles do not touch the output lines
// they store: the stores wait in the store queue while the multiply-adds go on.
//
// A 1x1 stride-1 convolution over the whole input (the bottleneck's, forward and input gradient)
// runs its full tiles on a lean path of its own (`conv1x1_units`): its pixels are consecutive rows
// of cin input and cout output floats, so a tile needs no per-pixel offsets and no tail tests, and
// it is a function of its own, which V8 compiles with fewer values spilled around the channel
// loop. Such a tile has only cin multiply-add steps (16 to 512 in a ResNet x0.25), so its fixed
// cost per tile and channel block decides its speed.
//
// Work units for threads (see simd.h): pack = one (block, tap); conv = one
// (tile, channel block), tile-major, rectangle after rectangle. Every output element is written
// by one unit, with a summation order (taps, then input channels) that does not depend on the
// split.
//
// Built by `deno task build:kernels`. The module imports tfjs-backend-wasm's own memory.

#include "simd.h"

// Pixels per register tile (2 * R accumulators).
#ifndef MFI_CONV_R
#define MFI_CONV_R 6
#endif
#define R MFI_CONV_R

// fp[blk][ty][tx][ci][l] = f[base + ty*sfy + tx*sfx + ci*sci + (8*blk + l)*sco]
// for 8*blk + l < cout, else 0 (strides may be negative: the input gradient reads its sub-filters
// reversed). Full blocks are copied with vectors where the forward filter (sco = 1) or the input
// gradient's transposed one (sci = 1) allows: the plans pack one sub-filter per rectangle.
__attribute__((export_name("conv2d_pack_filter_f32")))
void conv2d_pack_filter_f32(const float* f, float* fp, int kh, int kw, int cin, int cout, int base,
                            int sfy, int sfx, int sci, int sco, int part, int parts) {
  const int taps = kh * kw, blocks = (cout + 7) / 8;
  const int u0 = share_begin(blocks * taps, part, parts);
  const int u1 = share_end(blocks * taps, part, parts);
  for (int u = u0; u < u1; u++) {
    const int blk = u / taps, t = u % taps, i = t / kw, j = t % kw;
    float* d = fp + (long)u * cin * 8;
    const int co0 = 8 * blk, nco = cout - co0 < 8 ? cout - co0 : 8;
    const float* s = f + base + i * sfy + j * sfx + co0 * sco;
    int c0 = 0;
    if (nco == 8 && sco == 1) {
      // The 8 channels of an input channel are consecutive (the forward filter): two vectors.
      for (; c0 < cin; c0++, d += 8) {
        wasm_v128_store(d, wasm_v128_load(s + c0 * sci));
        wasm_v128_store(d + 4, wasm_v128_load(s + c0 * sci + 4));
      }
    } else if (nco == 8 && sci == 1) {
      // Consecutive input channels (the input gradient's transposed filter): 4 x 4 transposes of
      // 4 input channels x 4 output channels.
      for (; c0 + 4 <= cin; c0 += 4, d += 32) {
        for (int h = 0; h < 8; h += 4) {
          const v128_t r0 = wasm_v128_load(s + c0 + (h + 0) * sco);
          const v128_t r1 = wasm_v128_load(s + c0 + (h + 1) * sco);
          const v128_t r2 = wasm_v128_load(s + c0 + (h + 2) * sco);
          const v128_t r3 = wasm_v128_load(s + c0 + (h + 3) * sco);
          const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
          const v128_t t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
          const v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
          const v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
          wasm_v128_store(d + h, wasm_i64x2_shuffle(t0, t1, 0, 2));
          wasm_v128_store(d + 8 + h, wasm_i64x2_shuffle(t0, t1, 1, 3));
          wasm_v128_store(d + 16 + h, wasm_i64x2_shuffle(t2, t3, 0, 2));
          wasm_v128_store(d + 24 + h, wasm_i64x2_shuffle(t2, t3, 1, 3));
        }
      }
    }
    for (int ci = c0; ci < cin; ci++, d += 8) {
      int l = 0;
      for (; l < nco; l++) d[l] = s[ci * sci + l * sco];
      for (; l < 8; l++) d[l] = 0.0f;
    }
  }
}

// Stores the real lanes (nv of 4) of v at p.
INLINE void store_lanes(float* p, v128_t v, int nv) {
  if (nv >= 4) {
    wasm_v128_store(p, v);
    return;
  }
  if (nv >= 1) wasm_v128_store32_lane(p, v, 0);
  if (nv >= 2) wasm_v128_store32_lane(p + 1, v, 1);
  if (nv >= 3) wasm_v128_store32_lane(p + 2, v, 2);
}

#define ACC_ZERO(k) v128_t a##k##0 = wasm_f32x4_const_splat(0.0f), a##k##1 = a##k##0;
#define STEP(k, o)                               \
  {                                              \
    const v128_t v = wasm_v128_load32_splat(p##k + (o)); \
    a##k##0 = MFI_MADD(v, f0, a##k##0);          \
    a##k##1 = MFI_MADD(v, f1, a##k##1);          \
  }
#define STORE(k)                                                   \
  if (k < live) {                                                  \
    store_lanes(y + yo[k] + co0, a##k##0, nco);                    \
    if (nco > 4) store_lanes(y + yo[k] + co0 + 4, a##k##1, nco - 4); \
  }

// A full tile (live == R, nco == 8): plain stores, no lane or pixel tests.
#define STORE_FULL(k)                             \
  wasm_v128_store(y + yo[k] + co0, a##k##0);      \
  wasm_v128_store(y + yo[k] + co0 + 4, a##k##1);

#if R == 6
#define FOR_R(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define FOR_R_O(M, o) M(0, o) M(1, o) M(2, o) M(3, o) M(4, o) M(5, o)
#elif R == 4
#define FOR_R(M) M(0) M(1) M(2) M(3)
#define FOR_R_O(M, o) M(0, o) M(1, o) M(2, o) M(3, o)
#elif R == 5
#define FOR_R(M) M(0) M(1) M(2) M(3) M(4)
#define FOR_R_O(M, o) M(0, o) M(1, o) M(2, o) M(3, o) M(4, o)
#elif R == 7
#define FOR_R(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6)
#define FOR_R_O(M, o) M(0, o) M(1, o) M(2, o) M(3, o) M(4, o) M(5, o) M(6, o)
#else
#error "MFI_CONV_R must be 4, 5, 6 or 7"
#endif

#define DECL_P(k) const float* p##k = x + xo[k] + off;
#define ADV_P1(k) p##k += 1;
#define STEP_AT(k, o) STEP(k, o)

// One input channel of all R pixels: filter vectors at fp, broadcasts at p_k[o].
#define CHANNEL(o)                                    \
  {                                                   \
    const v128_t f0 = wasm_v128_load(fp + 8 * (o));   \
    const v128_t f1 = wasm_v128_load(fp + 8 * (o) + 4); \
    FOR_R_O(STEP_AT, o)                               \
  }

// n input channels of all R pixels, one channel per step from fp and p_k (both advanced), kept
// rolled: the 2R accumulators, two filter vectors and a broadcast fill V8's 15 usable SIMD
// registers exactly. Unrolled by 4 (as this loop was), clang hoists the 8 filter loads of a step
// ahead of its multiply-adds and V8 spills accumulators to the stack (a load and a store per
// accumulator and step, on top of each access's explicit bounds check): the rolled loop measured
// 12-25 % faster (AMD EPYC, one process alternating builds, 3x3 and 1x1 at 3 to 128 channels;
// unrolled by 2: 6-17 % slower than by 4; by 2 or 4 with source-order scheduling: 0.71-0.97x).
#define CHANNEL_RUN(n)                               \
  _Pragma("clang loop unroll(disable)")              \
  for (int e = 0; e < (n); e++) {                    \
    CHANNEL(0)                                       \
    FOR_R(ADV_P1)                                    \
    fp += 8;                                         \
  }

// One tile: pixels whose input/output offsets are xo[]/yo[] (live of them real), channels
// [co0, co0 + nco) from the packed block fb. `pre`: bits the caller loaded to touch the next
// tile's input, consumed only before the stores, so that those loads stall nothing. The engine
// drops a load whose value is unused, so the loaded bits are xored into an accumulator masked with
// `zero` (part / parts: always 0, unknown to both compilers): a bitwise no-op on every value.
INLINE void tile(const float* x, const float* fb, float* y, const int* xo, const int* yo, int live,
                 int co0, int nco, int kh, int kw, int wb, int cin, int skip, int pre, int zero) {
  // No touch of the output lines (loads ahead of the stores, as this tile once had): measured
  // without them (AMD EPYC, one thread, builds alternating in one process) the kernels alone ran
  // 0.97-1.06x (best of 6-10 rounds), inside ResNet-18/50 training steps forward and input-gradient
  // kernels took up to 14 % less time (once 1 % more, within a control build's spread).
  FOR_R(ACC_ZERO)
  const float* fp = fb;
  // The kw taps of a filter row read kw * cin consecutive input floats (and packed filter rows):
  // one run per filter row.
  const int run = kw * cin;
  for (int i = 0; i < kh; i++) {
    const int off = i * wb * cin;
    FOR_R(DECL_P)
    CHANNEL_RUN(run)
    fp += skip;  // to the next row of a sub-filter window (0 for a whole packed filter)
  }
  a01 = wasm_v128_xor(a01, wasm_i32x4_splat(pre & zero));  // zero: no change
  if (live == R && nco == 8) {
    FOR_R(STORE_FULL)
  } else {
    FOR_R(STORE)
  }
}

// Units [u0, u1) (tile-major (tile, channel block) pairs) of one rectangle: the filter window
// starts at fpk, its packed blocks are bstride floats apart and its rows frow floats apart (a
// window of kh x kw taps inside a larger packed filter has frow > kw * cin * 8).
INLINE void conv_units(const float* x, const float* fpk, int bstride, int frow, float* y, int n,
                       int hb, int wb, int cin, int kh, int kw, int cout, int oh, int ow, int sy,
                       int sx, int oy0, int ox0, int yh, int yw, int ry, int rx, int ty, int tx,
                       int u0, int u1, int zero) {
  const int pixels = n * oh * ow, blocks = (cout + 7) / 8;
  const int skip = frow - kw * cin * 8;
  if (u0 >= u1) return;
  int xo[R], yo[R];
  // Coordinates (image b, row a, column c) of the first tile's first pixel, then stepped pixel
  // by pixel (no division per tile).
  int t = u0 / blocks, blk = u0 % blocks;
  int b = t * R / (oh * ow), a = t * R % (oh * ow) / ow, c = t * R % ow;
  for (int u = u0; u < u1; t++, blk = 0) {
    const int live = pixels - t * R < R ? pixels - t * R : R;
    for (int k = 0; k < R; k++) {
      xo[k] = ((b * hb + oy0 + a * sy) * wb + ox0 + c * sx) * cin;
      yo[k] = ((b * yh + ry + a * ty) * yw + rx + c * tx) * cout;
      // Step to the next pixel; the last tile repeats its last one.
      if (k + 1 < live || (k + 1 == R && live == R)) {
        if (++c == ow) {
          c = 0;
          if (++a == oh) a = 0, b++;
        }
      }
    }
    // Touch the next tile's input (1x1: its pixels follow this tile's in memory along a row),
    // one load per 64-byte line, so that its misses overlap this tile's multiply-adds: the
    // hardware prefetchers miss these short runs (a tile's R pixels are R streams of cin floats).
    // The loaded bits reach the first channel block's tile as `pre` (a no-op, see tile).
    // Measured (AMD EPYC, 64 x 16 x 16, 128 -> 128): 41.0 -> 45.0 GFLOP/s; 64 -> 64 at 32 x 32:
    // 33.9 -> 38.7.
    int pre = 0;
    if (kh * kw == 1 && live == R) {
      const long nx = ((long)(b * hb + oy0 + a * sy) * wb + ox0 + c * sx) * cin;
      const long end = (long)n * hb * wb * cin;
      const long stop = nx + (long)R * sx * cin < end ? nx + (long)R * sx * cin : end;
      for (long e = nx; e < stop; e += 16) {
        int v;
        __builtin_memcpy(&v, x + e, 4);
        pre ^= v;
      }
    }
    for (; blk < blocks && u < u1; blk++, u++, pre = 0) {
      const int co0 = 8 * blk, nco = cout - co0 < 8 ? cout - co0 : 8;
      tile(x, fpk + (long)blk * bstride, y, xo, yo, live, co0, nco, kh, kw, wb, cin, skip, pre, zero);
    }
  }
}

// The lean path's tile: pointers to its R pixels' input rows (cin floats apart), stores at its
// output rows (cout floats apart).
#define LEAN_P(k) const float* p##k = pa + (k) * cin;
#define LEAN_STORE(k)                        \
  wasm_v128_store(py + (k) * cout, a##k##0); \
  wasm_v128_store(py + (k) * cout + 4, a##k##1);

// Units [u0, u1) (tile-major (tile, channel block) pairs, as in conv_units) of a 1x1 stride-1
// convolution whose `pixels` output pixels are consecutive rows of cin input floats at x and cout
// output floats at y (cout a multiple of 8), every tile of these units full (R pixels): the same
// sums in the same order as conv_units, so the same bits. Packed blocks are bstride floats apart
// from fpk. Not inlined: a function of its own, V8 keeps the channel loop's values in registers.
// With many channel blocks per tile (16 or more), a tile first touches the next tile's input lines
// (one load per 64-byte line; their bits reach the first block's stores as a no-op, masked with
// `zero`), so that their misses overlap its multiply-adds; with fewer blocks the touches cost more
// than they save. Measured (AMD EPYC, one thread, one process alternating builds): this path
// against conv_units 1.24-1.49x for 16 and 64 channels at 32 x 32 (forward and input gradient),
// 1.03-1.11x at 128 channels (two runs); touches with 2 to 8 blocks 0.83-0.93x of none, with 16 blocks 1.05x.
__attribute__((noinline)) static void conv1x1_units(const float* x, const float* fpk, int bstride,
                                                    float* y, int pixels, int cin, int cout, int u0,
                                                    int u1, int zero) {
  const int blocks = cout / 8;
  int t = u0 / blocks, blk = u0 % blocks;
  for (int u = u0; u < u1; t++, blk = 0) {
    const float* pa = x + (long)t * R * cin;
    int pre = 0;
    if (blocks >= 16) {
      // The next tile's input, up to the end of x (pixels rows).
      const float* next = pa + R * cin;
      const long left = ((long)pixels - (long)(t + 1) * R) * cin;
      const int stop = left < R * cin ? (int)left : R * cin;
      for (int e = 0; e < stop; e += 16) {
        int v;
        __builtin_memcpy(&v, next + e, 4);
        pre ^= v;
      }
    }
    for (; blk < blocks && u < u1; blk++, u++, pre = 0) {
      float* py = y + (long)t * R * cout + 8 * blk;
      const float* fp = fpk + (long)blk * bstride;
      FOR_R(ACC_ZERO)
      FOR_R(LEAN_P)
      CHANNEL_RUN(cin)
      a01 = wasm_v128_xor(a01, wasm_i32x4_splat(pre & zero));  // zero: no change
      FOR_R(LEAN_STORE)
    }
  }
}

// Work units of a rectangle of oh x ow output pixels per image.
INLINE int rect_units(int n, int oh, int ow, int cout) {
  return (n * oh * ow + R - 1) / R * ((cout + 7) / 8);
}

// Every rectangle of a convolution in one call (one synchronisation of the threads): `count`
// rectangles of RECT_INTS ints each at `rects`,
//   { window, bstride, frow, kh, kw, oh, ow, oy0, ox0, ry, rx }
// (window: float offset of the rectangle's filter window from fpk; kh = 0: no tap, the pixels
// are written as zeros), with the input, output, strides and output layout they share. The work
// units of all rectangles, in order, are split over the shares.
#define RECT_INTS 11
__attribute__((export_name("conv2d_rects_f32")))
void conv2d_rects_f32(const float* x, const float* fpk, float* y, const int* rects, int count,
                      int n, int hb, int wb, int cin, int cout, int sy, int sx, int yh, int yw,
                      int ty, int tx, int part, int parts) {
  int total = 0;
  for (int r = 0; r < count; r++) {
    total += rect_units(n, rects[r * RECT_INTS + 5], rects[r * RECT_INTS + 6], cout);
  }
  const int u0 = share_begin(total, part, parts), u1 = share_end(total, part, parts);
  const int zero = part / parts;
  const int* d = rects;
  if (count == 1 && d[3] == 1 && d[4] == 1 && sy == 1 && sx == 1 && ty == 1 && tx == 1 &&
      d[5] == hb && d[5] == yh && d[6] == wb && d[6] == yw && d[7] == 0 && d[8] == 0 &&
      d[9] == 0 && d[10] == 0 && cout % 8 == 0) {
    // 1x1, stride 1, the whole input: the full tiles on the lean path, the last (partial) tile's
    // units on the general one.
    const int full = n * hb * wb / R * (cout / 8);
    if (u0 < full) {
      const int l1 = u1 < full ? u1 : full;
      conv1x1_units(x, fpk + d[0], d[1], y, n * hb * wb, cin, cout, u0, l1, zero);
    }
    if (u1 > full) {
      conv_units(x, fpk + d[0], d[1], d[2], y, n, hb, wb, cin, 1, 1, cout, hb, wb, 1, 1, 0, 0, yh,
                 yw, 0, 0, 1, 1, u0 > full ? u0 : full, u1, zero);
    }
    return;
  }
  for (int r = 0, base = 0; r < count && base < u1; r++) {
    d = rects + r * RECT_INTS;
    const int units = rect_units(n, d[5], d[6], cout);
    const int lo = u0 > base ? u0 - base : 0, hi = u1 - base < units ? u1 - base : units;
    if (lo < hi) {
      conv_units(x, fpk + d[0], d[1], d[2], y, n, hb, wb, cin, d[3], d[4], cout, d[5], d[6], sy,
                 sx, d[7], d[8], yh, yw, d[9], d[10], ty, tx, lo, hi, zero);
    }
    base += units;
  }
}
