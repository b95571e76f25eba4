import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { parseManifestText, type ManifestDocument } from '../../../src/cluster/index.js';
import {
  compileIngress,
  type CompileOptions,
  type IngressConfig,
} from '../../../src/ingress/index.js';
import { startEcho, type EchoReply } from '../../../src/workloads/echo.js';

export function docs(yaml: string, file = 'ingress.yaml'): ManifestDocument[] {
  return parseManifestText(yaml, file);
}

export function compile(yaml: string, opts: CompileOptions = {}): IngressConfig {
  return compileIngress(docs(yaml), opts).config;
}

export const INGRESS_CLASS = `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
`;

/** A Service without selector and its Endpoints at 127.0.0.1:port (port 0: none). */
export function service(
  name: string,
  port: number,
  backendPorts: number[],
  namespace = 'default',
): string {
  const subsets = backendPorts
    .map((p) => `- addresses: [{ip: 127.0.0.1}]\n  ports: [{port: ${p}}]`)
    .join('\n');
  return `
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  ports: [{port: ${port}, targetPort: ${port}}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ${name}, namespace: ${namespace}}
${subsets ? `subsets:\n${subsets}` : 'subsets: []'}
`;
}

export interface Ingress {
  name: string;
  namespace?: string;
  annotations?: Record<string, string>;
  host?: string;
  paths: { path: string; pathType?: string; service: string; port: number }[];
  tls?: { hosts: string[]; secretName: string }[];
  ingressClassName?: string;
}

export function ingress(i: Ingress): string {
  const ann = Object.entries(i.annotations ?? {})
    .map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
    .join('\n');
  const paths = i.paths
    .map(
      (p) => `      - path: ${JSON.stringify(p.path)}
        pathType: ${p.pathType ?? 'ImplementationSpecific'}
        backend: {service: {name: ${p.service}, port: {number: ${p.port}}}}`,
    )
    .join('\n');
  const tls = i.tls
    ? `  tls:\n${i.tls.map((t) => `  - hosts: ${JSON.stringify(t.hosts)}\n    secretName: ${t.secretName}`).join('\n')}\n`
    : '';
  return `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${i.name}
  namespace: ${i.namespace ?? 'default'}
${ann ? `  annotations:\n${ann}\n` : ''}spec:
${i.ingressClassName ? `  ingressClassName: ${i.ingressClassName}\n` : ''}${tls}  rules:
  - ${i.host ? `host: ${JSON.stringify(i.host)}\n    ` : ''}http:
      paths:
${paths}
`;
}

export const join = (...parts: string[]): string => parts.map((p) => p.trim()).join('\n---\n');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Backend {
  port: number;
  close: () => void;
}

/** An echo workload (src/workloads/echo.ts) on a free loopback port. */
export async function startBackend(pod: string): Promise<Backend> {
  const port = await freePort();
  const echo = startEcho({ pod, namespace: 'default', node: 'test', podIP: '127.0.0.1' }, [
    { port, protocol: 'TCP' },
  ]);
  await echo.ready;
  return { port, close: echo.close };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  echo: EchoReply | null;
}

export function get(
  port: number,
  path: string,
  opts: { host?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          let echo: EchoReply | null = null;
          if ((res.headers['content-type'] ?? '').includes('json'))
            echo = JSON.parse(body) as EchoReply;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, echo });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
