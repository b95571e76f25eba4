/**
 * `kubewire ingress-conf` and `kubewire ingress`: the ingress controller's routing table,
 * and the controller itself as a standalone proxy (no lab needed).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { LabLayout, labNameFromEnv } from '../../agent/lab-layout.js';
import {
  compileIngressFromPaths,
  formatRoutes,
  IngressController,
  routesJson,
} from '../../ingress/index.js';
import { createLogger } from '../../util/log.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** host:port → parts (host defaults to 127.0.0.1). */
export function parseListen(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const host = i >= 0 ? text.slice(0, i) || '127.0.0.1' : '127.0.0.1';
  const port = Number(i >= 0 ? text.slice(i + 1) : text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid address ${text}: expected HOST:PORT`);
  return { host, port };
}

interface ClassFlags {
  ingressClass: string;
  controllerClass: string;
  watchIngressWithoutClass?: boolean;
}

function classOptions(o: ClassFlags): {
  ingressClass: string;
  controllerClass: string;
  watchWithoutClass: boolean;
} {
  return {
    ingressClass: o.ingressClass,
    controllerClass: o.controllerClass,
    watchWithoutClass: o.watchIngressWithoutClass === true,
  };
}

function defaultManifests(program: Command): string[] {
  const lab = new LabLayout(program.opts<{ lab?: string }>().lab ?? labNameFromEnv());
  if (existsSync(lab.manifestsDir)) return [lab.manifestsDir];
  return [join(repoRoot, 'nodes'), join(repoRoot, 'compose', 'manifests')].filter((p) =>
    existsSync(p),
  );
}

export function registerIngressCommands(program: Command): void {
  program
    .command('ingress-conf')
    .description('print the ingress routing table: host → ordered locations → backend, rewrite')
    .option(
      '--manifests <path>',
      "manifest file or directory (repeatable; default: the lab's manifests)",
      collect,
      [],
    )
    .option('-o, --output <format>', 'json')
    .option('--ingress-class <name>', 'value of kubernetes.io/ingress.class served', 'nginx')
    .option(
      '--controller-class <name>',
      'IngressClass spec.controller served',
      'k8s.io/ingress-nginx',
    )
    .option('--watch-ingress-without-class', 'also serve Ingresses without any class')
    .action((opts: ClassFlags & { manifests: string[]; output?: string }) => {
      const paths = opts.manifests.length > 0 ? opts.manifests : defaultManifests(program);
      if (paths.length === 0) throw new Error('no manifests: give --manifests DIR');
      const { config } = compileIngressFromPaths(paths, classOptions(opts));
      process.stdout.write(
        opts.output === 'json'
          ? JSON.stringify(routesJson(config), null, 2) + '\n'
          : formatRoutes(config),
      );
    });

  program
    .command('ingress')
    .description('run the ingress controller as a standalone proxy on this machine')
    .requiredOption('--manifests <path>', 'manifest file or directory (repeatable)', collect, [])
    .option('--listen <host:port>', 'HTTP address', '127.0.0.1:8080')
    .option('--tls-listen <host:port>', 'HTTPS address')
    .option('--ingress-class <name>', 'value of kubernetes.io/ingress.class served', 'nginx')
    .option(
      '--controller-class <name>',
      'IngressClass spec.controller served',
      'k8s.io/ingress-nginx',
    )
    .option('--watch-ingress-without-class', 'also serve Ingresses without any class')
    .action(
      async (opts: ClassFlags & { manifests: string[]; listen: string; tlsListen?: string }) => {
        const out = createLogger('ingress', 1);
        const accessLog = createLogger('ingress', 1, { buffered: true });
        const log = createLogger('ingress');
        const controller = new IngressController({
          paths: opts.manifests,
          proxy: { accessLog, log },
          log,
          ...classOptions(opts),
        });
        const l = parseListen(opts.listen);
        const http = await controller.proxy.listenHttp(l.host, l.port);
        let https: { address: string; port: number } | null = null;
        if (opts.tlsListen) {
          const t = parseListen(opts.tlsListen);
          https = await controller.proxy.listenHttps(t.host, t.port);
        }
        controller.watch();
        out.info(
          {
            http: `${http.address}:${http.port}`,
            ...(https ? { https: `${https.address}:${https.port}` } : {}),
            ingresses: controller.config.accepted,
          },
          'listening',
        );
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            void controller.stop().then(resolve);
            setTimeout(resolve, 5000).unref();
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      },
    );
}
