#!/usr/bin/env node
/**
 * The CoreDNS pods' program (the agent runs it inside the pod's netns):
 *
 *   node dist/src/dns/main.js --manifests DIR [--corefile FILE] [--listen HOST:PORT]
 *                             [--udp-io auto|batched|dgram] [--down-nodes FILE]
 *
 * Serves the Corefile's server blocks (from the coredns ConfigMap in DIR unless --corefile
 * is given; kubeadm's default otherwise) on their ports (:53 by default) plus health,
 * ready and metrics, and prints one JSON line with "msg":"listening" on stdout once every
 * listener is up. Logs are JSON lines on stdout. SIGTERM: lameduck, then exit 0.
 * `--udp-io`: UDP with recvmmsg/sendmmsg batches (the kubewire_udp addon) or node:dgram;
 * `auto` (default) batches when the addon loads. `--down-nodes`: the node agent's list of
 * nodes it counts as down (JSON `{"downNodes": [...]}`); their endpoints are not ready.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../util/log.js';
import { CorefileError } from './corefile.js';
import { parseListen, startStandalone } from './standalone.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      manifests: { type: 'string', multiple: true },
      corefile: { type: 'string' },
      listen: { type: 'string' },
      'udp-io': { type: 'string' },
      'down-nodes': { type: 'string' },
    },
    strict: true,
  });
  const logger = createLogger('dns', 1);
  if (!values.manifests || values.manifests.length === 0) {
    logger.fatal(
      'usage: main.js --manifests DIR [--corefile FILE] [--listen HOST:PORT] [--udp-io auto|batched|dgram] [--down-nodes FILE]',
    );
    process.exit(2);
  }
  const udpIo = values['udp-io'] ?? 'auto';
  if (udpIo !== 'auto' && udpIo !== 'batched' && udpIo !== 'dgram') {
    logger.fatal(`--udp-io: expected auto, batched or dgram, got '${udpIo}'`);
    process.exit(2);
  }
  const listen = values.listen ? parseListen(values.listen) : undefined;
  let dns;
  try {
    dns = await startStandalone({
      manifests: values.manifests,
      ...(values['down-nodes'] ? { downNodesFile: values['down-nodes'] } : {}),
      logger,
      ...(values.corefile ? { corefileFile: values.corefile } : {}),
      ...(listen ? { listen, httpHost: listen.host } : {}),
      udpIo,
      onFatal: () => process.exit(1),
    });
  } catch (e) {
    logger.fatal({ err: e instanceof CorefileError ? e.message : String(e) }, 'dns: cannot start');
    process.exit(1);
  }
  const addrs = dns.service.server!.addresses();
  logger.info({ dns: addrs.dns, http: addrs.http, corefile: dns.service.source }, 'listening');
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void dns.stop(true).then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

void main();
