/**
 * The plugin chain, as CoreDNS builds it: every directive of a server block becomes one
 * plugin instance through its own `setup` (which owns the directive's syntax and error
 * messages); instances are chained in the fixed order of `PLUGIN_ORDER`
 * (plugins/index.ts), whatever the Corefile's order. A plugin's `serve` answers, or calls
 * `next` to pass the request on.
 *
 * A serve step returns a DnsMessage (the response, written) or a bare rcode number (not
 * written: the server then writes a header-only reply with that rcode, as CoreDNS does for
 * SERVFAIL, REFUSED, FORMERR and NOTIMP returned by plugins). It may return a Promise only
 * when it really waits (forward, ExternalName upstream look-ups), so the common path stays
 * synchronous.
 */
import type { Logger } from '../util/log.js';
import type { Directive, ServerBlock } from './corefile.js';
import { CorefileError } from './corefile.js';
import type { DnsClusterView } from './kubernetes/view.js';
import type { Metrics } from './metrics.js';
import type { DnsMessage, Query } from './wire.js';

export type Reply = DnsMessage | number;
export type MaybePromise<T> = T | Promise<T>;
export type Handler = (req: DnsRequest) => MaybePromise<Reply>;

export interface DnsRequest {
  q: Query;
  proto: 'udp' | 'tcp';
  family: 4 | 6;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** The server block's zone that matched (canonical; '' is the root). */
  zone: string;
  /** `dns://:53` — the metrics `server` label. */
  server: string;
  /** performance.now() when the request arrived. */
  start: number;
  /** The server that received the request (upstream look-ups through it). */
  srv: ServerHooks;
  /** Nesting of internal look-ups (0 for client requests). */
  depth: number;
  /** Called once the response is encoded (log, prometheus); null until a plugin adds one. */
  after: AfterWrite[] | null;
}

export type AfterWrite = (req: DnsRequest, m: DnsMessage, size: number) => void;

/** What a plugin may ask of the server while serving. */
export interface ServerHooks {
  /** Resolves a name through this server (CoreDNS's upstream.Lookup). */
  lookup(req: DnsRequest, name: string, type: number): Promise<DnsMessage | null>;
}

/** Adds an after-write callback to a request. */
export function afterWrite(req: DnsRequest, fn: AfterWrite): void {
  if (req.after) req.after.push(fn);
  else req.after = [fn];
}

/** A plugin failure: the errors plugin logs it; the client gets `rcode`. */
export class PluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly rcode: number,
    message: string,
  ) {
    super(message);
    this.name = 'PluginError';
  }
}

/** What a plugin may use at setup and while running. */
export interface SetupContext {
  file: string;
  block: ServerBlock;
  /** Zones of the block (canonical). */
  zones: string[];
  /** `dns://:53` for the block's first key. */
  server: string;
  logger: Logger;
  metrics: Metrics;
  /** Host to bind HTTP listeners given as `:port` (standalone: the --listen host). */
  httpHost: string;
  /** Resolv.conf path for `forward . /etc/resolv.conf` (tests point it elsewhere). */
  resolvConf: string;
  /** Local addresses of this DNS server (pod IP in a pod; NS records). */
  localIPs: string[];
  /** Throws a CorefileError for `line` of the Corefile. */
  error(line: number, detail: string): never;
}

export interface PluginInstance {
  readonly name: string;
  /** Absent: the plugin takes no part in serving (health, ready, reload). */
  serve?(req: DnsRequest, next: Handler): MaybePromise<Reply>;
  /** Starts listeners and timers. */
  start?(rt: Runtime): Promise<void> | void;
  /** Stops them. */
  stop?(): Promise<void> | void;
  /** New cluster state (kubernetes, whoever else cares). */
  onState?(view: DnsClusterView): void;
  /** For the ready plugin: false while not ready (kubernetes before the first state). */
  ready?(): boolean;
}

/** Services of the running server that plugins may use after start. */
export interface Runtime {
  logger: Logger;
  metrics: Metrics;
  /** All plugin instances of all blocks (ready plugin). */
  instances(): PluginInstance[];
  /** Addresses the DNS listeners are bound to (loop probe). */
  dnsAddresses(): { address: string; port: number; zone: string }[];
  /** Sends a query through the server as if from a client (loop). */
  query(zone: string, name: string, type: number): Promise<DnsMessage | null>;
  /** Asks the owner to re-read the Corefile (reload plugin). */
  requestReload(): void;
  /** A fatal condition (loop detected): CoreDNS exits. */
  fatal(message: string): void;
  /** Registers an HTTP handler on an address (health, ready, prometheus). */
  http(address: string, path: string, handler: HttpHandler): Promise<{ port: number }>;
  /** The Corefile text currently running (reload). */
  corefileText: string;
  /** Reads the Corefile as it is now, or null when unchanged/unavailable (reload). */
  readCorefile(): Promise<string | null>;
}

export type HttpHandler = (
  method: string,
  url: string,
) => MaybePromise<{ status: number; body: string; type?: string }>;

export interface PluginSpec {
  name: string;
  setup(d: Directive, ctx: SetupContext): PluginInstance;
  /** Only once per server block (CoreDNS says so for most plugins). */
  once?: boolean;
  /** Several directives of this plugin in one block make one instance (rewrite, log). */
  merge?(instances: PluginInstance[]): PluginInstance;
}

/** Applies `fn` to a reply, synchronously when it is not a Promise. */
export function then<T>(r: MaybePromise<Reply>, fn: (r: Reply) => T): MaybePromise<T> {
  return r instanceof Promise ? r.then(fn) : fn(r);
}

// ---------------------------------------------------------------------------------------
// Argument helpers shared by setups

export function argError(ctx: SetupContext, d: Directive, detail: string, index?: number): never {
  const line = index !== undefined ? (d.argLines[index] ?? d.line) : d.line;
  return ctx.error(line, detail);
}

export function noArgs(ctx: SetupContext, d: Directive): void {
  if (d.args.length > 0) argError(ctx, d, `${d.name}: unexpected argument '${d.args[0]}'`, 0);
}

export function noBlock(ctx: SetupContext, d: Directive): void {
  if (d.block && d.block.length > 0) {
    ctx.error(d.block[0]!.line, `${d.name}: unexpected block property '${d.block[0]!.name}'`);
  }
}

export function intArg(
  ctx: SetupContext,
  d: Directive,
  index: number,
  min: number,
  max: number,
  what: string,
): number {
  const text = d.args[index];
  if (text === undefined) return argError(ctx, d, `${what}: missing value`);
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    return argError(ctx, d, `${what}: '${text}' is not an integer in [${min}, ${max}]`, index);
  }
  return Number(text);
}

export { CorefileError };
