import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  derivedUid,
  netnsNameForPod,
  podTemplateHash,
  vethNameForWorkload,
} from '../../../src/cluster/index.js';
import {
  fnv32a,
  safeEncodeString,
  SAFE_ALPHABET,
  sha1Bytes,
  sha1Hex,
  stableHash32,
} from '../../../src/cluster/hash.js';
import { daemonPodName, replicaPodName } from '../../../src/cluster/naming.js';
import { build, deployment, labNodes, podsOf } from './helpers.js';

describe('vethNameForWorkload (Calico)', () => {
  it('is "cali" + the first 11 hex digits of sha1("<namespace>.<pod>")', () => {
    // printf 'default.web' | sha1sum → 68caf03a5f4aa41b0a8b0a4b0ad8f3dd6f51c354
    assert.equal(vethNameForWorkload('default', 'web'), 'cali68caf03a5f4');
    // printf 'kube-system.coredns-5d78c9869d-abcde' | sha1sum → 4d5f75c480cc7f4e…
    assert.equal(vethNameForWorkload('kube-system', 'coredns-5d78c9869d-abcde'), 'cali4d5f75c480c');
    assert.equal(vethNameForWorkload('default', 'web').length, 15);
  });

  it('is what the state carries', () => {
    const state = build(...labNodes(), deployment('web', 2));
    for (const p of state.pods) assert.equal(p.vethName, vethNameForWorkload(p.namespace, p.name));
  });
});

describe('netnsNameForPod', () => {
  it('is kwp-<namespace>.<pod> when it fits in 60 characters', () => {
    assert.equal(netnsNameForPod('default', 'web-1'), 'kwp-default.web-1');
    assert.notEqual(netnsNameForPod('a-b', 'c'), netnsNameForPod('a', 'b-c'));
  });

  it('is cut to 49 characters plus "-" and 10 hex digits of sha1("<namespace>/<pod>") when longer', () => {
    const long = 'a'.repeat(70);
    const name = netnsNameForPod('default', long);
    assert.equal(name.length, 60);
    // printf 'default/aaaa…(70)' | sha1sum → 56ea96fa7fdd7b0b…
    assert.equal(name, `kwp-default.${'a'.repeat(37)}-56ea96fa7f`);
    assert.notEqual(netnsNameForPod('default', long + 'b'), name);
  });
});

describe('Kubernetes-style generated names', () => {
  it('SafeEncodeString maps decimal digits like Kubernetes (only 4-9, b, c, d, f)', () => {
    assert.equal(SAFE_ALPHABET, 'bcdfghjklmnpqrstvwxz2456789');
    assert.equal(safeEncodeString('0123456789'), '456789bcdf');
  });

  it('FNV-1a 32 test vectors', () => {
    assert.equal(fnv32a(''), 0x811c9dc5);
    assert.equal(fnv32a('a'), 0xe40c292c);
    assert.equal(fnv32a('foobar'), 0xbf9cf968);
  });

  it('pod-template-hash depends on the template only, not on key order', () => {
    const a = podTemplateHash({
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'a', image: 'x' }] },
    });
    const b = podTemplateHash({
      spec: { containers: [{ image: 'x', name: 'a' }] },
      metadata: { labels: { app: 'web' } },
    });
    const c = podTemplateHash({
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'a', image: 'y' }] },
    });
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.match(a, /^[456789bcdf]{1,10}$/);
  });

  it('Deployment pods are <deploy>-<hash>-<5 chars>, stable, unique', () => {
    const state = build(...labNodes(), deployment('web', 5));
    const pods = podsOf(state, 'web');
    const hash = pods[0]!.labels['pod-template-hash']!;
    pods.forEach((p, i) => {
      assert.equal(p.ownerIndex, i);
      assert.equal(p.name, replicaPodName(`web-${hash}`, i));
      assert.match(p.name, new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
    });
    assert.equal(new Set(pods.map((p) => p.name)).size, 5);
  });

  it('generated names keep to 63 characters', () => {
    const long = 'x'.repeat(60);
    assert.equal(replicaPodName(`${long}-abc`, 0).length, 63);
    assert.equal(daemonPodName('default', long, 'node', 0).length, 63);
  });

  it('derived uids are UUID-shaped and stable', () => {
    assert.equal(derivedUid('Pod', 'default', 'web'), derivedUid('Pod', 'default', 'web'));
    assert.notEqual(derivedUid('Pod', 'default', 'web'), derivedUid('Pod', 'other', 'web'));
    assert.match(
      derivedUid('Pod', 'default', 'web'),
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe('SHA-1', () => {
  it('agrees with node:crypto (1 and 2 blocks, longer inputs, non-ASCII)', () => {
    const texts = [
      '',
      'a',
      'é/ü:ß',
      'x'.repeat(55),
      'x'.repeat(56),
      'x'.repeat(64),
      'x'.repeat(119),
    ];
    for (let i = 0; i < 300; i++) texts.push(`${'k'.repeat(i % 140)}ns${i}.web-${i * 7}-abcde`);
    for (const text of texts) {
      const digest = createHash('sha1').update(text, 'utf8').digest();
      assert.equal(sha1Hex(text), digest.toString('hex'), JSON.stringify(text));
      assert.deepEqual([...sha1Bytes(text)], [...digest], JSON.stringify(text));
      assert.equal(stableHash32(text), digest.readUInt32BE(0), JSON.stringify(text));
    }
  });
});
