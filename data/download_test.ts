import assert from "node:assert/strict";
import { ensureCifar } from "./download.ts";
import { loadCifar } from "./load.ts";
import { md5Hex } from "./md5.ts";
import { fixtureFiles, tarGz } from "./testdata/fixtures.ts";

type Handler = (request: Request) => Response | Promise<Response>;

async function withServer(
  handler: Handler,
  fn: (url: string, dir: string, hits: () => number) => Promise<void>,
): Promise<void> {
  let count = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    count++;
    return handler(request);
  });
  const dir = await Deno.makeTempDir({ prefix: "mfi-download-" });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`, dir, () => count);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

const archive = await tarGz(fixtureFiles("cifar10", 3));
const archiveMd5 = md5Hex(archive);

Deno.test("ensureCifar: downloads, verifies, renames into place, then serves from cache", async () => {
  await withServer(() => new Response(archive), async (url, dir, hits) => {
    const first = await ensureCifar({
      dataset: "cifar10",
      dir,
      url,
      md5: archiveMd5,
      progress: "none",
    });
    assert.equal(first.downloaded, true);
    assert.equal(first.path, `${dir}/cifar-10-binary.tar.gz`);
    assert.equal(first.md5, archiveMd5);
    assert.equal(first.bytes, archive.length);
    assert.deepEqual(await listDir(dir), ["cifar-10-binary.tar.gz"]);
    const again = await ensureCifar({
      dataset: "cifar10",
      dir,
      url,
      md5: archiveMd5,
      progress: "none",
    });
    assert.equal(again.downloaded, false);
    assert.equal(hits(), 1);
    const test = await loadCifar({ dataset: "cifar10", split: "test", archive: first.path });
    assert.equal(test.count, 3);
    // A dir holding only the archive is read through it.
    assert.equal((await loadCifar({ dataset: "cifar10", split: "test", dir })).count, 3);
    // With neither dir nor archive, loadCifar finds the archive in MFI_DATA_DIR.
    const saved = Deno.env.get("MFI_DATA_DIR");
    Deno.env.set("MFI_DATA_DIR", dir);
    try {
      assert.equal((await loadCifar({ dataset: "cifar10", split: "train" })).count, 15);
    } finally {
      if (saved === undefined) Deno.env.delete("MFI_DATA_DIR");
      else Deno.env.set("MFI_DATA_DIR", saved);
    }
  });
});

Deno.test("ensureCifar: wrong md5 is an error naming URL, both md5s and the manual fix; nothing left", async () => {
  await withServer(() => new Response(archive), async (url, dir) => {
    await assert.rejects(
      ensureCifar({ dataset: "cifar10", dir, url, progress: "none" }),
      (e: Error) =>
        e.message.includes(url) && e.message.includes("c32a1d4ab5d03f1284b67883e8d87530") &&
        e.message.includes(archiveMd5) && e.message.includes("save it as"),
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("ensureCifar: a connection cut mid-way leaves no partial file", async () => {
  // A raw TCP server that promises the whole archive, sends 1000 bytes, then closes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    await conn.read(buffer); // the request
    const head = `HTTP/1.1 200 OK\r\ncontent-length: ${archive.length}\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    await conn.write(archive.subarray(0, 1000));
    conn.close();
  })();
  const dir = await Deno.makeTempDir();
  try {
    const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/cifar-10-binary.tar.gz`;
    await assert.rejects(
      ensureCifar({ dataset: "cifar10", dir, url, md5: archiveMd5, progress: "none" }),
      (e: Error) => e.message.includes(url) && e.message.includes(archiveMd5),
    );
    assert.deepEqual(await listDir(dir), []);
  } finally {
    await serving;
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureCifar: HTTP errors, refused connections and bad cached files are clear errors", async () => {
  await withServer(() => new Response("no", { status: 404 }), async (url, dir) => {
    await assert.rejects(
      ensureCifar({ dataset: "cifar10", dir, url, progress: "none" }),
      (e: Error) => e.message.includes("HTTP 404") && e.message.includes(url),
    );
    assert.deepEqual(await listDir(dir), []);
    await Deno.writeFile(`${dir}/cifar-10-binary.tar.gz`, new Uint8Array(10));
    await assert.rejects(
      ensureCifar({ dataset: "cifar10", dir, url, progress: "none" }),
      /Cached archive .*cifar-10-binary\.tar\.gz has md5 .* expected c32a1d4ab5d03f1284b67883e8d87530/,
    );
  });
  // A port nobody listens on: take one from a listener, then close it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir();
  try {
    const url = `http://127.0.0.1:${port}/x.tar.gz`;
    await assert.rejects(
      ensureCifar({ dataset: "cifar100", dir, url, progress: "none" }),
      (e: Error) =>
        e.message.includes(`${url}: network error`) &&
        e.message.includes("03b5dce01913d631647c71ecec9e9cb8"),
    );
    assert.deepEqual(await listDir(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assert.rejects(
    ensureCifar({ dataset: "cifar10", mirror: "x" } as never),
    /unknown option "mirror"/,
  );
  await assert.rejects(ensureCifar({ dataset: "cifar10", md5: "abc" }), /32 hex digits/);
});
