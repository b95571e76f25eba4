/** `fallthrough [ZONES...]` (CoreDNS plugin/pkg/fall): pass NXDOMAIN on to the next plugin. */
import { parseKey, type Directive } from '../corefile.js';
import { argError, type SetupContext } from '../plugin.js';
import { isSubdomain } from '../wire.js';

export class Fallthrough {
  /** null: no fallthrough; []: every zone; else these zones. */
  constructor(readonly zones: string[] | null) {}
  through(lname: string): boolean {
    if (this.zones === null) return false;
    if (this.zones.length === 0) return true;
    return this.zones.some((z) => isSubdomain(lname, z));
  }
}

export function parseFallthrough(ctx: SetupContext, d: Directive, first = 0): Fallthrough {
  const zones: string[] = [];
  for (let i = first; i < d.args.length; i++) {
    try {
      for (const k of parseKey(ctx.file, d.argLines[i] ?? d.line, d.args[i]!)) zones.push(k.zone);
    } catch {
      argError(ctx, d, `fallthrough: invalid zone '${d.args[i]}'`, i);
    }
  }
  return new Fallthrough(zones);
}
