/**
 * Node's own HTTP/1 parser (llhttp, the binding behind node:http), driven directly by the
 * ingress's server (server.ts) and upstream connections (upstream.ts): the same parsing and
 * the same strictness as node:http (request smuggling patterns, header size limit), without
 * IncomingMessage, ServerResponse or ClientRequest objects per message.
 *
 * It is `HTTPParser` of `node:_http_common` (a documentation-only deprecation since Node
 * 24, DEP0199), or of the `http_parser` binding where that module is gone.
 */
import { createRequire } from 'node:module';

/** The parts of Node's HTTPParser (src/node_http_parser.cc) used here. */
export interface HTTPParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or an Error with `code` (HPE_*) and `bytesParsed`. */
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  close(): void;
  [key: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  bytesParsed?: number;
}

interface HTTPParserClass {
  new (): HTTPParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

function load(): { HTTPParser: HTTPParserClass; methods: string[] } {
  const require = createRequire(import.meta.url);
  try {
    const m = require('node:_http_common') as { HTTPParser?: HTTPParserClass; methods?: string[] };
    if (m.HTTPParser && m.methods) return { HTTPParser: m.HTTPParser, methods: m.methods };
  } catch {
    // removed in this Node.js version: the binding itself
  }
  return (
    process as unknown as {
      binding(name: string): { HTTPParser: HTTPParserClass; methods: string[] };
    }
  ).binding('http_parser');
}

const loaded = load();
export const Parser = loaded.HTTPParser;
/** Method names by llhttp's method number. */
export const METHODS: readonly string[] = loaded.methods;

export const kOnMessageBegin = Parser.kOnMessageBegin | 0;
export const kOnHeaders = Parser.kOnHeaders | 0;
export const kOnHeadersComplete = Parser.kOnHeadersComplete | 0;
export const kOnBody = Parser.kOnBody | 0;
export const kOnMessageComplete = Parser.kOnMessageComplete | 0;
export const kOnExecute = Parser.kOnExecute | 0;

/** The async resource the parser's callbacks run in (one for all, as nothing tracks it). */
export const PARSER_RESOURCE = { type: 'kubewire-ingress' };

export function noop(): void {}

/** The native stream handle of a net.Socket, as node:http's server uses it. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

interface ConsumingParser extends HTTPParser {
  consume(handle: StreamHandle): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
}

/**
 * Lets the parser read the socket itself, in C++ (as node:http's server does): no 'data'
 * event, Buffer or stream bookkeeping per read. `onExecute` gets what `execute` would have
 * returned. Plain TCP sockets only; false (nothing done) when the socket cannot be consumed.
 */
export function consume(
  parser: HTTPParser,
  socket: object,
  onExecute: (ret: number | ParseError) => void,
): boolean {
  const handle = (socket as { _handle?: StreamHandle | null })._handle;
  const p = parser as ConsumingParser;
  if (!handle || handle.isStreamBase !== true || handle._consumed || !p.consume) return false;
  handle._consumed = true;
  p[kOnExecute] = onExecute;
  p.consume(handle);
  return true;
}

/** The bytes of the read being parsed (a consuming parser's, for an upgrade). */
export function currentBuffer(parser: HTTPParser): Buffer {
  return (parser as ConsumingParser).getCurrentBuffer();
}

/** Gives the socket back to its JS stream ('data' events again). */
export function unconsume(parser: HTTPParser, socket: object): void {
  (parser as ConsumingParser).unconsume();
  const handle = (socket as { _handle?: StreamHandle | null })._handle;
  if (handle) handle._consumed = false;
}

/** Stops or restarts reading a consumed socket (its JS stream does not read it). */
export function setReading(socket: object, on: boolean): void {
  const handle = (socket as { _handle?: StreamHandle | null })._handle;
  if (!handle || handle.reading === on) return;
  handle.reading = on;
  if (on) handle.readStart();
  else handle.readStop();
}

/**
 * Frees a parser once its socket is closed: detached from the stream first, as node:http
 * does, so the closed handle never calls back into a freed parser.
 */
export function closeParser(parser: HTTPParser, consumed: boolean): void {
  if (consumed) (parser as ConsumingParser).unconsume();
  parser.close();
}
