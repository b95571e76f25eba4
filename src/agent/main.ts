/**
 * The node agent process: `node dist/src/agent/main.js --lab NAME --node NAME
 * [--ready-file PATH]`, started by `kubewire up` inside the node's network namespace
 * (netns mode) or as a container's entrypoint (compose mode). `--ready-file`: written
 * (atomically) once the agent has converged the first time, for supervisors that test
 * a file (the compose healthcheck, images/node-health.sh).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../util/log.js';
import { LabLayout, labNameFromEnv } from './lab-layout.js';
import { NodeAgent } from './node-agent.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lab: { type: 'string' },
      node: { type: 'string' },
      'ready-file': { type: 'string' },
    },
  });
  const nodeName = values.node ?? process.env.KUBEWIRE_NODE;
  if (!nodeName) throw new Error('--node NAME is required');
  const layout = new LabLayout(values.lab ?? labNameFromEnv());
  const logger = createLogger('agent').child({ node: nodeName });
  const agent = new NodeAgent(layout, nodeName, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    stop('uncaughtException');
  });
  await agent.start();
  logger.info('agent started');
  const readyFile = values['ready-file'];
  if (readyFile) {
    const st = agent.status();
    const ready = st.pods.filter((p) => p.ready).length;
    const tmp = `${readyFile}.${process.pid}.tmp`;
    writeFileSync(
      tmp,
      `${new Date().toISOString()} ${nodeName}: ready, generation ${st.generation}, ${ready}/${st.pods.length} pods ready\n`,
    );
    renameSync(tmp, readyFile);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`kubewire agent: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
