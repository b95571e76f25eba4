import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { LabLayout } from '../../../src/agent/lab-layout.js';
import { applyManifestFile } from '../../../src/lab/apply.js';
import { buildClusterState, loadManifests } from '../../../src/cluster/index.js';

let dir: string;
let layout: LabLayout;
const savedRunDir = process.env.KUBEWIRE_RUN_DIR;

const base = `apiVersion: v1
kind: Node
metadata: { name: n1 }
status: { addresses: [{ type: InternalIP, address: 10.1.110.10 }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: solo }
spec: { containers: [{ name: c, image: x }] }
`;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-apply-'));
  process.env.KUBEWIRE_RUN_DIR = dir;
  layout = new LabLayout('unit');
  mkdirSync(layout.manifestsDir, { recursive: true });
  writeFileSync(join(layout.manifestsDir, '000-base.yaml'), base);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  if (savedRunDir === undefined) delete process.env.KUBEWIRE_RUN_DIR;
  else process.env.KUBEWIRE_RUN_DIR = savedRunDir;
});

const state = () => buildClusterState(loadManifests([layout.manifestsDir]));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const scaled = (n: number) => base.split('---\n')[1]!.replace('replicas: 1', `replicas: ${n}`);

test('apply replaces an object by kind, namespace and name, as kubectl reports it', () => {
  const r = applyManifestFile(layout, file('scale.yaml', scaled(3)), 'apply');
  assert.deepEqual(r.lines, ['deployment.apps/web configured']);
  assert.equal(state().pods.filter((p) => p.name.startsWith('web-')).length, 3);
  // The original file lost its copy of the Deployment; the rest of it stays.
  const original = readFileSync(join(layout.manifestsDir, '000-base.yaml'), 'utf8');
  assert.doesNotMatch(original, /kind: Deployment/);
  assert.match(original, /name: solo/);
});

test('applying the same object again is unchanged and writes nothing', () => {
  const f = file('scale.yaml', scaled(2));
  applyManifestFile(layout, f, 'apply');
  const before = readdirSync(layout.manifestsDir);
  const r = applyManifestFile(layout, f, 'apply');
  assert.deepEqual(r, { lines: ['deployment.apps/web unchanged'], changed: false });
  assert.deepEqual(readdirSync(layout.manifestsDir), before);
});

test('an invalid file is refused naming file, document and field, and nothing is written', () => {
  const before = readdirSync(layout.manifestsDir).map((f) =>
    readFileSync(join(layout.manifestsDir, f), 'utf8'),
  );
  const bad = file('bad.yaml', scaled(2).replace('replicas: 2', 'replicas: -3'));
  assert.throws(
    () => applyManifestFile(layout, bad, 'apply'),
    /bad\.yaml document 1 \(Deployment default\/web\): spec\.replicas/,
  );
  const after = readdirSync(layout.manifestsDir).map((f) =>
    readFileSync(join(layout.manifestsDir, f), 'utf8'),
  );
  assert.deepEqual(after, before);
});

test('delete removes the objects and reports what was not found', () => {
  const f = file(
    'del.yaml',
    `${base.split('---\n')[2]}---\napiVersion: v1\nkind: Pod\nmetadata: { name: ghost }\nspec: { containers: [{ name: c, image: x }] }\n`,
  );
  const r = applyManifestFile(layout, f, 'delete');
  assert.deepEqual(r.lines, [
    'pod/solo deleted',
    'Error from server (NotFound): pod/ghost not found',
  ]);
  assert.ok(!state().pods.some((p) => p.name === 'solo'));
});

test('staged files are hidden until renamed (agents skip dot-files)', () => {
  applyManifestFile(layout, file('scale.yaml', scaled(2)), 'apply');
  assert.ok(readdirSync(layout.manifestsDir).every((f) => !f.startsWith('.')));
});
