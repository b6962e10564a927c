/**
 * Prints the folder holding tfjs-backend-wasm's `.wasm` binaries (in Deno's npm cache), so that
 * `deno task serve` can grant `--allow-read` on exactly that folder. Needs no permission.
 *
 * @module
 */
import { wasmDir } from "./_serve_process.ts";

if (import.meta.main) console.log(wasmDir());
