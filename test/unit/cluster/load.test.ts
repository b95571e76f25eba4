import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildClusterState,
  loadManifests,
  ManifestError,
  ManifestErrors,
  parseManifestText,
} from '../../../src/cluster/index.js';

function thrown(fn: () => unknown): ManifestErrors {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ManifestErrors, `expected ManifestErrors, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a throw');
}

describe('parseManifestText', () => {
  it('reads every document of a multi-document file, 1-based, skipping empty ones', () => {
    const text = [
      '# leading comment',
      'apiVersion: v1',
      'kind: Namespace',
      'metadata: {name: a}',
      '---',
      '# only a comment',
      '---',
      'apiVersion: v1',
      'kind: Namespace',
      'metadata:',
      '  name: b',
      '---',
      '',
    ].join('\n');
    const docs = parseManifestText(text, 'ns.yaml');
    assert.deepEqual(
      docs.map((d) => [
        d.file,
        d.index,
        (d.object as { metadata: { name: string } }).metadata.name,
      ]),
      [
        ['ns.yaml', 1, 'a'],
        ['ns.yaml', 3, 'b'],
      ],
    );
    assert.equal(docs[1]!.line, 8);
    assert.equal(docs[1]!.locate?.(['metadata', 'name']), 11);
  });

  it('reports YAML syntax errors with document and line', () => {
    const text = 'apiVersion: v1\nkind: Pod\n---\nmetadata:\n  name: [unclosed\n';
    const e = thrown(() => parseManifestText(text, 'bad.yaml'));
    assert.equal(e.errors.length >= 1, true);
    const first = e.errors[0]!;
    assert.ok(first instanceof ManifestError);
    assert.equal(first.file, 'bad.yaml');
    assert.equal(first.documentIndex, 2);
    assert.ok(first.line !== undefined && first.line >= 5, `line ${first.line}`);
    assert.match(first.message, /^bad\.yaml document 2: YAML syntax error: /);
  });

  it('refuses duplicate keys', () => {
    const e = thrown(() => parseManifestText('a: 1\na: 2\n', 'dup.yaml'));
    assert.match(e.errors[0]!.message, /dup\.yaml document 1: YAML syntax error: .*unique/i);
  });

  it('reads a .json file as one document and reports JSON errors', () => {
    const docs = parseManifestText(
      '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"j"}}',
      'x.json',
    );
    assert.equal(docs.length, 1);
    assert.equal(docs[0]!.index, 1);
    const e = thrown(() => parseManifestText('{\n"a": 1,\n}', 'broken.json'));
    assert.match(e.errors[0]!.message, /^broken\.json document 1: JSON syntax error/);
  });
});

describe('loadManifests', () => {
  const root = mkdtempSync(join(tmpdir(), 'kw-load-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  const ns = (name: string): string =>
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
  mkdirSync(join(root, 'dir', 'sub'), { recursive: true });
  mkdirSync(join(root, 'dir', '.hidden'), { recursive: true });
  writeFileSync(join(root, 'dir', 'b.yaml'), ns('b1') + '---\n' + ns('b2'));
  writeFileSync(join(root, 'dir', 'a.yml'), ns('a'));
  writeFileSync(
    join(root, 'dir', 'sub', 'c.json'),
    JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'c' } }),
  );
  writeFileSync(join(root, 'dir', 'notes.txt'), 'not a manifest');
  writeFileSync(join(root, 'dir', '.tmp-apply.yaml'), ns('hidden-file'));
  writeFileSync(join(root, 'dir', '.hidden', 'h.yaml'), ns('hidden-dir'));
  writeFileSync(
    join(root, 'list.yaml'),
    'apiVersion: v1\nkind: List\nitems:\n- ' +
      ns('l1').trimEnd().split('\n').join('\n  ') +
      '\n- ' +
      ns('l2').trimEnd().split('\n').join('\n  ') +
      '\n',
  );
  writeFileSync(join(root, 'explicit.txt'), ns('explicit'));

  it('walks directories recursively in sorted order, taking .yaml/.yml/.json and skipping hidden entries', () => {
    const docs = loadManifests([join(root, 'dir')]);
    assert.deepEqual(
      docs.map((d) => [d.file.slice(root.length + 1), d.index]),
      [
        ['dir/a.yml', 1],
        ['dir/b.yaml', 1],
        ['dir/b.yaml', 2],
        ['dir/sub/c.json', 1],
      ],
    );
  });

  it('takes an explicitly named file whatever its extension, and reads a file once', () => {
    const docs = loadManifests([
      join(root, 'explicit.txt'),
      join(root, 'dir', 'a.yml'),
      join(root, 'dir'),
    ]);
    const names = docs.map((d) => (d.object as { metadata: { name: string } }).metadata.name);
    assert.deepEqual(names, ['explicit', 'a', 'b1', 'b2', 'c']);
  });

  it('expands kind: List items', () => {
    const state = buildClusterState(loadManifests([join(root, 'list.yaml')]));
    assert.ok(state.namespaces.includes('l1'));
    assert.ok(state.namespaces.includes('l2'));
  });

  it('reports missing paths and every broken file at once', () => {
    writeFileSync(join(root, 'broken1.yaml'), 'a: [\n');
    writeFileSync(join(root, 'broken2.yaml'), 'b: {\n');
    const e = thrown(() =>
      loadManifests([join(root, 'nope'), join(root, 'broken1.yaml'), join(root, 'broken2.yaml')]),
    );
    const files = e.errors.map((x) => x.file.slice(root.length + 1));
    assert.ok(files.includes('nope'));
    assert.ok(files.includes('broken1.yaml'));
    assert.ok(files.includes('broken2.yaml'));
    const missing = e.errors.find((x) => x.file.endsWith('nope'))!;
    assert.equal(missing.documentIndex, 0);
    assert.match(missing.message, /nope: no such file or directory$/);
    assert.match(e.message, /^\d+ problems in manifests:\n/);
  });
});
