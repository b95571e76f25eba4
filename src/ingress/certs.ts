/**
 * Certificates: the self-signed default certificate (ingress-nginx's "Kubernetes Ingress
 * Controller Fake Certificate"), TLS Secrets (kubernetes.io/tls: tls.crt, tls.key), and
 * host-name checks as ingress-nginx does them (SAN, then the subject CN).
 *
 * node:crypto makes keys and signs, but has no X.509 writer; the few DER structures a
 * self-signed server certificate needs are encoded here (RFC 5280 §4.1).
 */
import {
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { createSecureContext } from 'node:tls';

// ---------------------------------------------------------------------------------------
// DER

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bool = (b: boolean): Buffer => tlv(0x01, Buffer.from([b ? 0xff : 0]));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);
const explicit = (n: number, c: Buffer): Buffer => tlv(0xa0 + n, c);

function oid(text: string): Buffer {
  const parts = text.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128))
      chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function integer(b: Buffer): Buffer {
  return tlv(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  const year = d.getUTCFullYear();
  // UTCTime up to 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
  return year < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

function name(attrs: [string, string][]): Buffer {
  return seq(...attrs.map(([type, value]) => set(seq(oid(type), utf8(value)))));
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  basicConstraints: '2.5.29.19',
  subjectAltName: '2.5.29.17',
};

// ---------------------------------------------------------------------------------------
// Self-signed certificates

export interface PemPair {
  cert: string;
  key: string;
}

export interface SelfSignedOptions {
  commonName: string;
  organization?: string;
  /** DNS names for subjectAltName (wildcards allowed). */
  dnsNames?: string[];
  /** 'rsa' (2048 bits, as ingress-nginx's fake certificate) or 'ec' (P-256, fast). */
  keyType?: 'rsa' | 'ec';
  /** Validity in days from now (default 365). */
  days?: number;
  /** Start of validity (default: now). */
  notBefore?: Date;
}

/** Makes a self-signed server certificate and its key, both PEM (PKCS#8 key). */
export function selfSignedCertificate(opts: SelfSignedOptions): PemPair {
  const keyType = opts.keyType ?? 'rsa';
  const { privateKey, publicKey } =
    keyType === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const sigAlg =
    keyType === 'rsa'
      ? seq(oid(OID.sha256WithRSA), Buffer.from([0x05, 0x00]))
      : seq(oid(OID.ecdsaWithSHA256));
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const subject = name([
    ...(opts.organization !== undefined
      ? ([[OID.organization, opts.organization]] as [string, string][])
      : []),
    [OID.commonName, opts.commonName],
  ]);
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + (opts.days ?? 365) * 86_400_000);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const extensions: Buffer[] = [
    // keyUsage: digitalSignature, keyEncipherment (critical)
    seq(oid(OID.keyUsage), bool(true), octets(tlv(0x03, Buffer.from([0x05, 0xa0])))),
    seq(oid(OID.extKeyUsage), octets(seq(oid(OID.serverAuth)))),
    seq(oid(OID.basicConstraints), bool(true), octets(seq())),
  ];
  if (opts.dnsNames && opts.dnsNames.length > 0) {
    const names = opts.dnsNames.map((n) => tlv(0x82, Buffer.from(n, 'ascii')));
    extensions.push(seq(oid(OID.subjectAltName), octets(seq(...names))));
  }
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    sigAlg,
    subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, sigAlg, bits(signature));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

let fakeCertificate: PemPair | null = null;

/**
 * ingress-nginx's default ("fake") certificate: O=Acme Co, CN=Kubernetes Ingress
 * Controller Fake Certificate, SAN ingress.local, RSA 2048, made once per process
 * (internal/net/ssl/ssl.go GetFakeSSLCert).
 */
export function defaultCertificate(): PemPair {
  fakeCertificate ??= selfSignedCertificate({
    commonName: 'Kubernetes Ingress Controller Fake Certificate',
    organization: 'Acme Co',
    dnsNames: ['ingress.local'],
    keyType: 'rsa',
  });
  return fakeCertificate;
}

// ---------------------------------------------------------------------------------------
// TLS Secrets

/** A usable certificate: PEMs plus what ingress-nginx checks. */
export interface TlsCertificate {
  /** `namespace/name` of the Secret, or `default-fake-certificate`. */
  id: string;
  cert: string;
  key: string;
  subject: string;
  dnsNames: string[];
  notAfter: string;
  x509: X509Certificate;
}

/** Reads the certificate and key of a Secret's data (base64) or stringData. */
export function tlsFromSecret(
  id: string,
  secret: Record<string, unknown>,
): TlsCertificate | { error: string } {
  const data = (secret.data ?? {}) as Record<string, unknown>;
  const stringData = (secret.stringData ?? {}) as Record<string, unknown>;
  const read = (k: string): string | null => {
    if (typeof stringData[k] === 'string') return stringData[k];
    if (typeof data[k] === 'string') return Buffer.from(data[k], 'base64').toString('utf8');
    return null;
  };
  const cert = read('tls.crt');
  const key = read('tls.key');
  if (cert === null || key === null) return { error: 'has no tls.crt and tls.key' };
  return parseTls(id, cert, key);
}

export function parseTls(
  id: string,
  cert: string,
  key: string,
): TlsCertificate | { error: string } {
  let x509: X509Certificate;
  let keyObject: KeyObject;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    return { error: `tls.crt is not a PEM certificate (${(e as Error).message})` };
  }
  try {
    keyObject = createPrivateKey(key);
  } catch (e) {
    return { error: `tls.key is not a PEM private key (${(e as Error).message})` };
  }
  if (!x509.checkPrivateKey(keyObject)) {
    return { error: 'tls.key does not match the certificate in tls.crt' };
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    return { error: `unusable certificate or key (${(e as Error).message})` };
  }
  const dnsNames = (x509.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return {
    id,
    cert,
    key,
    subject: x509.subject.replace(/\n/g, ', '),
    dnsNames,
    notAfter: x509.validTo,
    x509,
  };
}

let fakeTls: TlsCertificate | null = null;

export function defaultTls(): TlsCertificate {
  if (!fakeTls) {
    const { cert, key } = defaultCertificate();
    const parsed = parseTls('default-fake-certificate', cert, key);
    if ('error' in parsed) throw new Error(`default certificate: ${parsed.error}`);
    fakeTls = parsed;
  }
  return fakeTls;
}

/**
 * Does the certificate cover `host`? Go's VerifyHostname (SAN DNS names, wildcards one
 * label deep), then the subject CN, which ingress-nginx still accepts
 * (controller.go verifyHostname).
 */
export function certificateCoversHost(tls: TlsCertificate, host: string): boolean {
  return tls.x509.checkHost(host, { subject: 'always', wildcards: true }) !== undefined;
}
