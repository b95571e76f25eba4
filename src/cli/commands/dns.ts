/**
 * `kubewire dns --manifests DIR [--listen 127.0.0.1:5353] [--corefile FILE]`: the cluster
 * DNS alone, on loopback, answering from a directory of manifests (watched; changes apply
 * within a second). HTTP listeners written `:PORT` in the Corefile (health, ready,
 * prometheus) bind to the --listen host.
 */
import { Option, type Command } from 'commander';
import { CorefileError } from '../../dns/corefile.js';
import { parseListen, startStandalone } from '../../dns/standalone.js';
import { createLogger } from '../../util/log.js';

export function registerDnsCommand(program: Command): void {
  program
    .command('dns')
    .description('serve the cluster DNS (CoreDNS-compatible) from manifests, without a lab')
    .requiredOption('--manifests <dir...>', 'manifest files or directories (watched)')
    .option('--listen <host:port>', 'DNS address (UDP and TCP)', '127.0.0.1:5353')
    .option('--corefile <file>', "Corefile (default: the coredns ConfigMap, else kubeadm's)")
    .addOption(
      new Option('--udp-io <mode>', 'UDP I/O: recvmmsg/sendmmsg batches or node:dgram')
        .choices(['auto', 'batched', 'dgram'])
        .default('auto'),
    )
    .action(
      async (opts: {
        manifests: string[];
        listen: string;
        corefile?: string;
        udpIo: 'auto' | 'batched' | 'dgram';
      }) => {
        const logger = createLogger('dns');
        const listen = parseListen(opts.listen);
        let dns;
        try {
          dns = await startStandalone({
            manifests: opts.manifests,
            logger,
            listen,
            httpHost: listen.host,
            udpIo: opts.udpIo,
            ...(opts.corefile ? { corefileFile: opts.corefile } : {}),
            onFatal: () => process.exit(1),
          });
        } catch (e) {
          const msg = e instanceof CorefileError ? e.message : (e as Error).message;
          process.stderr.write(`kubewire dns: ${msg}\n`);
          process.exitCode = 1;
          return;
        }
        const addrs = dns.service.server!.addresses();
        logger.info(
          { dns: addrs.dns, http: addrs.http, corefile: dns.service.source },
          'listening',
        );
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            void dns.stop(true).then(resolve);
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      },
    );
}
