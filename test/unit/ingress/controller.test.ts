/**
 * The controller's inputs beside the manifests: the node agent's down-nodes file (the
 * ingress pods' --down-nodes) decides which pods are endpoints, as kube-proxy's rules and
 * the cluster DNS do on the same node.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { IngressController } from '../../../src/ingress/controller.js';
import { INGRESS_CLASS } from './helpers.js';

const NODES = ['worker-1', 'worker-2']
  .map(
    (name, i) => `apiVersion: v1
kind: Node
metadata: {name: ${name}}
status: {addresses: [{type: InternalIP, address: 10.1.110.${102 + i}}]}
`,
  )
  .join('---\n');

const PODS = ['worker-1', 'worker-2']
  .map(
    (node, i) => `apiVersion: v1
kind: Pod
metadata: {name: blog-${i}, namespace: default, labels: {app: blog}}
spec:
  nodeName: ${node}
  containers: [{name: c, image: echo, ports: [{containerPort: 8080}]}]
`,
  )
  .join('---\n');

const MANIFESTS = `${NODES}---
${PODS}---
apiVersion: v1
kind: Service
metadata: {name: blog, namespace: default}
spec:
  selector: {app: blog}
  ports: [{port: 80, targetPort: 8080}]
---
${INGRESS_CLASS}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: blog, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {path: /blog, pathType: Prefix, backend: {service: {name: blog, port: {number: 80}}}}
`;

const quiet = pino({ level: process.env.KW_DEBUG ? 'debug' : 'silent' });

/** How many endpoints the blog upstream has. */
function endpointCount(controller: IngressController): number {
  const upstream = [...controller.config.upstreams.values()].find((u) => u.service === 'blog');
  assert.ok(upstream, 'the blog upstream exists');
  return upstream.endpoints.length;
}

describe('ingress controller and node liveness', () => {
  it("follows the node agent's down-nodes file: a down node's pods are no endpoints", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-ingress-down-'));
    const manifests = join(dir, 'm.yaml');
    const down = join(dir, 'down-nodes.json');
    writeFileSync(manifests, MANIFESTS);
    writeFileSync(down, '{"downNodes":[]}\n');
    const controller = new IngressController({
      paths: [manifests],
      proxy: { accessLog: quiet, log: quiet },
      log: quiet,
      downNodesFile: down,
      downNodesPollMs: 20,
      debounceMs: 10,
    });
    try {
      assert.equal(endpointCount(controller), 2);
      writeFileSync(down, '{"downNodes":["worker-2"]}\n');
      assert.ok(controller.reload());
      assert.equal(endpointCount(controller), 1);
      rmSync(down); // missing: every node is up
      assert.ok(controller.reload());
      assert.equal(endpointCount(controller), 2);

      // Watched: the agent replaces the file by a rename; the poll sees it.
      controller.watch();
      // The poll's first stat (what later ones compare with) is taken asynchronously.
      await new Promise((r) => setTimeout(r, 200));
      const reloads = controller.reloads;
      writeFileSync(`${down}.tmp`, '{"downNodes":["worker-1","worker-2"]}\n');
      renameSync(`${down}.tmp`, down);
      const deadline = Date.now() + 5000;
      while (controller.reloads === reloads && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(controller.reloads > reloads, 'reloaded after the down-nodes file changed');
      assert.equal(endpointCount(controller), 0);
    } finally {
      await controller.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
