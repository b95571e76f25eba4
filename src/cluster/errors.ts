/**
 * Errors and warnings about manifests. Every problem names the file, the document
 * (1-based: the first document of a file is "document 1"; 0 means the file as a whole),
 * the object when known, and the field path.
 */

/** One path segment of a field: an object key or an array index. */
export type PathSegment = string | number;

/**
 * Formats a field path the way kubectl does: `spec.template.spec.containers[0].image`.
 * Keys that are not plain identifiers are quoted: `metadata.annotations["a.b/c"]`.
 */
export function formatFieldPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Where a problem is: file, document, object, field. */
export interface ManifestErrorInit {
  file: string;
  /** 1-based index of the YAML document in its file; 0 for the whole file. */
  documentIndex: number;
  kind?: string;
  namespace?: string;
  /** The object's metadata.name (`name` is taken by Error.name). */
  objectName?: string;
  /** Dotted field path, e.g. `spec.replicas`; '' when the problem is the whole document. */
  fieldPath: string;
  /** The bare problem, e.g. "expected a non-negative integer". */
  detail: string;
  /** 1-based line of the field (or of the document) when known. */
  line?: number;
}

/** Formats `file document N (Kind ns/name): field: detail (line L)`. */
export function formatLocation(init: Omit<ManifestErrorInit, 'detail' | 'fieldPath'>): string {
  let out = init.documentIndex > 0 ? `${init.file} document ${init.documentIndex}` : init.file;
  if (init.kind !== undefined) {
    const who =
      init.objectName === undefined
        ? ''
        : ` ${init.namespace !== undefined ? `${init.namespace}/` : ''}${init.objectName}`;
    out += ` (${init.kind}${who})`;
  }
  return out;
}

export function formatProblem(init: ManifestErrorInit): string {
  const field = init.fieldPath ? `${init.fieldPath}: ` : '';
  const line = init.line !== undefined ? ` (line ${init.line})` : '';
  return `${formatLocation(init)}: ${field}${init.detail}${line}`;
}

/**
 * An invalid manifest object or document. `message` is the formatted one-line text
 * (`compose/app.yaml document 2 (Deployment default/web): spec.replicas: expected a
 * non-negative integer (line 9)`); the parts are available as fields.
 */
export class ManifestError extends Error {
  readonly file: string;
  readonly documentIndex: number;
  readonly kind: string | undefined;
  readonly namespace: string | undefined;
  readonly objectName: string | undefined;
  readonly fieldPath: string;
  readonly detail: string;
  readonly line: number | undefined;

  constructor(init: ManifestErrorInit) {
    super(formatProblem(init));
    this.name = 'ManifestError';
    this.file = init.file;
    this.documentIndex = init.documentIndex;
    this.kind = init.kind;
    this.namespace = init.namespace;
    this.objectName = init.objectName;
    this.fieldPath = init.fieldPath;
    this.detail = init.detail;
    this.line = init.line;
  }

  toJSON(): ManifestErrorInit & { message: string } {
    return {
      file: this.file,
      documentIndex: this.documentIndex,
      ...(this.kind !== undefined ? { kind: this.kind } : {}),
      ...(this.namespace !== undefined ? { namespace: this.namespace } : {}),
      ...(this.objectName !== undefined ? { objectName: this.objectName } : {}),
      fieldPath: this.fieldPath,
      detail: this.detail,
      ...(this.line !== undefined ? { line: this.line } : {}),
      message: this.message,
    };
  }
}

function compareErrors(a: ManifestError, b: ManifestError): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.documentIndex !== b.documentIndex) return a.documentIndex - b.documentIndex;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

/**
 * Every problem found in one pass, sorted by file, document and text (duplicates
 * removed). `message` lists them one per line.
 */
export class ManifestErrors extends AggregateError {
  declare readonly errors: ManifestError[];

  constructor(errors: readonly ManifestError[]) {
    const seen = new Set<string>();
    const unique = [...errors].sort(compareErrors).filter((e) => {
      if (seen.has(e.message)) return false;
      seen.add(e.message);
      return true;
    });
    const head =
      unique.length === 1 ? '1 problem in manifests' : `${unique.length} problems in manifests`;
    super(unique, `${head}:\n${unique.map((e) => `  ${e.message}`).join('\n')}`);
    this.name = 'ManifestErrors';
  }
}
