/**
 * `deno serve tasks/serve_deploy.ts`: the handler as a default `fetch` export, configured by
 * environment variables, with read permission for the bundle and WASM files only.
 */
import * as tf from "@tensorflow/tfjs-core";
import assert from "node:assert/strict";
import type { StagedModel } from "@mfi/resnet";
import { buildModel, resnetSpec } from "@mfi/incubation";
import { writeBundle } from "@mfi/serve";
import { startServer, wasmDir } from "../tasks/_serve_process.ts";
import { DEPLOY_ENV } from "../tasks/serve_deploy.ts";

await tf.setBackend("cpu");

Deno.test("deno serve: the deploy entry loads MFI_MODEL_URL and answers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mfi-deploy-" });
  const spec = resnetSpec("resnet18", 2, 1 / 32);
  let model!: StagedModel;
  tf.tidy(() => {
    model = buildModel(spec, { seed: 2 });
  });
  const path = `${dir}/m.mfi`;
  await Deno.writeFile(
    path,
    await writeBundle(model, spec, {
      classNames: ["yes", "no"],
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    }),
  );
  for (const [, v] of model.namedVariables()) v.dispose();
  const server = await startServer({ model: path, entry: "deploy" });
  try {
    // One WASM thread by default (MFI_THREADS unset), whatever the host's core count.
    const health = await (await fetch(`${server.base}/healthz`)).json();
    assert.equal(health.threads, 1);
    const info = await (await fetch(`${server.base}/model`)).json();
    assert.deepEqual(info.classNames, ["yes", "no"]);
    const res = await fetch(`${server.base}/classify?topk=2`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(3072).fill(7),
    });
    assert.equal(res.status, 200);
    const { predictions } = await res.json();
    assert.deepEqual(predictions.map((p: { label: string }) => p.label).sort(), ["no", "yes"]);

    // MFI_ALLOW_SOFTWARE_ADAPTER reaches selectBackend: a bad value stops the start, naming it.
    await assert.rejects(
      startServer({ model: path, entry: "deploy", env: { MFI_ALLOW_SOFTWARE_ADAPTER: "maybe" } }),
      /Server did not start \(exit [1-9]\d*\)[^]*MFI_ALLOW_SOFTWARE_ADAPTER/,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

const ROOT = new URL("..", import.meta.url).pathname;
const DEPLOY = new URL("../tasks/serve_deploy.ts", import.meta.url).pathname;
const MODEL = new URL("../model.mfi", import.meta.url).pathname;

/** Runs `deno serve` on the deploy entry until it exits (a bad setting) or 120 s pass. */
async function serveDeploy(
  env: Record<string, string>,
  extra: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--no-prompt",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      `--allow-env=${DEPLOY_ENV.join(",")}`,
      "--allow-net=127.0.0.1",
      `--allow-read=${MODEL},${wasmDir()}`,
      DEPLOY,
      ...extra,
    ],
    cwd: ROOT,
    clearEnv: true,
    env: { NO_COLOR: "1", HOME: Deno.env.get("HOME") ?? "/", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("deploy entry: --help lists every variable and the permissions; a flag is a usage error", async () => {
  const help = await serveDeploy({}, ["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^deno serve tasks\/serve_deploy\.ts: /);
  for (const name of DEPLOY_ENV) assert.match(help.stdout, new RegExp(`\\n {2}${name} `), name);
  assert.match(help.stdout, new RegExp(`--allow-env=${DEPLOY_ENV.join(",")}`));
  const flag = await serveDeploy({}, ["--port", "9000"]);
  assert.equal(flag.code, 2, flag.stderr);
  assert.equal(
    flag.stderr.trim(),
    "serve_deploy: unknown flag --port; deno serve tasks/serve_deploy.ts --help lists the flags",
  );
});

Deno.test("deploy entry: a missing or malformed variable stops the start with one line, exit 2", async () => {
  const model = new URL(`file://${MODEL}`).href;
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /^serve_deploy: set MFI_MODEL_URL to the bundle's file: or https: URL/],
    [{ MFI_MODEL_URL: "model.mfi" }, /^serve_deploy: MFI_MODEL_URL must be a file: or https: URL/],
    [
      { MFI_MODEL_URL: model, MFI_MAX_BODY_BYTES: "5MB" },
      /^serve_deploy: MFI_MAX_BODY_BYTES must be a whole number >= 1; got "5MB"$/,
    ],
    [{ MFI_MODEL_URL: model, MFI_THREADS: "0" }, /^serve_deploy: MFI_THREADS must be a whole/],
    [{ MFI_MODEL_URL: model, MFI_BACKEND: "gpu" }, /^serve_deploy: MFI_BACKEND must be one of/],
    [{ MFI_MODEL_URL: model, MFI_ALLOW_HTTP: "yes please" }, /^serve_deploy: MFI_ALLOW_HTTP must/],
  ];
  for (const [env, pattern] of cases) {
    const r = await serveDeploy(env);
    assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), pattern);
    assert.doesNotMatch(r.stdout + r.stderr, /Listening/i);
  }
});

Deno.test("deploy entry: an MFI_WASM_URL that does not work is an error, never a cpu fallback", async () => {
  const missing = await Deno.makeTempDir({ prefix: "mfi-no-wasm-" });
  try {
    // The folder exists and may be read, but holds no binary; MFI_BACKEND is left to the
    // automatic choice, which used to fall back to cpu here.
    const r = await serveDeploy({
      MFI_MODEL_URL: new URL(`file://${MODEL}`).href,
      MFI_WASM_URL: missing,
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr.trim(),
      new RegExp(`^serve_deploy: MFI_WASM_URL=${missing} does not work: `),
    );
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /Listening/i);
  } finally {
    await Deno.remove(missing, { recursive: true });
  }
});

Deno.test("deploy entry: the README's permission line, run as written, serves", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("## Deploy"));
  const block = section.match(/```sh\n([\s\S]*?)```/)![1].replace(/\\\n\s*/g, " ").trim();
  assert.match(
    block,
    new RegExp(`--allow-env=${DEPLOY_ENV.join(",")} `),
    "--allow-env lists every variable",
  );
  const srv = await Deno.makeTempDir({ prefix: "mfi-srv-" });
  try {
    await Deno.copyFile(MODEL, `${srv}/model.mfi`);
    await Deno.mkdir(`${srv}/wasm`);
    for (const name of ["tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm.wasm"]) {
      await Deno.copyFile(`${wasmDir()}/${name}`, `${srv}/wasm/${name}`);
    }
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const words = block
      .replaceAll("/srv", srv)
      .replaceAll("0.0.0.0:8080", `127.0.0.1:${port}`)
      .replaceAll("0.0.0.0", "127.0.0.1")
      .replaceAll("--port 8080", `--port ${port}`)
      .split(/\s+/);
    const env: Record<string, string> = {};
    while (/^[A-Z_]+=/.test(words[0])) {
      const [k, ...v] = words.shift()!.split("=");
      env[k] = v.join("=");
    }
    assert.equal(words.shift(), "deno");
    assert.doesNotMatch(words.join(" "), /-A\b|--allow-all|--allow-(write|run|ffi|sys)/);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["serve", "--no-prompt", ...words.slice(1)],
      cwd: ROOT,
      clearEnv: true,
      env: { NO_COLOR: "1", HOME: Deno.env.get("HOME") ?? "/", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const d = new TextDecoder();
      for await (const chunk of stream) text += d.decode(chunk, { stream: true });
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    try {
      const deadline = Date.now() + 120_000;
      while (!/Listening on/i.test(text)) {
        assert.ok(Date.now() < deadline, `no "Listening on" within 120 s:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const base = `http://127.0.0.1:${port}`;
      const health = await (await fetch(`${base}/healthz`)).json();
      assert.equal(health.threads, 1, "one WASM thread by default");
      assert.match(health.backend, /^wasm/);
      const res = await fetch(`${base}/classify?topk=1`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: new Uint8Array(3072).fill(100),
      });
      assert.equal(res.status, 200, text);
      assert.equal((await res.json()).predictions.length, 1);
      assert.doesNotMatch(text, /NotCapable|PermissionDenied|Uncaught/);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await pumps;
    }
  } finally {
    await Deno.remove(srv, { recursive: true });
  }
});
