import { formatConntrackStats, type ConntrackFilter } from '../conntrack/index.js';
import type { NodeKernel } from './node-kernel.js';

const VERSION = 'conntrack v1.4.7 (conntrack-tools)';

type Command = 'L' | 'D' | 'F' | 'C' | 'S' | 'E';

export class ConntrackUsageError extends Error {
  override name = 'ConntrackUsageError';
}

/**
 * conntrack-tools' command line against the node's table: -L/--dump, -D/--delete,
 * -F/--flush, -C/--count, -S/--stats, -E/--event (returns null: the caller
 * streams events), with the usual filters. Returns what conntrack prints: the
 * entries on stdout and its summary line (on stderr for the real tool) last.
 */
export function conntrackCommand(kernel: NodeKernel, argv: string[]): string | null {
  let command: Command | null = null;
  const filter: ConntrackFilter = {};
  const value = (i: number, opt: string): string => {
    const v = argv[i + 1];
    if (v === undefined || (v.startsWith('-') && v.length > 1)) {
      throw new ConntrackUsageError(`${VERSION}: option \`${opt}' requires an argument`);
    }
    return v;
  };
  const optional = (i: number): string | undefined => {
    const v = argv[i + 1];
    return v !== undefined && !v.startsWith('-') ? v : undefined;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const setCommand = (c: Command) => {
      if (command !== null) throw new ConntrackUsageError(`${VERSION}: Invalid parameters`);
      command = c;
    };
    switch (a) {
      case '-L':
      case '--dump':
        setCommand('L');
        if (argv[i + 1] === 'conntrack') i++;
        break;
      case '-D':
      case '--delete':
        setCommand('D');
        break;
      case '-F':
      case '--flush':
        setCommand('F');
        if (argv[i + 1] === 'conntrack') i++;
        break;
      case '-C':
      case '--count':
        setCommand('C');
        break;
      case '-S':
      case '--stats':
        setCommand('S');
        break;
      case '-E':
      case '--event':
        setCommand('E');
        break;
      case '-p':
      case '--proto':
        filter.proto = value(i++, a);
        break;
      case '-s':
      case '--src':
      case '--orig-src':
        filter.src = value(i++, a);
        break;
      case '-d':
      case '--dst':
      case '--orig-dst':
        filter.dst = value(i++, a);
        break;
      case '-r':
      case '--reply-src':
        filter.replySrc = value(i++, a);
        break;
      case '-q':
      case '--reply-dst':
        filter.replyDst = value(i++, a);
        break;
      case '--sport':
      case '--orig-port-src':
        filter.sport = Number(value(i++, a));
        break;
      case '--dport':
      case '--orig-port-dst':
        filter.dport = Number(value(i++, a));
        break;
      case '--reply-port-src':
        filter.replySport = Number(value(i++, a));
        break;
      case '--reply-port-dst':
        filter.replyDport = Number(value(i++, a));
        break;
      case '--state':
        filter.state = value(i++, a);
        break;
      case '-m':
      case '--mark': {
        const [m, mask] = value(i++, a).split('/');
        filter.mark = Number(m);
        if (mask !== undefined) filter.markMask = Number(mask);
        break;
      }
      case '-n':
      case '--src-nat': {
        const v = optional(i);
        filter.snat = v ?? true;
        if (v) i++;
        break;
      }
      case '-g':
      case '--dst-nat': {
        const v = optional(i);
        filter.dnat = v ?? true;
        if (v) i++;
        break;
      }
      case '-j':
      case '--any-nat': {
        const v = optional(i);
        filter.anyNat = v ?? true;
        if (v) i++;
        break;
      }
      case '-u':
      case '--status': {
        const flags = value(i++, a).split(',');
        for (const f of flags) {
          if (f === 'UNREPLIED') filter.unreplied = true;
          else if (f === 'ASSURED') filter.status = (filter.status ?? 0) | 4;
          else if (f === 'SEEN_REPLY') filter.status = (filter.status ?? 0) | 2;
          else throw new ConntrackUsageError(`${VERSION}: Bad parameter \`${f}'`);
        }
        break;
      }
      case '-o':
      case '--output':
        i++;
        break; // extended/id formats: the default format only
      default:
        throw new ConntrackUsageError(
          `${VERSION}: unknown option \`${a}'\nTry \`conntrack -h' or 'conntrack --help' for more information.`,
        );
    }
  }
  const ct = kernel.conntrack;
  const chosen = (command as Command | null) ?? 'L';
  switch (chosen) {
    case 'L': {
      const lines = kernel.conntrackList(filter);
      return (
        lines.map((l) => l + '\n').join('') +
        `${VERSION}: ${lines.length} flow entries have been shown.\n`
      );
    }
    case 'D': {
      const n = ct.delete(filter);
      return `${VERSION}: ${n} flow entries have been deleted.\n`;
    }
    case 'F': {
      ct.flush(filter);
      return `${VERSION}: connection tracking table has been emptied.\n`;
    }
    case 'C':
      return `${ct.count()}\n`;
    case 'S':
      return formatConntrackStats(ct.stats()) + '\n';
    case 'E':
      return null;
  }
}
