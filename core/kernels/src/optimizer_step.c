// One optimizer update over every parameter (core/kernels/optimizer_step.ts), in WebAssembly SIMD,
// for tfjs-backend-wasm. The caller passes a table of entries, one per parameter:
//
//   ints[8 e + 0..7] = param, grad, slot0, slot1, out_param, out_slot0, out_slot1, n
//   floats[e]        = SGD: the entry's weight decay (0: none); AdamW: 1 - lr * wd (1: none)
//
// (byte offsets into the heap; unused slots 0). The arithmetic is the optimizers' tfjs-op sequence
// in float32, one rounding per operation and no fused multiply-add, so the results are bit for bit
// those of the per-variable ops on the cpu and wasm backends.
//
// Work units for threads (see simd.h): every entry's elements are split over the shares;
// each element is computed alone, so the split does not change any result.
//
// Built by `deno task build:kernels`. The module imports tfjs-backend-wasm's own memory and works
// on its tensors in place; no linear-memory stack is used.

#include "simd.h"

#pragma STDC FP_CONTRACT OFF

#define F(ints, e, k) ((float*)(ints)[8 * (e) + (k)])

// d = g (+ wd p); buf' = momentum buf + d; d = nesterov ? d + momentum buf' : buf'; p' = p - lr d.
// With momentum 0 there are no slots: p' = p - lr d.
__attribute__((export_name("sgd_step_f32"))) void sgd_step_f32(const int* ints,
                                                               const float* floats, int count,
                                                               float lr, float momentum,
                                                               int nesterov, int part,
                                                               int parts) {
  v128_t lr4 = wasm_f32x4_splat(lr);
  v128_t m4 = wasm_f32x4_splat(momentum);
  for (int e = 0; e < count; e++) {
    const float* p = F(ints, e, 0);
    const float* g = F(ints, e, 1);
    const float* buf = F(ints, e, 2);
    float* po = F(ints, e, 4);
    float* bo = F(ints, e, 5);
    int n = ints[8 * e + 7];
    float wd = floats[e];
    int decay = wd != 0;
    int slot = momentum != 0;
    v128_t wd4 = wasm_f32x4_splat(wd);
    int i0 = share_begin(n, part, parts);
    int i1 = share_end(n, part, parts);
    int i = i0;
    for (; i + 4 <= i1; i += 4) {
      v128_t pv = wasm_v128_load(p + i);
      v128_t d = wasm_v128_load(g + i);
      if (decay) d = wasm_f32x4_add(d, wasm_f32x4_mul(pv, wd4));
      if (slot) {
        v128_t next = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(buf + i), m4), d);
        wasm_v128_store(bo + i, next);
        d = nesterov ? wasm_f32x4_add(d, wasm_f32x4_mul(next, m4)) : next;
      }
      wasm_v128_store(po + i, wasm_f32x4_sub(pv, wasm_f32x4_mul(d, lr4)));
    }
    for (; i < i1; i++) {
      float pv = p[i];
      float d = g[i];
      if (decay) {
        float t = pv * wd;
        d = d + t;
      }
      if (slot) {
        float t = buf[i] * momentum;
        float next = t + d;
        bo[i] = next;
        if (nesterov) {
          float u = next * momentum;
          d = d + u;
        } else {
          d = next;
        }
      }
      float step = d * lr;
      po[i] = pv - step;
    }
  }
}

// p = decay p; m' = b1 m + (1 - b1) g; v' = b2 v + (1 - b2) g^2;
// p' = p - (m' / (sqrt(v') / bc2 + eps)) * step.
__attribute__((export_name("adamw_step_f32"))) void adamw_step_f32(
    const int* ints, const float* floats, int count, float b1, float b2, float c1, float c2,
    float eps, float step, float bc2, int part, int parts) {
  v128_t b1v = wasm_f32x4_splat(b1);
  v128_t b2v = wasm_f32x4_splat(b2);
  v128_t c1v = wasm_f32x4_splat(c1);
  v128_t c2v = wasm_f32x4_splat(c2);
  v128_t epsv = wasm_f32x4_splat(eps);
  v128_t stepv = wasm_f32x4_splat(step);
  v128_t bc2v = wasm_f32x4_splat(bc2);
  for (int e = 0; e < count; e++) {
    const float* p = F(ints, e, 0);
    const float* g = F(ints, e, 1);
    const float* m = F(ints, e, 2);
    const float* v = F(ints, e, 3);
    float* po = F(ints, e, 4);
    float* mo = F(ints, e, 5);
    float* vo = F(ints, e, 6);
    int n = ints[8 * e + 7];
    float factor = floats[e];
    int decay = factor != 1;
    v128_t factorv = wasm_f32x4_splat(factor);
    int i0 = share_begin(n, part, parts);
    int i1 = share_end(n, part, parts);
    int i = i0;
    for (; i + 4 <= i1; i += 4) {
      v128_t gv = wasm_v128_load(g + i);
      v128_t pv = wasm_v128_load(p + i);
      if (decay) pv = wasm_f32x4_mul(pv, factorv);
      v128_t mn = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), b1v),
                                 wasm_f32x4_mul(gv, c1v));
      v128_t vn = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), b2v),
                                 wasm_f32x4_mul(wasm_f32x4_mul(gv, gv), c2v));
      wasm_v128_store(mo + i, mn);
      wasm_v128_store(vo + i, vn);
      v128_t denom = wasm_f32x4_add(wasm_f32x4_div(wasm_f32x4_sqrt(vn), bc2v), epsv);
      v128_t upd = wasm_f32x4_mul(wasm_f32x4_div(mn, denom), stepv);
      wasm_v128_store(po + i, wasm_f32x4_sub(pv, upd));
    }
    for (; i < i1; i++) {
      float gv = g[i];
      float pv = p[i];
      if (decay) pv = pv * factor;
      float t1 = m[i] * b1;
      float t2 = gv * c1;
      float mn = t1 + t2;
      float t3 = v[i] * b2;
      float g2 = gv * gv;
      float t4 = g2 * c2;
      float vn = t3 + t4;
      mo[i] = mn;
      vo[i] = vn;
      float root = __builtin_sqrtf(vn);
      float scaled = root / bc2;
      float denom = scaled + eps;
      float ratio = mn / denom;
      float upd = ratio * step;
      po[i] = pv - upd;
    }
  }
}
