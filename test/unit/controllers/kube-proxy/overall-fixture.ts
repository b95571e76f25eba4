/**
 * The services, endpoint slices and fake-proxier settings of upstream
 * TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go; reference/dataplane.md
 * §1.6), as kubewire inputs.
 */
import type {
  KubeProxyOptions,
  KubeProxyServiceInput,
} from '../../../../src/controllers/kube-proxy/index.js';
import { makeEndpoints, makePort, makeService } from './helpers.js';

const TEST_NODE = 'test-node';

/** The services and endpoint slices of TestOverallIPTablesRules. */
export function overallServices(): KubeProxyServiceInput[] {
  const p80 = (nodePort: number | null = null) => [makePort('p80', 80, { nodePort })];
  return [
    {
      // ClusterIP service.
      service: makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: p80() }),
      endpoints: [makeEndpoints('p80', 80, [{ ip: '10.180.0.1', port: 80 }])],
    },
    {
      // LoadBalancer, eTP=Local, externalIP, health check node port; the endpoint has
      // no nodeName, so it is not local.
      service: makeService('ns2', 'svc2', {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        clusterIP: '172.30.0.42',
        ports: p80(3001),
        externalIPs: ['192.168.99.22'],
        healthCheckNodePort: 30000,
      }),
      endpoints: [makeEndpoints('p80', 80, [{ ip: '10.180.0.2', port: 80 }])],
    },
    {
      // NodePort service.
      service: makeService('ns3', 'svc3', {
        type: 'NodePort',
        clusterIP: '172.30.0.43',
        ports: p80(3003),
      }),
      endpoints: [makeEndpoints('p80', 80, [{ ip: '10.180.0.3', port: 80 }])],
    },
    {
      // "NodePort" with an externalIP but no node port set; one endpoint local.
      service: makeService('ns4', 'svc4', {
        type: 'NodePort',
        clusterIP: '172.30.0.44',
        externalIPs: ['192.168.99.33'],
        ports: p80(),
      }),
      endpoints: [
        makeEndpoints('p80', 80, [
          { ip: '10.180.0.4', port: 80 },
          { ip: '10.180.0.5', port: 80, node: TEST_NODE },
        ]),
      ],
    },
    {
      // LoadBalancer, eTP=Cluster, source ranges (with the whitespace the test keeps),
      // ClientIP affinity. Its healthCheckNodePort is ignored: eTP is Cluster.
      service: makeService('ns5', 'svc5', {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Cluster',
        clusterIP: '172.30.0.45',
        ports: p80(3002),
        healthCheckNodePort: 30000,
        loadBalancerSourceRanges: [' 203.0.113.0/25'],
        sessionAffinity: 'ClientIP',
        sessionAffinityTimeoutSeconds: 10800,
      }),
      endpoints: [makeEndpoints('p80', 80, [{ ip: '10.180.0.3', port: 80 }])],
    },
    {
      // ClusterIP service without endpoints.
      service: makeService('ns6', 'svc6', { clusterIP: '172.30.0.46', ports: p80() }),
      endpoints: [makeEndpoints('p80', 80, [])],
    },
  ];
}

/** NewFakeProxier: node 192.168.0.2, pod CIDR 10.0.0.0/8 detector, mark "0x4000",
 * localhost NodePorts, nfacct counters present, fake iptables without --random-fully. */
export const FAKE_PROXIER: KubeProxyOptions = {
  nodeName: TEST_NODE,
  nodeIPs: ['192.168.0.2'],
  clusterCIDR: '10.0.0.0/8',
  masqueradeMark: '0x4000',
  loadBalancerIPs: new Map([
    ['ns2/svc2', ['1.2.3.4']],
    ['ns5/svc5', ['5.6.7.8']],
  ]),
  localhostNodePorts: true,
  nfacct: true,
  randomFully: false,
};
