/**
 * Compose mode's preparation of the shared lab directory (src/lab/compose.ts): seeding
 * the manifests from the read-only mounts, keeping applied changes while the seed is
 * unchanged, reseeding when it changes, the lab record, the ready marker.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { LabLayout, type LabRecord } from '../../../src/agent/lab-layout.js';
import { ControlServer } from '../../../src/agent/control.js';
import {
  composeHealth,
  prepareComposeLab,
  readyFile,
  seedFiles,
  waitReady,
} from '../../../src/lab/compose.js';

let dir: string;
let layout: LabLayout;
let seed: string[];
const savedRunDir = process.env.KUBEWIRE_RUN_DIR;

const node = (name: string, ip: string) => `apiVersion: v1
kind: Node
metadata: { name: ${name} }
status: { addresses: [{ type: InternalIP, address: ${ip} }] }
`;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-compose-'));
  process.env.KUBEWIRE_RUN_DIR = join(dir, 'run');
  layout = new LabLayout('kw');
  const nodes = join(dir, 'nodes');
  const manifests = join(dir, 'manifests');
  mkdirSync(nodes);
  mkdirSync(manifests);
  writeFileSync(join(nodes, 'b.yaml'), node('worker-1', '10.1.110.102'));
  writeFileSync(join(nodes, 'a.yaml'), node('control-plane', '10.1.110.108'));
  writeFileSync(join(nodes, '.hidden.yaml'), node('ghost', '10.1.110.9'));
  writeFileSync(join(nodes, 'README.md'), 'not a manifest');
  writeFileSync(
    join(manifests, '00-ns.yaml'),
    'apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n',
  );
  seed = [nodes, manifests];
});

afterEach(() => {
  if (savedRunDir === undefined) delete process.env.KUBEWIRE_RUN_DIR;
  else process.env.KUBEWIRE_RUN_DIR = savedRunDir;
  rmSync(dir, { recursive: true, force: true });
});

const visible = () =>
  readdirSync(layout.manifestsDir)
    .filter((f) => !f.startsWith('.'))
    .sort();

test('seed files: directories in order, manifests only, hidden entries skipped', () => {
  assert.deepEqual(
    seedFiles(seed).map((f) => f.slice(dir.length + 1)),
    ['nodes/a.yaml', 'nodes/b.yaml', 'manifests/00-ns.yaml'],
  );
  assert.throws(() => seedFiles([join(dir, 'nope')]), /no such file or directory/);
});

test('the first prepare seeds the manifests, numbered in load order, and writes the record', async () => {
  const now = new Date('2026-01-02T03:04:05Z');
  const res = await prepareComposeLab(layout, { seedPaths: seed, now });
  assert.equal(res.seeded, true);
  assert.deepEqual(visible(), ['000-a.yaml', '001-b.yaml', '002-00-ns.yaml']);
  assert.equal(
    readFileSync(join(layout.manifestsDir, '001-b.yaml'), 'utf8'),
    node('worker-1', '10.1.110.102'),
  );
  const record = JSON.parse(readFileSync(layout.labFile, 'utf8')) as LabRecord;
  assert.equal(record.mode, 'compose');
  assert.equal(record.createdAt, now.toISOString());
  assert.deepEqual(
    record.nodes.map((n) => n.name),
    ['control-plane', 'worker-1'],
  );
  assert.deepEqual(
    record.hosts.map((h) => `${h.name} ${h.address}`),
    ['router 10.1.110.1', 'client 10.1.0.89'],
  );
});

test('an unchanged seed keeps applied changes and the record; a changed seed resets them', async () => {
  await prepareComposeLab(layout, { seedPaths: seed, now: new Date('2026-01-01T00:00:00Z') });
  // What `kubewire apply` leaves: a new file, and an edited one.
  writeFileSync(
    join(layout.manifestsDir, '900-apply-x-extra.yaml'),
    node('worker-2', '10.1.110.107'),
  );
  const again = await prepareComposeLab(layout, {
    seedPaths: seed,
    now: new Date('2026-02-01T00:00:00Z'),
  });
  assert.equal(again.seeded, false);
  assert.ok(visible().includes('900-apply-x-extra.yaml'));
  assert.equal(again.record.createdAt, '2026-01-01T00:00:00.000Z');

  // Someone edits the mounted manifests: the next start reseeds from them.
  writeFileSync(
    join(seed[1]!, '10-more.yaml'),
    'apiVersion: v1\nkind: Namespace\nmetadata: { name: more }\n',
  );
  const reseeded = await prepareComposeLab(layout, {
    seedPaths: seed,
    now: new Date('2026-03-01T00:00:00Z'),
  });
  assert.equal(reseeded.seeded, true);
  assert.deepEqual(visible(), ['000-a.yaml', '001-b.yaml', '002-00-ns.yaml', '003-10-more.yaml']);
  assert.equal(reseeded.record.createdAt, '2026-03-01T00:00:00.000Z');
});

test('the record lists Nodes added by an applied change', async () => {
  await prepareComposeLab(layout, { seedPaths: seed });
  writeFileSync(
    join(layout.manifestsDir, '900-apply-x-node.yaml'),
    node('worker-2', '10.1.110.107'),
  );
  rmSync(layout.labFile);
  const res = await prepareComposeLab(layout, { seedPaths: seed });
  assert.deepEqual(res.nodes, ['control-plane', 'worker-1', 'worker-2']);
});

test('a seed without a Node, or without manifests, is refused', async () => {
  rmSync(join(seed[0]!, 'a.yaml'));
  rmSync(join(seed[0]!, 'b.yaml'));
  await assert.rejects(prepareComposeLab(layout, { seedPaths: seed }), /no Node/);
  rmSync(join(seed[1]!, '00-ns.yaml'));
  await assert.rejects(prepareComposeLab(layout, { seedPaths: seed }), /no manifests under/);
});

test('health and the ready marker follow the agent status', async () => {
  mkdirSync(layout.nodeDir('worker-1'), { recursive: true });
  const down = await composeHealth(layout, 'worker-1');
  assert.equal(down.ok, false);
  assert.match(down.line, /worker-1: agent not answering/);

  let ready = false;
  const server = new ControlServer(layout.agentSocket('worker-1'), {
    status: () => ({
      node: 'worker-1',
      ready,
      generation: ready ? 1 : 0,
      lastError: null,
      pods: [{ ready: true }, { ready: false }],
    }),
  });
  await server.listen();
  try {
    const converging = await composeHealth(layout, 'worker-1');
    assert.deepEqual(converging, {
      ok: false,
      line: 'worker-1: converging, generation 0, 1/2 pods ready',
    });
    assert.equal(await waitReady(layout, 'worker-1', 300), false);
    setTimeout(() => (ready = true), 150);
    assert.equal(await waitReady(layout, 'worker-1', 5000), true);
    assert.match(
      readFileSync(readyFile(layout, 'worker-1'), 'utf8'),
      /worker-1: ready, generation 1/,
    );
  } finally {
    await server.close();
  }
});
