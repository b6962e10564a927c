/**
 * Hostile inputs for the serving path's tests and `deno task fuzz`: decompression bombs, lying
 * headers and corruptions of PNG, JPEG and bundle files. Everything is generated (no fixture
 * files), deterministic, and cheap: a bomb is built directly as a compressed stream, never by
 * compressing a huge buffer.
 *
 * @module
 */
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import {
  decodeSafetensors,
  encodeSafetensors,
  Rng,
  type SafetensorsTensor,
  sha256Hex,
} from "@mfi/core";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as PNG chunks use it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One PNG chunk: length, type, data, CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * A zlib stream that inflates to at least `bytes` zero bytes (rounded up to 1 + 258k), written
 * directly as one fixed-Huffman block of (length 258, distance 1) copies: 13 bits per 258 bytes,
 * so about 1:1300. A gigabyte costs about 6.5 MB.
 */
export function zlibZeros(bytes: number): Uint8Array {
  const reps = Math.max(1, Math.ceil((bytes - 1) / 258));
  const out = new Uint8Array(2 + Math.ceil((3 + 8 + 13 * reps + 7) / 8) + 4);
  out[0] = 0x78;
  out[1] = 0x01;
  let pos = 2;
  let acc = 0;
  let nbits = 0;
  const put = (value: number, n: number) => {
    acc |= value << nbits;
    nbits += n;
    while (nbits >= 8) {
      out[pos++] = acc & 0xff;
      acc >>>= 8;
      nbits -= 8;
    }
  };
  put(1, 1); // BFINAL
  put(1, 2); // BTYPE = fixed Huffman
  put(0x0c, 8); // literal 0: code 00110000, bit-reversed
  for (let i = 0; i < reps; i++) put(0xa3, 13); // length 258 (code 285, reversed) + distance 1
  put(0, 7); // end of block (code 256)
  if (nbits > 0) put(0, 8 - nbits);
  const n = 1 + 258 * reps;
  const adler = ((n % 65521) * 65536 + 1) >>> 0; // a = 1 + 0s, b = n * 1
  new DataView(out.buffer).setUint32(pos, adler);
  return out.subarray(0, pos + 4);
}

/** A PNG with the given header and raw IDAT payload (already zlib-compressed). */
export function pngWith(
  header: { width: number; height: number; depth?: number; colourType?: number },
  idat: Uint8Array,
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, header.width);
  v.setUint32(4, header.height);
  ihdr[8] = header.depth ?? 8;
  ihdr[9] = header.colourType ?? 2;
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    ...extra,
    pngChunk("IDAT", idat),
    pngChunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** A tiny RGB PNG whose image data inflates to `inflated` bytes (a 1x1 image needs 4). */
export function pngInflateBomb(inflated: number, width = 1, height = 1): Uint8Array {
  return pngWith({ width, height }, zlibZeros(inflated));
}

/** A PNG whose header declares `width` x `height` (its data is a few bytes). */
export function pngHugeDimensions(width: number, height: number): Uint8Array {
  return pngWith({ width, height }, zlibZeros(16));
}

/** A 1x1 PNG with an embedded ICC profile that inflates to `inflated` bytes. */
export function pngIccBomb(inflated: number): Uint8Array {
  const z = zlibZeros(inflated);
  const iccp = new Uint8Array(3 + z.length);
  iccp.set([0x70, 0, 0]); // name "p", NUL, method 0
  iccp.set(z, 3);
  return pngWith({ width: 1, height: 1 }, zlibZeros(4), [pngChunk("iCCP", iccp)]);
}

/** A valid small PNG (RGB noise) to corrupt. */
export function smallPng(seed: number, width = 24, height = 16): Uint8Array {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.next() * 256);
  return encodePng({ width, height, data, channels: 3 });
}

/** A valid small baseline JPEG (RGB noise) to corrupt. */
export function smallJpeg(seed: number, width = 24, height = 16): Uint8Array {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.next() * 256);
  return new Uint8Array(jpeg.encode({ width, height, data }, 80).data);
}

function findMarker(bytes: Uint8Array, marker: number): number {
  for (let i = 2; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0xff && bytes[i + 1] === marker) return i;
  }
  throw new Error(`marker 0x${marker.toString(16)} not found`);
}

/** A small JPEG whose frame header (SOF0) is rewritten to declare `width` x `height`. */
export function jpegHugeDimensions(width: number, height: number): Uint8Array {
  const out = smallJpeg(1).slice();
  const sof = findMarker(out, 0xc0);
  const v = new DataView(out.buffer);
  v.setUint16(sof + 5, height);
  v.setUint16(sof + 7, width);
  return out;
}

/** A small JPEG whose scan (SOS header and entropy-coded data) is repeated `scans` times. */
export function jpegManyScans(scans: number): Uint8Array {
  const src = smallJpeg(2, 64, 64);
  const sos = findMarker(src, 0xda);
  const eoi = src.length - 2; // jpeg-js ends with FFD9
  const scan = src.subarray(sos, eoi);
  const out = new Uint8Array(sos + scan.length * scans + 2);
  out.set(src.subarray(0, sos));
  for (let i = 0; i < scans; i++) out.set(scan, sos + i * scan.length);
  out.set([0xff, 0xd9], out.length - 2);
  return out;
}

/** Kinds of corruption {@linkcode corrupt} applies. */
export const CORRUPTIONS = ["truncate", "flip", "splice", "zero-run", "garbage"] as const;

/** A deterministic corruption of `bytes`: case `i` picks the kind and the place. */
export function corrupt(bytes: Uint8Array, i: number, seed = 0): Uint8Array {
  const rng = new Rng(seed * 1_000_003 + i);
  const kind = CORRUPTIONS[i % CORRUPTIONS.length];
  const at = Math.floor(rng.next() * bytes.length);
  switch (kind) {
    case "truncate":
      return bytes.slice(0, at);
    case "flip": {
      const out = bytes.slice();
      for (let k = 0; k < 1 + Math.floor(rng.next() * 8); k++) {
        out[Math.floor(rng.next() * out.length)] ^= 1 << Math.floor(rng.next() * 8);
      }
      return out;
    }
    case "splice": {
      const from = Math.floor(rng.next() * bytes.length);
      const out = bytes.slice();
      out.set(bytes.subarray(from, from + 64).slice(0, out.length - at), at);
      return out;
    }
    case "zero-run": {
      const out = bytes.slice();
      out.fill(0, at, at + 1 + Math.floor(rng.next() * 256));
      return out;
    }
    case "garbage": {
      const out = bytes.slice(0, Math.max(at, 8));
      const tail = new Uint8Array(1 + Math.floor(rng.next() * 512));
      for (let k = 0; k < tail.length; k++) tail[k] = Math.floor(rng.next() * 256);
      const joined = new Uint8Array(out.length + tail.length);
      joined.set(out);
      joined.set(tail, out.length);
      return joined;
    }
  }
}

/**
 * Re-signs a bundle after `edit` changed its metadata or tensors: recomputes both SHA-256s the
 * way `writeBundle` does. This is what an attacker can always do (the digests are integrity, not
 * authenticity), so the loader must not trust what a re-signed file declares.
 */
export async function resignBundle(
  bytes: Uint8Array,
  edit: (metadata: Record<string, string>, tensors: Map<string, SafetensorsTensor>) => void,
): Promise<Uint8Array> {
  const file = decodeSafetensors(bytes);
  const metadata = { ...file.metadata };
  const tensors = new Map(file.tensors);
  edit(metadata, tensors);
  const draft = encodeSafetensors(tensors, metadata);
  const headerLen = Number(new DataView(draft.buffer, draft.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(draft.subarray(8, 8 + headerLen))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const table = Object.entries(header).filter(([k]) => k !== "__metadata__")
    .map(([name, e]) => [name, e.dtype, e.shape, e.data_offsets[0]] as const)
    .sort((a, b) => a[3] - b[3]);
  const meta = Object.keys(metadata).filter((k) => k !== "tensor_sha256" && k !== "header_sha256")
    .sort().map((k) => [k, metadata[k]]);
  metadata.tensor_sha256 = await sha256Hex(draft.subarray(8 + headerLen));
  metadata.header_sha256 = await sha256Hex(
    new TextEncoder().encode(JSON.stringify({ metadata: meta, tensors: table })),
  );
  return encodeSafetensors(tensors, metadata);
}
