/**
 * The program of the ingress controller pods (ingress-nginx controller images):
 *
 *   node dist/src/ingress/main.js --manifests DIR [--http-port 80] [--https-port 443]
 *        [--listen-address 0.0.0.0] [--ingress-class nginx]
 *        [--controller-class k8s.io/ingress-nginx] [--watch-ingress-without-class]
 *        [--down-nodes FILE]
 *
 * Identity from the downward API: POD_NAME, POD_NAMESPACE. The controller's other flags
 * (--election-id, --publish-service, --configmap, …) are accepted and ignored, so a
 * DaemonSet's container args can be passed as they are. Prints a JSON line with
 * "msg":"listening" on stdout once both ports listen (readiness); the access log follows
 * on stdout, other logs go to stderr. In a lab, `--down-nodes` names the node agent's
 * down-nodes file: the pods of the nodes it lists are no endpoints (src/util/down-nodes.ts).
 */
import { parseArgs } from 'node:util';
import { ManifestErrors } from '../cluster/index.js';
import { createLogger } from '../util/log.js';
import { IngressController } from './controller.js';

function flag(
  values: Record<string, string | boolean | (string | boolean)[] | undefined>,
  name: string,
): string | undefined {
  const v = values[name];
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  return typeof last === 'string' ? last : undefined;
}

function port(text: string | undefined, dflt: number, name: string): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid --${name} ${text}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    strict: false,
    allowPositionals: true,
    options: {
      manifests: { type: 'string', multiple: true },
      'http-port': { type: 'string' },
      'https-port': { type: 'string' },
      'listen-address': { type: 'string' },
      'ingress-class': { type: 'string' },
      'controller-class': { type: 'string' },
      'watch-ingress-without-class': { type: 'string' },
      'down-nodes': { type: 'string' },
    },
  });
  const manifests = ([] as unknown[])
    .concat(values.manifests ?? [])
    .filter((m): m is string => typeof m === 'string');
  if (manifests.length === 0) throw new Error('--manifests DIR is required');
  const pod = process.env.POD_NAME ?? '';
  const namespace = process.env.POD_NAMESPACE ?? '';
  const out = createLogger('ingress-nginx', 1).child({ pod, namespace });
  const accessLog = createLogger('ingress-nginx', 1, { buffered: true }).child({ pod, namespace });
  const log = createLogger('ingress-nginx').child({ pod, namespace });
  if (!pod || !namespace) log.warn('POD_NAME and POD_NAMESPACE should be set (downward API)');
  const wwc = values['watch-ingress-without-class'];
  const controller = new IngressController({
    paths: manifests,
    proxy: { accessLog, log },
    log,
    ingressClass: flag(values, 'ingress-class') ?? 'nginx',
    controllerClass: flag(values, 'controller-class') ?? 'k8s.io/ingress-nginx',
    watchWithoutClass: wwc === true || wwc === 'true',
    ...(flag(values, 'down-nodes') !== undefined
      ? { downNodesFile: flag(values, 'down-nodes') }
      : {}),
  });
  const address = flag(values, 'listen-address') ?? '0.0.0.0';
  const http = await controller.proxy.listenHttp(
    address,
    port(flag(values, 'http-port'), 80, 'http-port'),
  );
  const https = await controller.proxy.listenHttps(
    address,
    port(flag(values, 'https-port'), 443, 'https-port'),
  );
  controller.watch();
  out.info(
    {
      http: `${http.address}:${http.port}`,
      https: `${https.address}:${https.port}`,
      ingresses: controller.config.accepted,
    },
    'listening',
  );
  const stop = (): void => {
    void controller.stop().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    const text = err instanceof ManifestErrors || err instanceof Error ? err.message : String(err);
    process.stderr.write(`ingress: ${text}\n`);
    process.exit(1);
  });
}
