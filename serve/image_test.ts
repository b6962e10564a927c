import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { zlibSync } from "fflate";
import { Rng } from "@mfi/core";
import {
  decodeImage,
  ImageDecodeError,
  imageToSquareRgb,
  resizeCenterCrop,
  type RgbImage,
  sniffImageFormat,
} from "./image.ts";
import {
  corrupt,
  jpegHugeDimensions,
  jpegManyScans,
  pngHugeDimensions,
  pngIccBomb,
  pngInflateBomb,
  pngWith,
  smallJpeg,
  smallPng,
  zlibZeros,
} from "./testdata/hostile.ts";

/** A deterministic RGB test pattern: r = x, g = y, b = (x + 2y) mod 256. */
function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      data[p] = x & 255;
      data[p + 1] = y & 255;
      data[p + 2] = (x + 2 * y) & 255;
    }
  }
  return { width, height, data };
}

function withChannels(img: RgbImage, channels: 1 | 2 | 3 | 4): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      out[i * channels + c] = channels <= 2
        ? (c === 0 ? img.data[i * 3] : 77)
        : (c < 3 ? img.data[i * 3 + c] : 77);
    }
  }
  return out;
}

Deno.test("sniffImageFormat recognises PNG and JPEG by magic bytes only", () => {
  const png = encodePng({ width: 1, height: 1, data: new Uint8Array(3), channels: 3 });
  assert.equal(sniffImageFormat(png), "png");
  assert.equal(sniffImageFormat(png.subarray(0, 7)), undefined);
  assert.equal(sniffImageFormat(new Uint8Array([0xff, 0xd8, 0xff])), "jpeg");
  assert.equal(sniffImageFormat(new Uint8Array([0xff, 0xd8])), undefined);
  assert.equal(sniffImageFormat(new TextEncoder().encode("GIF89a....")), undefined);
});

Deno.test("PNG: RGB, RGBA, grey, grey+alpha decode to the same RGB values", () => {
  const img = pattern(5, 4);
  const rgb = decodeImage(encodePng({ ...img, channels: 3 }));
  assert.deepEqual(rgb, img);
  const rgba = decodeImage(encodePng({ ...img, data: withChannels(img, 4), channels: 4 }));
  assert.deepEqual(rgba, img, "alpha is dropped");
  const grey = decodeImage(encodePng({ ...img, data: withChannels(img, 1), channels: 1 }));
  const greyAlpha = decodeImage(encodePng({ ...img, data: withChannels(img, 2), channels: 2 }));
  for (const g of [grey, greyAlpha]) {
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(
        Array.from(g.data.subarray(3 * i, 3 * i + 3)),
        Array(3).fill(img.data[3 * i]),
      );
    }
  }
});

Deno.test("PNG: 16-bit samples keep their high byte; low bit depths scale to 0..255", () => {
  const data16 = new Uint16Array([0x0000, 0x12ff, 0xffff, 0x8001, 0x7f00, 0x0100]);
  const img16 = decodeImage(
    encodePng({ width: 2, height: 1, data: data16, channels: 3, depth: 16 }),
  );
  assert.deepEqual(Array.from(img16.data), [0x00, 0x12, 0xff, 0x80, 0x7f, 0x01]);
  // 1-bit grey, 10 pixels in a row (row padded to 2 bytes): 1011001110.
  const bits = new Uint8Array([0b10110011, 0b10000000]);
  const img1 = decodeImage(encodePng({ width: 10, height: 1, data: bits, channels: 1, depth: 1 }));
  const expected = [1, 0, 1, 1, 0, 0, 1, 1, 1, 0].flatMap((b) => Array(3).fill(b * 255));
  assert.deepEqual(Array.from(img1.data), expected);
  // 4-bit grey: 0x0, 0xf, 0x5 -> 0, 255, 85.
  const img4 = decodeImage(
    encodePng({ width: 3, height: 1, data: new Uint8Array([0x0f, 0x50]), channels: 1, depth: 4 }),
  );
  assert.deepEqual(Array.from(img4.data), [0, 0, 0, 255, 255, 255, 85, 85, 85]);
});

Deno.test("PNG: palette images expand through the palette", () => {
  const palette = [[10, 20, 30], [200, 100, 0], [1, 2, 3]];
  const png = encodePng({
    width: 3,
    height: 1,
    data: new Uint8Array([2, 0, 1]),
    channels: 1,
    depth: 8,
    palette,
  });
  assert.deepEqual(Array.from(decodeImage(png).data), [1, 2, 3, 10, 20, 30, 200, 100, 0]);
});

Deno.test("JPEG decodes close to the encoded pixels (lossy, high quality)", () => {
  const img = pattern(24, 16);
  const rgba = new Uint8Array(24 * 16 * 4);
  for (let i = 0; i < 24 * 16; i++) {
    rgba.set(img.data.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = 255;
  }
  const file = jpeg.encode({ width: 24, height: 16, data: rgba }, 100).data;
  const out = decodeImage(new Uint8Array(file));
  assert.deepEqual([out.width, out.height], [24, 16]);
  let err = 0;
  for (let i = 0; i < out.data.length; i++) err += Math.abs(out.data[i] - img.data[i]);
  assert.ok(err / out.data.length < 3, `mean abs error ${err / out.data.length}`);
});

Deno.test("corrupt, truncated, unknown and oversized images fail with ImageDecodeError", () => {
  const png = encodePng({ ...pattern(8, 8), channels: 3 });
  assert.throws(() => decodeImage(png.subarray(0, png.length - 20)), ImageDecodeError);
  const flipped = png.slice();
  flipped[png.length - 20] ^= 0xff; // inside IDAT or its CRC
  assert.throws(() => decodeImage(flipped), /Cannot decode png/);
  assert.throws(() => decodeImage(png.subarray(0, 20)), /too short/);
  assert.throws(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0x01, 0x02])), /jpeg/);
  assert.throws(() => decodeImage(new Uint8Array(0)), /neither PNG nor JPEG/);
  assert.throws(() => decodeImage(png, { maxPixels: 63 }), /8x8 = 64 pixels exceeds/);
  assert.deepEqual(decodeImage(png, { maxPixels: 64 }).width, 8);
  assert.throws(() => decodeImage(png, { maxPixels: 0 }), RangeError);
  // A PNG whose header claims 100000x100000 is refused before inflating anything.
  const huge = png.slice();
  new DataView(huge.buffer).setUint32(16, 100000);
  new DataView(huge.buffer).setUint32(20, 100000);
  assert.throws(() => decodeImage(huge), /exceeds the limit/);
});

Deno.test("resize: 32x32 is the identity, 64x64 averages 2x2 blocks", () => {
  const img = pattern(32, 32);
  assert.deepEqual(resizeCenterCrop(img).data, img.data);
  const big = pattern(64, 64);
  const out = resizeCenterCrop(big);
  for (const [ox, oy] of [[0, 0], [5, 9], [31, 31]]) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        s += big.data[((2 * oy + dy) * 64 + 2 * ox + dx) * 3 + c];
      }
      assert.equal(out.data[(oy * 32 + ox) * 3 + c], Math.round(s / 4), `(${ox},${oy},${c})`);
    }
  }
});

Deno.test("resize: a wide image is centre-cropped, a fractional footprint is area-weighted", () => {
  // 96x64 -> centre 64x64 (x in 16..79) -> 2x2 averages: red channel = mean of x, x+1.
  const out = resizeCenterCrop(pattern(96, 64));
  assert.equal(out.data[0], Math.round((16 + 17) / 2));
  assert.equal(out.data[31 * 3], Math.round((78 + 79) / 2));
  // 48x48 -> 32x32: each output covers 1.5 source pixels; output 0 = (x0 + 0.5 * x1) / 1.5.
  const img = pattern(48, 48);
  const o = resizeCenterCrop(img);
  assert.equal(o.data[3], Math.round((0.5 * 1 + 1 * 2) / 1.5)); // x = 1 covers [1.5, 3)
  // A constant image stays constant at every size.
  for (const [w, h] of [[33, 50], [7, 5], [1, 1], [1000, 3]]) {
    const c = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(123) };
    assert.ok(resizeCenterCrop(c).data.every((v) => v === 123), `${w}x${h}`);
  }
});

Deno.test("resize: enlarging is bilinear at pixel centres", () => {
  // 2x2 grey -> 4x4: centres at source coordinates -0.25, 0.25, 0.75, 1.25 (clamped to 0..1).
  const data = new Uint8Array([0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100]);
  const out = resizeCenterCrop({ width: 2, height: 2, data }, 4);
  const row = Array.from({ length: 4 }, (_, x) => out.data[x * 3]);
  assert.deepEqual(row, [0, 25, 75, 100]);
});

Deno.test("resize rejects invalid sizes and inconsistent data", () => {
  assert.throws(() => resizeCenterCrop(pattern(4, 4), 0), /size must be a positive integer/);
  assert.throws(
    () => resizeCenterCrop({ width: 4, height: 4, data: new Uint8Array(5) }),
    /needs 48 bytes/,
  );
});

Deno.test("imageToSquareRgb decodes and resizes in one call", () => {
  const png = encodePng({ ...pattern(64, 64), channels: 3 });
  assert.deepEqual(imageToSquareRgb(png), resizeCenterCrop(pattern(64, 64)).data);
  assert.equal(imageToSquareRgb(png, { size: 8 }).length, 8 * 8 * 3);
});

Deno.test("corrupted PNG/JPEG bytes decode or fail with ImageDecodeError, never otherwise (fuzz)", () => {
  const img = pattern(16, 12);
  const rgba = new Uint8Array(16 * 12 * 4).map((
    _,
    i,
  ) => (i % 4 === 3 ? 255 : img.data[i - (i >> 2)]));
  const files = [
    encodePng({ ...img, channels: 3 }),
    new Uint8Array(jpeg.encode({ width: 16, height: 12, data: rgba }, 80).data),
  ];
  const rng = new Rng(3);
  for (const file of files) {
    for (let i = 0; i < 150; i++) {
      const bad = i % 3 === 0 ? file.slice(0, 3 + rng.int(file.length - 3)) : file.slice();
      if (i % 3 !== 0) bad[rng.int(bad.length)] ^= 1 << rng.int(8);
      try {
        const out = decodeImage(bad);
        assert.equal(out.data.length, out.width * out.height * 3);
      } catch (e) {
        assert.ok(e instanceof ImageDecodeError, `${(e as Error)?.name}: ${(e as Error)?.message}`);
      }
    }
  }
});

/** The bytes an inflation bomb had produced when it was stopped (from the error message). */
function stoppedAt(e: unknown): number {
  const m = /stopped at (\d+)/.exec((e as Error).message);
  assert.ok(m, `no "stopped at" in: ${(e as Error).message}`);
  return Number(m[1]);
}

Deno.test("bomb: PNG image data inflating far past the declared size is stopped early", () => {
  const gib = 1024 ** 3;
  for (const [w, h] of [[1, 1], [32, 32]]) {
    const bomb = pngInflateBomb(gib, w, h); // ~6.5 MB of file, 1 GiB of zeros
    assert.ok(bomb.length < 8_000_000);
    let error: unknown;
    assert.throws(() => decodeImage(bomb), (e) => {
      error = e;
      return e instanceof ImageDecodeError && /inflates to more than/.test(e.message);
    });
    // Work and memory are bounded by the declared size plus one inflater step, not by the bomb.
    assert.ok(stoppedAt(error) < 8 * 1024 * 1024, `stopped at ${stoppedAt(error)}`);
  }
  // Exactly the declared size still decodes (2x2 RGB = 2 rows of 1 + 6 bytes).
  const ok = decodeImage(pngWith({ width: 2, height: 2 }, zlibSync(new Uint8Array(14))));
  assert.deepEqual([ok.width, ok.height, ok.data.length], [2, 2, 12]);
  // One row too many is refused.
  assert.throws(
    () => decodeImage(pngWith({ width: 2, height: 2 }, zlibSync(new Uint8Array(14 + 7)))),
    /inflates to more than the 14 bytes a 2x2 image needs/,
  );
});

Deno.test("bomb: an embedded ICC profile inflating to gigabytes is stopped early", () => {
  let error: unknown;
  assert.throws(() => decodeImage(pngIccBomb(1024 ** 3)), (e) => {
    error = e;
    return e instanceof ImageDecodeError && /ICC profile inflates/.test(e.message);
  });
  assert.ok(stoppedAt(error) < 12 * 1024 * 1024);
});

Deno.test("bomb: huge declared PNG/JPEG dimensions are refused from the header", () => {
  for (const [w, h] of [[100_000, 100_000], [0x7fffffff, 1], [1, 0x7fffffff], [6000, 5000]]) {
    assert.throws(
      () => decodeImage(pngHugeDimensions(w, h)),
      (e) => e instanceof ImageDecodeError && /exceeds the limit of 25000000/.test(e.message),
    );
  }
  assert.throws(
    () => decodeImage(pngHugeDimensions(5000, 0)),
    (e) => e instanceof ImageDecodeError && /invalid size 5000x0/.test(e.message),
  );
  for (const [w, h] of [[65535, 65535], [10_000, 10_000]]) {
    assert.throws(
      () => decodeImage(jpegHugeDimensions(w, h)),
      (e) => e instanceof ImageDecodeError && /exceeds the limit of 25000000/.test(e.message),
    );
  }
  // The same images under a raised limit get past the header check (and then fail as corrupt,
  // or decode): the limit, not the header parser, refused them.
  assert.throws(
    () => decodeImage(jpegHugeDimensions(300, 200), { maxPixels: 50_000 }),
    /60000 pixels exceeds the limit of 50000/,
  );
  assert.throws(
    () => decodeImage(pngHugeDimensions(300, 200), { maxPixels: 50_000 }),
    /60000 pixels exceeds the limit of 50000/,
  );
});

Deno.test("bomb: a JPEG with thousands of scans is refused before decoding", () => {
  // A few scans are fine (jpeg-js decodes them); a thousand would cost a full pass each.
  assert.equal(decodeImage(jpegManyScans(3)).width, 64);
  assert.throws(
    () => decodeImage(jpegManyScans(1000)),
    (e) => e instanceof ImageDecodeError && /more than 100 scans/.test(e.message),
  );
});

Deno.test("bomb: truncated and malformed headers fail with ImageDecodeError", () => {
  const png = smallPng(3);
  const jpg = smallJpeg(3);
  const cases: [Uint8Array, RegExp][] = [
    [png.subarray(0, 40), /truncated/],
    [png.subarray(0, png.length - 12), /truncated: no IEND/],
    [pngWith({ width: 4, height: 4, depth: 3 }, zlibZeros(20)), /bit depth 3 is invalid/],
    [pngWith({ width: 4, height: 4, colourType: 5 }, zlibZeros(20)), /unknown colour type 5/],
    [jpg.subarray(0, 4), /no frame header/],
    [new Uint8Array([0xff, 0xd8, 0xff, 0xc0, 0xff, 0xff]), /truncated: segment 0xc0/],
    [new Uint8Array([0xff, 0xd8, 0xff, 0xda, 0, 2, 0xff, 0xd9]), /scan comes before the frame/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(
      () => decodeImage(bytes),
      (e) => e instanceof ImageDecodeError && message.test(e.message),
      String(message),
    );
  }
});

Deno.test("bomb fuzz: corrupted bombs and images decode or fail with ImageDecodeError", () => {
  const seeds = [
    smallPng(5),
    smallJpeg(5),
    pngInflateBomb(64 * 1024 * 1024, 8, 8),
    pngHugeDimensions(30_000, 30_000),
    jpegHugeDimensions(20_000, 20_000),
    jpegManyScans(120),
  ];
  for (const [k, seed] of seeds.entries()) {
    for (let i = 0; i < 40; i++) {
      const bytes = corrupt(seed, i, k);
      try {
        const img = decodeImage(bytes, { maxPixels: 1_000_000 });
        assert.equal(img.data.length, img.width * img.height * 3);
        assert.ok(img.width * img.height <= 1_000_000);
      } catch (e) {
        assert.ok(e instanceof ImageDecodeError, `seed ${k} case ${i}: ${e}`);
      }
    }
  }
});
