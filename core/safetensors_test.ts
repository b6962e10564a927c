import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsTensor,
  toFloat32,
} from "./safetensors.ts";

function sample(): Map<string, SafetensorsTensor> {
  return new Map<string, SafetensorsTensor>([
    ["a.weight", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
    ["a.num_batches_tracked", { dtype: "I64", shape: [], data: new BigInt64Array([7n]) }],
    ["b", { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 255]) }],
  ]);
}

Deno.test("safetensors round-trips tensors and metadata", () => {
  const file = decodeSafetensors(encodeSafetensors(sample(), { config: "{}" }));
  assert.deepEqual([...file.tensors.keys()], ["a.weight", "a.num_batches_tracked", "b"]);
  assert.deepEqual(file.tensors.get("a.weight")!.shape, [2, 3]);
  assert.deepEqual(Array.from(toFloat32(file.tensors.get("a.weight")!)), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(toFloat32(file.tensors.get("a.num_batches_tracked")!)), [7]);
  assert.deepEqual(Array.from(file.tensors.get("b")!.data as Uint8Array), [1, 2, 255]);
  assert.deepEqual(file.metadata, { config: "{}" });
});

Deno.test("safetensors header is 8-byte aligned", () => {
  const bytes = encodeSafetensors(sample());
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.deepEqual(n % 8, 0);
});

Deno.test("truncated, tampered and malformed files are rejected with a reason", () => {
  const bytes = encodeSafetensors(sample());
  assert.throws(
    () => decodeSafetensors(bytes.subarray(0, 4), "x.st"),
    /x\.st.*fewer than the 8-byte/,
  );
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 1)), /truncated/);
  const grown = new Uint8Array(bytes.length + 4);
  grown.set(bytes);
  assert.throws(() => decodeSafetensors(grown), /holds/);
  const huge = bytes.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => decodeSafetensors(huge), /exceeds/);
  const bad = bytes.slice();
  bad[9] = 0x7b; // corrupt JSON
  bad[8] = 0x7b;
  assert.throws(() => decodeSafetensors(bad), /JSON|object|dtype|offsets|shape/);
});

Deno.test("inconsistent headers are rejected", () => {
  const enc = (header: unknown, dataBytes: number) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };
  assert.throws(
    () => decodeSafetensors(enc({ a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4)),
    /needs 8 bytes/,
  );
  assert.throws(
    () => decodeSafetensors(enc({ a: { dtype: "X9", shape: [1], data_offsets: [0, 4] } }, 4)),
    /unsupported dtype/,
  );
  assert.throws(
    () =>
      decodeSafetensors(
        enc({
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        }, 8),
      ),
    /gap or overlap/,
  );
  assert.throws(() => decodeSafetensors(enc([1, 2], 0)), /not a JSON object/);
  assert.throws(() => decodeSafetensors(enc({ __metadata__: { a: 1 } }, 0)), /not a string/);
});

Deno.test("encoder rejects data that does not match the shape", () => {
  assert.throws(
    () =>
      encodeSafetensors(new Map([["a", { dtype: "F32", shape: [3], data: new Float32Array(2) }]])),
    /needs 3 values/,
  );
});

Deno.test("F16 and BF16 convert to float32", () => {
  const f16 = toFloat32({
    dtype: "F16",
    shape: [3],
    data: new Uint16Array([0x3c00, 0xc000, 0x3555]),
  });
  assert.deepEqual(f16[0], 1);
  assert.deepEqual(f16[1], -2);
  assert.ok(Math.abs(f16[2] - 1 / 3) < 1e-3);
  const bf16 = toFloat32({ dtype: "BF16", shape: [1], data: new Uint16Array([0x3f80]) });
  assert.deepEqual(bf16[0], 1);
});
