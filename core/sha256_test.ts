import assert from "node:assert/strict";
import { sha256Hex } from "./sha256.ts";

Deno.test("sha256Hex: FIPS 180-2 test vectors, empty input, views into larger buffers", async () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.equal(
    await sha256Hex(new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    await sha256Hex(enc("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  // A view hashes only its own bytes, not the whole underlying buffer.
  const whole = enc("xxabcxx");
  assert.equal(await sha256Hex(whole.subarray(2, 5)), await sha256Hex(enc("abc")));
});
