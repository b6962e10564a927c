// Conv2DBackpropFilter in float64, straight from its definition (square k x k filter, stride s,
// padding p on every side): the reference the own kernel's tests compare with. No imports, so
// the no-permission script can use it too.

/** dW[i, j, ci, co] = sum over b, oy, ox of x[b, oy*s + i - p, ox*s + j - p, ci] dy[b, oy, ox, co]. */
export function filterGradReference(
  x: Float32Array,
  dy: Float32Array,
  [n, h, w, cin]: readonly number[],
  [ho, wo, cout]: readonly number[],
  k: number,
  s: number,
  p: number,
): Float64Array {
  const dw = new Float64Array(k * k * cin * cout);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            const iy = oy * s + i - p, ix = ox * s + j - p;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            for (let ci = 0; ci < cin; ci++) {
              const xv = x[((b * h + iy) * w + ix) * cin + ci];
              for (let co = 0; co < cout; co++) {
                dw[((i * k + j) * cin + ci) * cout + co] += xv *
                  dy[((b * ho + oy) * wo + ox) * cout + co];
              }
            }
          }
        }
      }
    }
  }
  return dw;
}
