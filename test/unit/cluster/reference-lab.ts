/** The reference lab (ARCHITECTURE.md "The reference lab") as manifest objects. */
import { labNodes } from './helpers.js';

const PIN = 'cni.projectcalico.org/ipAddrs';

function corednsPod(name: string, nodeName: string, ip: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'kube-system',
      labels: { 'k8s-app': 'kube-dns' },
      annotations: { [PIN]: JSON.stringify([ip]) },
    },
    spec: {
      nodeName,
      tolerations: [
        { key: 'CriticalAddonsOnly', operator: 'Exists' },
        { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
      ],
      dnsPolicy: 'Default',
      containers: [
        {
          name: 'coredns',
          image: 'registry.k8s.io/coredns/coredns:v1.10.1',
          args: ['-conf', '/etc/coredns/Corefile'],
          ports: [
            { name: 'dns', containerPort: 53, protocol: 'UDP' },
            { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
            { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
          ],
        },
      ],
    },
  };
}

function wordpress(name: string, ip: string): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'wordpress' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: { [PIN]: JSON.stringify([ip]) } },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': 'worker-2' },
          containers: [{ name, image: `example/${name}:1`, ports: [{ containerPort: 80 }] }],
        },
      },
    },
  };
}

export function referenceLab(): Record<string, unknown>[] {
  return [
    {
      apiVersion: 'kubeadm.k8s.io/v1beta3',
      kind: 'ClusterConfiguration',
      networking: {
        podSubnet: '192.168.0.0/16',
        serviceSubnet: '10.96.0.0/16',
        dnsDomain: 'cluster.local',
      },
    },
    ...labNodes(),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ingress-nginx' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'wordpress' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'metallb-system' } },
    corednsPod('coredns-control-plane', 'control-plane', '192.168.165.196'),
    corednsPod('coredns-worker-2', 'worker-2', '192.168.8.207'),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system' },
      spec: {
        clusterIP: '10.96.0.10',
        selector: { 'k8s-app': 'kube-dns' },
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ],
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'ingress-nginx-controller', namespace: 'ingress-nginx' },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
        template: {
          metadata: { labels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
          spec: {
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            containers: [
              {
                name: 'controller',
                image: 'registry.k8s.io/ingress-nginx/controller:v1.9.4',
                ports: [
                  { name: 'http', containerPort: 80 },
                  { name: 'https', containerPort: 443 },
                ],
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'ingress-nginx-controller', namespace: 'ingress-nginx' },
      spec: {
        type: 'LoadBalancer',
        clusterIP: '10.96.179.211',
        selector: { 'app.kubernetes.io/name': 'ingress-nginx' },
        ports: [{ name: 'http', port: 80, targetPort: 'http' }],
      },
    },
    wordpress('frontend', '192.168.8.222'),
    wordpress('db', '192.168.8.223'),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'wordpress-db', namespace: 'wordpress' },
      spec: {
        clusterIP: '10.96.23.229',
        selector: { app: 'db' },
        ports: [{ name: 'mysql', port: 3306, targetPort: 80 }],
      },
    },
    {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'lab', namespace: 'metallb-system' },
      spec: { addresses: ['10.1.110.105/32'] },
    },
    {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'L2Advertisement',
      metadata: { name: 'lab', namespace: 'metallb-system' },
    },
  ];
}
