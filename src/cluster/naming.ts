/**
 * Derived names: host-side veth names (Calico), pod network namespace names (kubewire),
 * pod-template hashes and generated pod names (Kubernetes controllers), object UIDs.
 * Names are derived, never stored, so any agent can recompute them.
 */
import { canonicalJson, fnv32a, safeEncodeString, safeSuffix, sha1Hex } from './hash.js';

/**
 * Calico's host-side interface name for a Kubernetes workload:
 * `prefix + hex(sha1("<namespace>.<pod>"))[:11]`, 15 characters with the default prefix
 * "cali" (libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go,
 * VethNameForWorkload).
 */
export function vethNameForWorkload(namespace: string, podName: string, prefix = 'cali'): string {
  return prefix + sha1Hex(`${namespace}.${podName}`).slice(0, 11);
}

/** Longest network namespace name kubewire produces. */
export const NETNS_NAME_MAX = 60;

/**
 * The Linux network namespace kubewire creates for a pod: `kwp-<namespace>.<pod>`.
 *
 * The dot separates namespace and pod unambiguously, because namespace names are
 * DNS-1123 labels and never contain one (with a dash, namespace "a-b"/pod "c" and
 * namespace "a"/pod "b-c" would collide). Longer than 60 characters, the name is cut to
 * 49 characters and `-` plus the first 10 hex digits of sha1("<namespace>/<pod>") are
 * appended, which gives exactly 60.
 */
export function netnsNameForPod(namespace: string, podName: string): string {
  const full = `kwp-${namespace}.${podName}`;
  if (full.length <= NETNS_NAME_MAX) return full;
  const hash = sha1Hex(`${namespace}/${podName}`).slice(0, 10);
  return `${full.slice(0, NETNS_NAME_MAX - 11)}-${hash}`;
}

/**
 * The `pod-template-hash` of a Deployment's pod template, in the spirit of
 * k8s.io/kubernetes/pkg/controller.ComputeHash: 32-bit FNV-1a of the template, its
 * decimal text mapped through rand.SafeEncodeString. Kubernetes hashes a spew dump of the
 * Go struct; kubewire hashes the canonical JSON (sorted keys) of the manifest's template,
 * so the value differs from a real cluster's but changes exactly when the template does.
 */
export function podTemplateHash(template: unknown): string {
  return safeEncodeString(String(fnv32a(canonicalJson(template))));
}

/** Kubernetes' maxGeneratedNameLength: 63 minus the 5-character random suffix. */
export const MAX_GENERATED_BASE = 58;

/**
 * names.SimpleNameGenerator.GenerateName made deterministic: the base (a generateName
 * such as "web-7d4b9c8f6f-") cut to 58 characters, plus 5 SAFE_ALPHABET characters
 * derived from `seed`.
 */
export function generateName(base: string, seed: string): string {
  return base.slice(0, MAX_GENERATED_BASE) + safeSuffix(seed, 5);
}

/** `<deployment>-<pod-template-hash>`, the ReplicaSet name the Deployment controller uses. */
export function replicaSetName(deployment: string, templateHash: string): string {
  return `${deployment}-${templateHash}`;
}

/**
 * Name of replica `index` of ReplicaSet `rsName`: `<rs>-<5 chars>`, the suffix derived
 * from "<rs>/<index>" (and "/<attempt>" when retrying after a collision).
 */
export function replicaPodName(rsName: string, index: number, attempt = 0): string {
  const seed = attempt === 0 ? `${rsName}/${index}` : `${rsName}/${index}/${attempt}`;
  return generateName(`${rsName}-`, seed);
}

/** Name of a DaemonSet's pod on `nodeName`: `<ds>-<5 chars>` derived from the node name. */
export function daemonPodName(
  namespace: string,
  dsName: string,
  nodeName: string,
  attempt = 0,
): string {
  const seed = `${namespace}/${dsName}/${nodeName}` + (attempt === 0 ? '' : `/${attempt}`);
  return generateName(`${dsName}-`, seed);
}

/**
 * A UUID-shaped identifier derived from kind, namespace and name (SHA-1 based, with the
 * RFC 4122 version-5 and variant bits set), standing in for metadata.uid.
 */
export function derivedUid(kind: string, namespace: string, name: string): string {
  const h = sha1Hex(`${kind}/${namespace}/${name}`);
  // Digit 12 is the version (5), digit 16 carries the variant bits (10xx).
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return (
    `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-` +
    `${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`
  );
}
