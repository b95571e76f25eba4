import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  kubeProxyRulesFor,
  type KubeProxyServiceInput,
} from '../../../../src/controllers/kube-proxy/index.js';
import { makeEndpoints, makePort, makeService } from './helpers.js';

/** `services` ClusterIP Services (every tenth a NodePort) with `perService` endpoints. */
function many(services: number, perService: number): KubeProxyServiceInput[] {
  const out: KubeProxyServiceInput[] = [];
  for (let i = 0; i < services; i++) {
    const nodePort = i % 10 === 0 ? 30000 + i / 10 : null;
    out.push({
      service: makeService(`ns${i % 100}`, `svc${i}`, {
        type: nodePort === null ? 'ClusterIP' : 'NodePort',
        clusterIP: `10.${96 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}`,
        ports: [makePort('http', 80, { targetPort: 8080, nodePort })],
      }),
      endpoints: [
        makeEndpoints(
          'http',
          80,
          Array.from({ length: perService }, (_, j) => {
            const n = i * perService + j;
            return {
              ip: `${192 + (n >>> 24)}.${(168 + (n >>> 16)) & 255}.${(n >>> 8) & 255}.${n & 255}`,
              port: 8080,
              node: `node-${j % 3}`,
            };
          }),
        ),
      ],
    });
  }
  return out;
}

describe('scale: 10,000 Services × 5 endpoints (not a timed test)', () => {
  test('generates, reports the time, and the shape is as expected', (t) => {
    const inputs = many(10_000, 5);
    const opts = { nodeName: 'node-0', nodeIPs: ['10.1.110.102'], clusterCIDR: '192.168.0.0/16' };
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const first = kubeProxyRulesFor(inputs, opts);
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    const second = kubeProxyRulesFor(inputs, opts, first);
    const t2 = performance.now();
    const full = kubeProxyRulesFor(inputs, { ...opts, fullSync: true }, first);
    t.diagnostic(
      `first sync ${(t1 - t0).toFixed(0)} ms wall, ${((c1.user + c1.system) / 1000).toFixed(0)} ms CPU; ` +
        `second sync (partial, nothing changed) ${(t2 - t1).toFixed(0)} ms wall, ` +
        `${(second.restoreText.length / 1e6).toFixed(1)} MB; ` +
        `${(first.restoreText.length / 1e6).toFixed(1)} MB, ${first.chains.nat.length} nat chains`,
    );
    assert.equal(first.totalEndpoints, 50_000);
    assert.equal(first.largeClusterMode, true);
    assert.equal(first.partial, false);
    // 4 top-level + 10,000 SVC + 1,000 EXT + 50,000 SEP.
    assert.equal(first.chains.nat.length, 4 + 10_000 + 1_000 + 50_000);
    // Nothing changed: only the top-level chains are written, every chain is kept.
    assert.equal(second.partial, true);
    assert.equal(second.writtenServices, 0);
    assert.deepEqual(second.chains, first.chains);
    assert.deepEqual(second.deletedChains, []);
    assert.doesNotMatch(second.nat, /^:KUBE-(SVC|SEP|EXT)-/m);
    // A forced full sync writes everything again, byte for byte.
    assert.equal(full.partial, false);
    assert.equal(full.restoreText, first.restoreText);
  });
});
