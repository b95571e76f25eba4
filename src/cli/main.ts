#!/usr/bin/env node
import { spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  statSync,
  watchFile,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ManifestErrors, ManifestError } from '../cluster/index.js';
import { LabLayout, labNameFromEnv } from '../agent/lab-layout.js';
import { callAgent, streamFromAgent } from '../agent/control.js';
import { labDown, labUp, LabError, readLabRecord } from '../lab/netns-lab.js';
import { applyManifestFile } from '../lab/apply.js';
import { registerIngressCommands } from './commands/ingress.js';
import { registerDnsCommand } from './commands/dns.js';
import { registerServiceCommands } from './commands/services.js';
import { registerTraceCommands } from './commands/trace.js';
import { CliError, LabClient } from './lab-client.js';
import { formatAge, formatTable } from './table.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** `kubewire up` with no paths starts the reference lab shipped in the repository. */
const referenceLabPaths = [join(repoRoot, 'nodes'), join(repoRoot, 'compose', 'manifests')];

const program = new Command();
program
  .name('kubewire')
  .description(
    'Kubernetes cluster networking without Kubernetes: Calico IPIP, kube-proxy, MetalLB, CoreDNS, ingress-nginx',
  )
  .addOption(
    new Option('--lab <name>', 'lab to act on').env('KUBEWIRE_LAB').default(labNameFromEnv()),
  )
  .showHelpAfterError();

const labName = (): string => program.opts<{ lab: string }>().lab;

program
  .command('up')
  .description('start a lab from manifests (files or directories; default: the reference lab)')
  .argument('[paths...]', 'manifest files or directories')
  .option('--timeout <seconds>', 'how long to wait for every pod to be ready', '120')
  .action(async (paths: string[], opts: { timeout: string }) => {
    const layout = new LabLayout(labName());
    const inputs = paths.length > 0 ? paths : referenceLabPaths.filter((p) => existsSync(p));
    if (inputs.length === 0) throw new CliError('no manifests given and no reference lab found');
    const started = Date.now();
    await labUp(layout, inputs, {
      timeoutMs: Number(opts.timeout) * 1000,
      progress: (m) => process.stderr.write(`${m}\n`),
    });
    process.stderr.write(
      `lab '${layout.lab}' is ready (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  });

program
  .command('down')
  .description('stop the lab and remove every namespace, interface, process and file it made')
  .action(async () => {
    const layout = new LabLayout(labName());
    if (readLabRecord(layout)?.mode === 'compose')
      throw new CliError(
        "this lab is run by docker compose: stop it with 'docker compose down -v'",
      );
    const removed = await labDown(layout, (m) => process.stderr.write(`${m}\n`));
    if (!removed) process.stderr.write(`no lab '${layout.lab}' to remove\n`);
  });

const get = program.command('get').description('list pods, nodes or services');
get
  .command('pods')
  .alias('pod')
  .alias('po')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .option('-A, --all-namespaces', 'all namespaces')
  .option('-o, --output <format>', 'wide | json')
  .action(async (opts: { namespace: string; allNamespaces?: boolean; output?: string }) => {
    const lab = new LabClient(labName());
    const state = lab.state();
    const statuses = await lab.podStatuses();
    const pods = state.pods.filter((p) => opts.allNamespaces || p.namespace === opts.namespace);
    if (opts.output === 'json') {
      const out = pods.map((p) => ({
        ...p,
        status: statuses.get(`${p.namespace}/${p.name}`) ?? null,
      }));
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return;
    }
    if (pods.length === 0) {
      process.stderr.write(
        opts.allNamespaces
          ? 'No resources found\n'
          : `No resources found in ${opts.namespace} namespace.\n`,
      );
      return;
    }
    const wide = opts.output === 'wide';
    const headers = [
      ...(opts.allNamespaces ? ['NAMESPACE'] : []),
      'NAME',
      'READY',
      'STATUS',
      'RESTARTS',
      'AGE',
      ...(wide ? ['IP', 'NODE'] : []),
    ];
    const rows = pods.map((p) => {
      const st = statuses.get(`${p.namespace}/${p.name}`);
      const total = p.containers.length;
      const ready = st ? st.containers.filter((c) => c.ready).length : 0;
      const waiting = st?.containers.find((c) => c.state === 'Waiting' && c.reason);
      const status =
        p.phase === 'Pending'
          ? 'Pending'
          : !st
            ? 'Unknown'
            : (waiting?.reason ??
              (st.phase === 'Succeeded'
                ? 'Completed'
                : st.phase === 'Failed'
                  ? 'Error'
                  : 'Running'));
      const restarts = st ? st.containers.reduce((s, c) => s + c.restartCount, 0) : 0;
      return [
        ...(opts.allNamespaces ? [p.namespace] : []),
        p.name,
        `${ready}/${total}`,
        status,
        String(restarts),
        formatAge(st?.startedAt),
        ...(wide ? [p.ip ?? '<none>', p.nodeName ?? '<none>'] : []),
      ];
    });
    process.stdout.write(formatTable(headers, rows));
  });

get
  .command('nodes')
  .alias('node')
  .alias('no')
  .option('-o, --output <format>', 'wide')
  .action(async (opts: { output?: string }) => {
    const lab = new LabClient(labName());
    const state = lab.state();
    const wide = opts.output === 'wide';
    const rows = await Promise.all(
      state.nodes.map(async (n) => {
        const st = await lab.call<{ ready: boolean }>(n.name, 'status').catch(() => null);
        const roles = Object.keys(n.labels)
          .filter((l) => l.startsWith('node-role.kubernetes.io/'))
          .map((l) => l.slice('node-role.kubernetes.io/'.length));
        const started = lab.record.createdAt;
        return [
          n.name,
          st?.ready ? 'Ready' : 'NotReady',
          roles.join(',') || '<none>',
          formatAge(started),
          ...(wide ? [n.internalIP, n.blocks.join(','), n.tunnelAddress ?? '<none>'] : []),
        ];
      }),
    );
    process.stdout.write(
      formatTable(
        [
          'NAME',
          'STATUS',
          'ROLES',
          'AGE',
          ...(wide ? ['INTERNAL-IP', 'POD-BLOCKS', 'TUNNEL-IP'] : []),
        ],
        rows,
      ),
    );
  });

program
  .command('exec')
  .description("run a command in a pod's network namespace (or on a node with --host)")
  .argument('[pod]', 'pod name')
  .argument('[command...]', 'command and arguments, after --')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .option(
    '--host <name>',
    "run on a node's own network namespace, or on the lab's client or router host",
  )
  .action(
    async (
      pod: string | undefined,
      command: string[],
      opts: { namespace: string; host?: string },
    ) => {
      const lab = new LabClient(labName());
      // Compose mode: this container is one node; its pods' namespaces are here, other nodes are other containers.
      const local = lab.record.mode === 'compose' ? (process.env.KUBEWIRE_NODE ?? '') : null;
      const elsewhere = (what: string, there: string) =>
        new CliError(`${what}: run it there, e.g. 'docker compose exec ${there}'`);
      let netns: string | null;
      let argv = command;
      if (opts.host) {
        if (local !== null && opts.host !== local)
          throw elsewhere(`${opts.host} is another container of the lab`, `${opts.host} CMD…`);
        netns = local !== null ? null : lab.hostNetns(opts.host);
        if (pod !== undefined) argv = [pod, ...command];
      } else {
        if (!pod) throw new CliError('exec needs a pod name (or --host NODE)');
        const p = lab.state().pods.find((x) => x.namespace === opts.namespace && x.name === pod);
        if (!p) throw new CliError(`pods "${pod}" not found in namespace ${opts.namespace}`);
        if (!p.nodeName || p.phase === 'Pending')
          throw new CliError(`pod ${pod} is Pending: it has no namespace yet`);
        if (local !== null && p.nodeName !== local)
          throw elsewhere(
            `pod ${pod} runs on node ${p.nodeName}`,
            `${p.nodeName} kubewire exec -n ${p.namespace} ${pod} -- CMD…`,
          );
        netns = p.hostNetwork
          ? local !== null
            ? null
            : lab.node(p.nodeName).netns
          : lab.layout.podNetns(p.namespace, p.name);
      }
      if (argv.length === 0) throw new CliError('exec needs a command after --');
      const child =
        netns === null
          ? spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' })
          : spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => {
        child.on('error', () => resolve(127));
        child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    },
  );

program
  .command('logs')
  .description("print a pod container's output")
  .argument('<pod>', 'pod name')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .option('-c, --container <name>', 'container (default: the first)')
  .option('-f, --follow', 'keep printing new output')
  .action(
    async (pod: string, opts: { namespace: string; container?: string; follow?: boolean }) => {
      const lab = new LabClient(labName());
      const p = lab.state().pods.find((x) => x.namespace === opts.namespace && x.name === pod);
      if (!p) throw new CliError(`pods "${pod}" not found in namespace ${opts.namespace}`);
      const container = opts.container ?? p.containers[0]?.name;
      if (!container || !p.containers.some((c) => c.name === container)) {
        throw new CliError(`container ${container} is not valid for pod ${pod}`);
      }
      if (!p.nodeName) throw new CliError(`pod ${pod} is Pending: no logs yet`);
      const file = lab.layout.containerLog(p.nodeName, p.namespace, p.name, container);
      if (!existsSync(file)) return;
      await pipeFile(file, 0);
      if (!opts.follow) return;
      let pos = statSync(file).size;
      await new Promise<void>(() => {
        watchFile(file, { interval: 250 }, (cur) => {
          if (cur.size > pos) {
            void pipeFile(file, pos);
            pos = cur.size;
          }
        });
      });
    },
  );

program
  .command('stats')
  .description("a node's interface counters and drops by reason")
  .requiredOption('--node <name>', 'node')
  .option('-o, --output <format>', 'json')
  .action(async (opts: { node: string; output?: string }) => {
    const lab = new LabClient(labName());
    const st = await lab.call<{
      drops: Record<string, number>;
      interfaces: {
        name: string;
        kind: string;
        rxPackets: number;
        rxBytes: number;
        txPackets: number;
        txBytes: number;
        txDropped: number;
      }[];
    }>(opts.node, 'stats');
    if (opts.output === 'json') {
      process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      return;
    }
    process.stdout.write(
      formatTable(
        ['INTERFACE', 'KIND', 'RX-PACKETS', 'RX-BYTES', 'TX-PACKETS', 'TX-BYTES', 'TX-DROPPED'],
        st.interfaces.map((i) => [
          i.name,
          i.kind,
          ...[i.rxPackets, i.rxBytes, i.txPackets, i.txBytes, i.txDropped].map(String),
        ]),
      ),
    );
    process.stdout.write('\n');
    const drops = Object.entries(st.drops);
    process.stdout.write(
      drops.length
        ? formatTable(
            ['DROP-REASON', 'PACKETS'],
            drops.map(([k, v]) => [k, String(v)]),
          )
        : 'no drops\n',
    );
  });

const ipCmd = program
  .command('ip')
  .description("a node's routing and neighbour tables, as `ip` prints them");
ipCmd
  .command('route')
  .requiredOption('--node <name>', 'node')
  .action(async (opts: { node: string }) => {
    const lab = new LabClient(labName());
    const lines = await lab.call<string[]>(opts.node, 'routes');
    process.stdout.write(lines.map((l) => l + '\n').join(''));
  });
ipCmd
  .command('neigh')
  .requiredOption('--node <name>', 'node')
  .action(async (opts: { node: string }) => {
    const lab = new LabClient(labName());
    const lines = await lab.call<string[]>(opts.node, 'neighbours');
    process.stdout.write(lines.map((l) => l + '\n').join(''));
  });

program
  .command('pcap')
  .description(
    "stream a node interface's frames as pcap (pipe to tcpdump -r - or wireshark -k -i -)",
  )
  .requiredOption('--node <name>', 'node')
  .argument('<iface>', 'interface: eth0, tunl0, kubewire0 or a caliXXXXXXXXXXX pod link')
  .action(async (iface: string, opts: { node: string }) => {
    const lab = new LabClient(labName());
    lab.node(opts.node);
    if (process.stdout.isTTY)
      throw new CliError('pcap writes binary: redirect it to a file or pipe it to tcpdump -r -');
    process.stdout.on('error', () => process.exit(0));
    await streamFromAgent(
      lab.layout.agentSocket(opts.node),
      'pcap',
      { iface },
      process.stdout,
    ).catch((err: Error) => {
      throw new CliError(`node ${opts.node}: ${err.message}`);
    });
  });

for (const mode of ['apply', 'delete'] as const) {
  program
    .command(mode)
    .description(
      mode === 'apply'
        ? "create or replace the file's objects in the running lab; every agent converges"
        : "remove the file's objects from the running lab; every agent converges",
    )
    .requiredOption('-f, --filename <file>', "manifest file ('-': standard input)")
    .option('--wait', 'return when every node has converged')
    .option('--timeout <seconds>', 'how long --wait waits', '60')
    .action(async (opts: { filename: string; wait?: boolean; timeout: string }) => {
      const lab = new LabClient(labName());
      const generations = await lab.generations();
      const file = opts.filename === '-' ? stdinToFile() : opts.filename;
      const result = applyManifestFile(lab.layout, file, mode);
      for (const line of result.lines) process.stdout.write(line + '\n');
      if (result.changed && opts.wait)
        await lab.waitConverged(generations, Number(opts.timeout) * 1000);
      if (result.lines.some((l) => l.startsWith('Error'))) process.exitCode = 1;
    });
}

/** `apply -f -`: standard input, kept as a .yaml file (the agents read manifests by extension). */
function stdinToFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kubewire-apply-')), 'stdin.yaml');
  writeFileSync(file, readFileSync(0));
  return file;
}

function pipeFile(file: string, start: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createReadStream(file, { start });
    s.on('error', reject);
    s.on('end', resolve);
    s.pipe(process.stdout, { end: false });
  });
}

function explain(err: unknown): string {
  if (err instanceof ManifestErrors) return err.message;
  if (err instanceof ManifestError || err instanceof CliError || err instanceof LabError)
    return err.message;
  return (err as Error).message ?? String(err);
}

/**
 * Commands that take another tool's command line (iptables, conntrack): their
 * options are passed through as typed, after --node.
 */
function passThrough(
  name: string,
  description: string,
  run: (lab: LabClient, node: string, argv: string[]) => Promise<void>,
) {
  program
    .command(name)
    .description(description)
    .requiredOption('--node <name>', 'node')
    .argument('[args...]', `${name} arguments, as for the real ${name}`)
    .allowUnknownOption()
    .helpOption('--kubewire-help', 'this help')
    .action(async (args: string[], opts: { node: string }, cmd: Command) => {
      const lab = new LabClient(labName());
      lab.node(opts.node);
      await run(lab, opts.node, [...args, ...cmd.args.filter((a) => !args.includes(a))]);
    });
}

passThrough(
  'iptables',
  "run iptables against a node's netfilter tables (e.g. -t nat -L -n -v)",
  async (lab, node, argv) => {
    try {
      process.stdout.write(await callAgentRaw<string>(lab, node, 'iptables', { argv }));
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exitCode = /unknown option|Bad argument|requires an argument|Try `iptables -h'/.test(
        (err as Error).message,
      )
        ? 2
        : 1;
    }
  },
);

passThrough(
  'conntrack',
  "conntrack-tools against a node's connection table (-L, -D, -F, -C, -S, -E)",
  async (lab, node, argv) => {
    if (argv.includes('-E') || argv.includes('--event')) {
      await streamFromAgent(lab.layout.agentSocket(node), 'conntrack', { argv }, process.stdout);
      return;
    }
    const out = await callAgentRaw<string>(lab, node, 'conntrack', { argv });
    // conntrack prints the entries on stdout and its summary on stderr.
    const lines = out.split('\n');
    const summary =
      lines.length > 1 && /conntrack-tools\): /.test(lines[lines.length - 2]!)
        ? lines.splice(-2, 1)[0]
        : null;
    process.stdout.write(lines.join('\n'));
    if (summary) process.stderr.write(summary + '\n');
  },
);

program
  .command('iptables-save')
  .description("a node's netfilter tables, as iptables-save prints them")
  .requiredOption('--node <name>', 'node')
  .option('-t, --table <table>', 'only this table')
  .option('-c, --counters', 'with packet and byte counters')
  .action(async (opts: { node: string; table?: string; counters?: boolean }) => {
    const lab = new LabClient(labName());
    process.stdout.write(
      await callAgentRaw<string>(lab, opts.node, 'iptables-save', {
        ...(opts.table ? { table: opts.table } : {}),
        counters: opts.counters === true,
      }),
    );
  });

program
  .command('dmesg')
  .description("a node's kernel log (netfilter LOG lines, conntrack messages)")
  .requiredOption('--node <name>', 'node')
  .option('-f, --follow', 'keep printing new lines')
  .action(async (opts: { node: string; follow?: boolean }) => {
    const lab = new LabClient(labName());
    if (opts.follow) {
      await streamFromAgent(
        lab.layout.agentSocket(opts.node),
        'dmesg',
        { follow: true },
        process.stdout,
      );
      return;
    }
    process.stdout.write(await callAgentRaw<string>(lab, opts.node, 'dmesg', {}));
  });

/** Calls the agent and passes its error message through unchanged (iptables' own words). */
async function callAgentRaw<T>(
  lab: LabClient,
  node: string,
  method: string,
  params: Record<string, unknown>,
): Promise<T> {
  return callAgent<T>(lab.layout.agentSocket(node), method, params);
}

registerIngressCommands(program);
registerDnsCommand(program);
registerServiceCommands(program, labName);
registerTraceCommands(program, labName);

// `kubewire … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`error: ${explain(err)}\n`);
  if (process.env.KUBEWIRE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
});
