/**
 * Reading manifests: YAML (multi-document) and JSON files, and directories of them.
 * This is the only module of src/cluster that does I/O.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { ManifestError, ManifestErrors, type PathSegment } from './errors.js';

/** One document of a manifest file. */
export interface ManifestDocument {
  /** The file as named by the caller (directory entries are joined to the given path). */
  file: string;
  /** 1-based position of the document in its file ("document 1" is the first). */
  index: number;
  /** The parsed document (plain JSON data). */
  object: unknown;
  /** 1-based line where the document starts, when known. */
  line?: number;
  /** Finds the 1-based line of a field path inside `object`, when known. */
  locate?: (path: readonly PathSegment[]) => number | undefined;
}

/** File name endings read from directories. */
export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

function locator(
  doc: Document.Parsed,
  counter: LineCounter,
): (path: readonly PathSegment[]) => number | undefined {
  return (path) => {
    for (let k = path.length; k >= 0; k--) {
      const node = doc.getIn(path.slice(0, k), true) as { range?: [number, number, number] };
      if (node && typeof node === 'object' && Array.isArray(node.range)) {
        return counter.linePos(node.range[0]).line;
      }
    }
    return undefined;
  };
}

/**
 * Parses the text of one manifest file. YAML files may hold several documents separated
 * by `---`; empty documents are skipped but still counted. A file whose name ends in
 * `.json` is read as one JSON document. Syntax errors throw ManifestErrors (every error of
 * the file, each with its document and line).
 */
export function parseManifestText(text: string, file: string): ManifestDocument[] {
  if (file.toLowerCase().endsWith('.json')) return parseJson(text, file);
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, uniqueKeys: true });
  const out: ManifestDocument[] = [];
  const errors: ManifestError[] = [];
  let index = 0;
  for (const doc of docs) {
    index++;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        errors.push(
          new ManifestError({
            file,
            documentIndex: index,
            fieldPath: '',
            detail: `YAML syntax error: ${firstLine(err.message)}`,
            ...(err.linePos ? { line: err.linePos[0].line } : {}),
          }),
        );
      }
      continue;
    }
    if (doc.contents === null) continue;
    let object: unknown;
    try {
      object = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      errors.push(
        new ManifestError({
          file,
          documentIndex: index,
          fieldPath: '',
          detail: `YAML error: ${firstLine((e as Error).message)}`,
        }),
      );
      continue;
    }
    if (object === null || object === undefined) continue;
    const start = doc.contents.range?.[0];
    out.push({
      file,
      index,
      object,
      ...(start !== undefined ? { line: counter.linePos(start).line } : {}),
      locate: locator(doc, counter),
    });
  }
  if (errors.length > 0) throw new ManifestErrors(errors);
  return out;
}

function parseJson(text: string, file: string): ManifestDocument[] {
  let object: unknown;
  try {
    object = JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const at = /position (\d+)/.exec(message);
    const line = at ? text.slice(0, Number(at[1])).split('\n').length : undefined;
    throw new ManifestErrors([
      new ManifestError({
        file,
        documentIndex: 1,
        fieldPath: '',
        detail: `JSON syntax error: ${firstLine(message)}`,
        ...(line !== undefined ? { line } : {}),
      }),
    ]);
  }
  if (object === null) return [];
  return [{ file, index: 1, object }];
}

function hasManifestExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return MANIFEST_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/**
 * Lists manifest files under `paths`. A file path is taken whatever its extension; a
 * directory is walked recursively, entries in byte order of their names, taking files
 * ending in .yaml, .yml or .json and skipping hidden entries (names starting with ".",
 * e.g. editors' and `kubewire apply`'s temporary files). A file reached twice is read once.
 */
export function listManifestFiles(paths: readonly string[]): {
  files: string[];
  errors: ManifestError[];
} {
  const files: string[] = [];
  const errors: ManifestError[] = [];
  const seen = new Set<string>();
  const visit = (path: string, explicit: boolean): void => {
    let real: string;
    let isDir: boolean;
    try {
      real = realpathSync(path);
      isDir = statSync(real).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      errors.push(
        new ManifestError({
          file: path,
          documentIndex: 0,
          fieldPath: '',
          detail: code === 'ENOENT' ? 'no such file or directory' : (e as Error).message,
        }),
      );
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    if (!isDir) {
      if (explicit || hasManifestExtension(path)) files.push(path);
      return;
    }
    let entries: string[];
    try {
      entries = readdirSync(real);
    } catch (e) {
      errors.push(
        new ManifestError({
          file: path,
          documentIndex: 0,
          fieldPath: '',
          detail: (e as Error).message,
        }),
      );
      return;
    }
    entries.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      visit(join(path, entry), false);
    }
  };
  for (const path of paths) visit(path, true);
  return { files, errors };
}

/**
 * Reads manifest files and directories (see listManifestFiles) and parses every
 * document. All unreadable files and syntax errors are reported together as one
 * ManifestErrors.
 */
export function loadManifests(paths: readonly string[]): ManifestDocument[] {
  const { files, errors } = listManifestFiles(paths);
  const docs: ManifestDocument[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      errors.push(
        new ManifestError({ file, documentIndex: 0, fieldPath: '', detail: (e as Error).message }),
      );
      continue;
    }
    try {
      docs.push(...parseManifestText(text, file));
    } catch (e) {
      if (e instanceof ManifestErrors) errors.push(...e.errors);
      else throw e;
    }
  }
  if (errors.length > 0) throw new ManifestErrors(errors);
  return docs;
}
