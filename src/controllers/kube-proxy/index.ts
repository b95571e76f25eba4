/**
 * src/controllers/kube-proxy: what kube-proxy's iptables mode programs on a node, as a
 * pure function of the cluster state. See README.md.
 */
export {
  computeProbability,
  endpointChainName,
  hash16,
  hash16Crypto,
  isServiceChainName,
  portProtoHash,
  servicePortChainName,
  servicePortNameString,
  type ServiceChainPrefix,
} from './names.js';
export {
  ensureChains,
  formatMasqueradeMark,
  jumpRules,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_CANARY,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  kubeProxyOptionsFor,
  kubeProxyRules,
  kubeProxyRulesFor,
  LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
  NFACCT_CT_STATE_INVALID_DROPPED,
  NFACCT_LOCALHOST_NODEPORT_ACCEPTED,
  type KubeProxyOptions,
  type KubeProxyRules,
  type KubeProxyServiceInput,
  type KubeProxyServiceRecord,
} from './proxier.js';
