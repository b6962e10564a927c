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

Deno.test("ensureCifar: an endless body is stopped at the size limit; nothing is left", async () => {
  const chunk = new Uint8Array(64 * 1024);
  // "Endless" within reason: 32 MB without a Content-Length, so that the test ends even on code
  // without a limit (which read it all before failing on the md5, and would read forever).
  const endless = () => {
    let sent = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 32 * 1024 * 1024) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    );
  };
  await withServer(endless, async (url, dir) => {
    const error = await ensureCifar({
      dataset: "cifar10",
      dir,
      url,
      progress: "none",
      maxBytes: 1_000_000,
    }).catch((e) => e);
    assert.match(
      String(error),
      /body exceeds 1000000 bytes, the size of cifar-10-binary\.tar\.gz; stopped/,
    );
    const received = Number(/interrupted after (\d+) bytes/.exec(String(error))?.[1]);
    assert.ok(received <= 1_000_000, `${received} bytes kept`);
    assert.deepEqual(await listDir(dir), []);
  });
  // An announced size over the limit is refused before anything is written.
  await withServer(
    () => new Response(new Uint8Array(2000)),
    async (url, dir) => {
      await assert.rejects(
        ensureCifar({ dataset: "cifar10", dir, url, progress: "none", maxBytes: 1000 }),
        /announces 2000 bytes, more than the 1000 bytes .*nothing was written/,
      );
      assert.deepEqual(await listDir(dir), []);
    },
  );
  // The default limit is the official archive's size.
  assert.equal((await import("./spec.ts")).CIFAR_SPECS.cifar10.archiveBytes, 170_052_171);
});

Deno.test("ensureCifar: a server that stalls mid-body times out; nothing is left", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const stalling = () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new Uint8Array(1000));
          await released; // then nothing, until the test ends
          controller.close();
        },
      }),
    );
  await withServer(stalling, async (url, dir) => {
    try {
      await assert.rejects(
        ensureCifar({ dataset: "cifar10", dir, url, progress: "none", readTimeoutMs: 300 }),
        /after 1000 bytes \(the server sent nothing for 0\.3 s \(stalled\)/,
      );
      assert.deepEqual(await listDir(dir), []);
    } finally {
      release();
    }
  });
});

Deno.test("ensureCifar: partial files of killed downloads are removed, and said so", async () => {
  await withServer(() => new Response(archive), async (url, dir) => {
    const dead = `${dir}/cifar-10-binary.tar.gz.999999999.0-deadbeef.part`; // no such pid
    const old = `${dir}/cifar-10-binary.tar.gz.a1b2c3.part`; // the earlier naming, no pid
    const live = `${dir}/cifar-10-binary.tar.gz.1.0-0123abcd.part`; // pid 1 is running
    for (const p of [dead, old, live]) await Deno.writeFile(p, new Uint8Array(10));
    const messages: string[] = [];
    const got = await ensureCifar({
      dataset: "cifar10",
      dir,
      url,
      md5: archiveMd5,
      progress: "none",
      log: (m) => messages.push(m),
    });
    assert.equal(got.downloaded, true);
    const names = await listDir(dir);
    const expected = Deno.build.os === "linux"
      ? ["cifar-10-binary.tar.gz", "cifar-10-binary.tar.gz.1.0-0123abcd.part"]
      : ["cifar-10-binary.tar.gz"]; // without /proc a pid cannot be asked: only dead ones kept
    if (Deno.build.os === "linux") assert.deepEqual(names, expected);
    assert.ok(messages.some((m) => m.includes(dead) && /removed .*interrupted download/.test(m)));
    assert.ok(messages.some((m) => m.includes(old) && /removed/.test(m)));
    if (Deno.build.os === "linux") {
      assert.ok(messages.some((m) => m.includes(live) && /in progress; left alone/.test(m)));
    }
  });
});
