// Test helpers: small datasets written in the official CIFAR binary formats, as folders and as
// .tar.gz archives (built with tar-stream's packer and the platform's CompressionStream).
// @ts-types="@types/tar-stream"
import tar from "tar-stream";
import { Buffer } from "node:buffer";
import { Rng } from "@mfi/core";
import { CIFAR_IMAGE_BYTES, type CifarDataset, cifarSpec } from "../spec.ts";
import { encodeRecords } from "../records.ts";
import type { CropFlipParams } from "../augment.ts";

export interface FixtureFile {
  readonly name: string; // path relative to the dataset's parent folder
  readonly bytes: Uint8Array;
}

/** Deterministic pixels and labels: record i of a file has class i % classes (fine for CIFAR-100). */
export function fixtureRecords(
  dataset: CifarDataset,
  count: number,
  seed: number,
): { images: Uint8Array; labels: Array<number | [number, number]>; bytes: Uint8Array } {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = rng.nextUint32() & 0xff;
  const labels = Array.from(
    { length: count },
    (_, i): number | [number, number] =>
      dataset === "cifar10" ? i % 10 : [(i * 7) % 20, (i * 3) % 100],
  );
  return { images, labels, bytes: encodeRecords(images, labels, dataset) };
}

/** All files of a small distribution: `perFile` records in every data file. */
export function fixtureFiles(dataset: CifarDataset, perFile: number): FixtureFile[] {
  const spec = cifarSpec(dataset);
  const files: FixtureFile[] = [];
  let seed = 1;
  for (const name of [...spec.files.train, ...spec.files.test]) {
    files.push({
      name: `${spec.folder}/${name}`,
      bytes: fixtureRecords(dataset, perFile, seed++).bytes,
    });
  }
  for (const kind of spec.labelKinds) {
    const { count, namesFile } = spec.classes[kind]!;
    const text = Array.from({ length: count }, (_, i) => `${kind}_${i}`).join("\n") + "\n";
    files.push({ name: `${spec.folder}/${namesFile}`, bytes: new TextEncoder().encode(text) });
  }
  return files;
}

/** Writes files under dir (creating folders). */
export async function writeFiles(dir: string, files: readonly FixtureFile[]): Promise<void> {
  for (const file of files) {
    const path = `${dir}/${file.name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, file.bytes);
  }
}

/** Builds a .tar.gz of the files (plus a readme, like the official archive). */
export async function tarGz(files: readonly FixtureFile[]): Promise<Uint8Array<ArrayBuffer>> {
  const pack = tar.pack();
  const folder = files[0].name.split("/")[0];
  pack.entry({ name: `${folder}/`, type: "directory" });
  pack.entry({ name: `${folder}/readme.html` }, "<p>fixture</p>\n");
  for (const file of files) pack.entry({ name: file.name }, Buffer.from(file.bytes));
  pack.finalize();
  const chunks: Uint8Array[] = [];
  for await (const chunk of pack) chunks.push(chunk);
  const gz = new Blob(chunks as BlobPart[]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(gz).arrayBuffer());
}

/** Plain-loop reference: zero-pad, take the window, mirror columns. */
export function referenceCropFlip(
  pixels: Float32Array,
  [n, h, w, c]: number[],
  p: CropFlipParams,
  padding: number,
): Float32Array {
  const out = new Float32Array(n * h * w * c);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sx = p.flip[i] ? w - 1 - x : x;
        const py = y + p.top[i] - padding;
        const px = sx + p.left[i] - padding;
        for (let k = 0; k < c; k++) {
          const inside = py >= 0 && py < h && px >= 0 && px < w;
          out[((i * h + y) * w + x) * c + k] = inside ? pixels[((i * h + py) * w + px) * c + k] : 0;
        }
      }
    }
  }
  return out;
}
