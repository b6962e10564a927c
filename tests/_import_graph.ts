/**
 * The import-graph rules of the monorepo, checked by machine: parse every `.ts` file's import
 * and re-export statements (comments skipped, strings kept), map each specifier to the folder it
 * lands in, and list the arrows that must never exist.
 *
 * @module
 */

/** Top-level folders that are packages (published with their own deno.json). */
export const PACKAGES = ["core", "data", "resnet", "flows", "incubation", "serve"] as const;

/** Packages holding one model family or the data pipeline: they may import only `core`. */
const MODEL_PACKAGES = new Set(["resnet", "flows", "data"]);

/** One import arrow: file, the specifier as written, and the folder it resolves to. */
export interface ImportEdge {
  /** The importing file, relative to the repository root with `/` separators. */
  readonly file: string;
  /** The specifier as written, e.g. `@mfi/core` or `../core/x.ts`. */
  readonly specifier: string;
  /** The top-level folder it resolves to, or `null` for an external module (npm:, node:, ...). */
  readonly target: string | null;
}

/** A forbidden arrow with the rule it breaks. */
export interface Violation {
  /** The edge. */
  readonly edge: ImportEdge;
  /** Which rule, in words. */
  readonly rule: string;
}

/**
 * Blanks out comments (so that JSDoc examples do not count) and keeps everything else, including
 * string and template literals, character for character.
 *
 * @param source TypeScript source.
 * @returns The source with every comment character replaced by a space (newlines kept).
 */
export function stripComments(source: string): string {
  let out = "";
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") {
        out += " ";
        i++;
      }
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? n : end + 2;
      for (; i < stop; i++) out += source[i] === "\n" ? "\n" : " ";
    } else if (c === '"' || c === "'" || c === "`") {
      out += c;
      i++;
      while (i < n && source[i] !== c) {
        if (source[i] === "\\") {
          out += source[i++];
        }
        if (i < n) out += source[i++];
      }
      if (i < n) out += source[i++];
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const STATIC =
  /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*\s{},$]*?\s+from\s+)?["']([^"'\n]+)["']/g;
const DYNAMIC = /\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g;

/**
 * The module specifiers a source file imports or re-exports (static, side-effect and dynamic
 * imports with a literal specifier), in order, without duplicates.
 *
 * @param source TypeScript source.
 * @returns The specifiers.
 */
export function importSpecifiers(source: string): string[] {
  const code = stripComments(source);
  const found: string[] = [];
  for (const re of [STATIC, DYNAMIC]) {
    for (const m of code.matchAll(re)) found.push(m[1]);
  }
  return [...new Set(found)];
}

/**
 * The top-level folder of a repository path (`"core/kernels/x.ts"` -> `"core"`; a root file ->
 * `"."`).
 *
 * @param file Path relative to the root, `/`-separated.
 * @returns The folder.
 */
export function folderOf(file: string): string {
  const slash = file.indexOf("/");
  return slash === -1 ? "." : file.slice(0, slash);
}

/**
 * Where a specifier lands: `@mfi/x[/sub]` -> `x`; a relative path -> the top-level folder it
 * resolves to from `file`; anything else (npm:, node:, a bare tfjs name) -> `null`.
 *
 * @param file The importing file, relative to the root.
 * @param specifier The specifier.
 * @returns The target folder or `null`.
 */
export function targetOf(file: string, specifier: string): string | null {
  const scoped = /^@mfi\/([^/]+)/.exec(specifier);
  if (scoped) return scoped[1];
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return null;
  const parts = file.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") {
      if (parts.length === 0) return ".."; // outside the repository
      parts.pop();
    } else if (part !== ".") parts.push(part);
  }
  return folderOf(parts.join("/"));
}

/**
 * The rules: `core` imports no other package; `resnet`, `flows` and `data` import no package
 * but `core`; no package imports `tasks/` or `tests/`; `incubation` does not import `serve`;
 * a package reaches another package only through its `@mfi/` name, never a relative path.
 * `serve`, `tasks` and `tests` may import every package.
 *
 * @param edge One import arrow.
 * @returns The broken rule, or `null` if the arrow is allowed.
 */
export function ruleBroken(edge: ImportEdge): string | null {
  const from = folderOf(edge.file);
  const to = edge.target;
  if (to === null || to === from) return null;
  const isPackage = (PACKAGES as readonly string[]).includes(from);
  if (isPackage && (to === "tasks" || to === "tests")) {
    return `a package may not import ${to}/ (entry points and tests depend on packages, not the reverse)`;
  }
  if (from === "tasks" && to === "tests") {
    return "tasks/ may not import tests/";
  }
  if (from === "core") return "core may import no other package";
  if (MODEL_PACKAGES.has(from) && to !== "core") {
    return `${from} may import only @mfi/core among the packages`;
  }
  if (from === "incubation" && to === "serve") {
    return "incubation may not import serve (serving depends on the method, not the reverse)";
  }
  if (isPackage && !edge.specifier.startsWith("@mfi/")) {
    return `a package reaches another package through its @mfi/ name, not a relative path`;
  }
  return null;
}

/**
 * Checks a whole graph.
 *
 * @param files Source text by path (relative to the root, `/`-separated).
 * @returns Every forbidden arrow, in file order.
 */
export function checkImportGraph(files: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, source] of files) {
    for (const specifier of importSpecifiers(source)) {
      const edge = { file, specifier, target: targetOf(file, specifier) };
      const rule = ruleBroken(edge);
      if (rule !== null) violations.push({ edge, rule });
    }
  }
  return violations;
}

/**
 * One line per violation: `file: from -> to ("specifier"): rule`.
 *
 * @param violations The violations.
 * @returns The report.
 */
export function formatViolations(violations: readonly Violation[]): string {
  return violations.map(({ edge, rule }) =>
    `${edge.file}: ${folderOf(edge.file)} -> ${edge.target} ("${edge.specifier}"): ${rule}`
  ).join("\n");
}
