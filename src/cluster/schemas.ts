/**
 * zod schemas of the manifest kinds kubewire reads, with Kubernetes' own name and label
 * rules (k8s.io/apimachinery/pkg/util/validation) and messages a user can act on.
 * Unknown fields are accepted and ignored, as `kubectl apply --validate=false` would.
 */
import { z } from 'zod';
import { isIPv4, looksLikeIPv6, parseCidrStrict } from './ip.js';
import { CalicoSelectorError, parseCalicoSelector } from './selectors.js';

// ---------------------------------------------------------------------------------------
// Messages

function describeValue(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a map';
  if (typeof input === 'string') return `the string ${JSON.stringify(input)}`;
  return `${typeof input} ${JSON.stringify(input)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true or false)',
  array: 'a list',
  object: 'a map',
  record: 'a map',
};

/** The error map used for every parse: short, kubectl-like messages. */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required field is missing';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
    case 'invalid_value':
      if (issue.input === undefined) return 'required field is missing';
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${describeValue(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      if (issue.origin === 'array') return `must have at least ${issue.minimum} item(s)`;
      return `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters`;
      if (issue.origin === 'array') return `must have at most ${issue.maximum} item(s)`;
      return `must be at most ${issue.maximum}`;
    case 'invalid_union':
      return 'does not match any accepted form';
    default:
      return undefined;
  }
};

// ---------------------------------------------------------------------------------------
// Names and labels (k8s.io/apimachinery/pkg/util/validation)

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}
export function isDns1035Label(s: string): boolean {
  return s.length <= 63 && DNS1035_LABEL.test(s);
}
/** A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63. */
export function isQualifiedName(s: string): boolean {
  const parts = s.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1]!;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME_PART.test(name)) return false;
  return parts.length === 1 || (parts[0]!.length > 0 && isDns1123Subdomain(parts[0]!));
}
export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}
export function isPortName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

const named = (test: (s: string) => boolean, rule: string) =>
  z.string().superRefine((s, ctx) => {
    if (!test(s)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} ${rule}` });
  });

export const dnsLabel = named(
  isDns1123Label,
  "is not a valid DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)",
);
export const dnsSubdomain = named(
  isDns1123Subdomain,
  "is not a valid DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
);
export const dns1035Label = named(
  isDns1035Label,
  "is not a valid DNS-1035 label (at most 63 characters: lowercase letters, digits and '-', starting with a letter)",
);
export const qualifiedName = named(
  isQualifiedName,
  "is not a valid qualified name ([prefix/]name: name at most 63 characters of letters, digits, '-', '_', '.', starting and ending with a letter or digit; prefix a DNS subdomain)",
);
const portName = named(
  isPortName,
  "is not a valid port name (at most 15 lowercase letters, digits and '-', with at least one letter)",
);

/** The Calico annotation that pins a pod's addresses. */
export const IP_ADDRS_ANNOTATION = 'cni.projectcalico.org/ipAddrs';

/**
 * Parses the value of cni.projectcalico.org/ipAddrs: a JSON list with exactly one IPv4
 * address (kubewire emulates IPv4 only). Returns the address or an error text.
 */
export function parseIpAddrsAnnotation(value: string): { ip: string } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {
      error: `expected a JSON list of addresses such as '["192.168.8.222"]', got ${JSON.stringify(value)}`,
    };
  }
  if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== 'string')) {
    return { error: `expected a JSON list of address strings such as '["192.168.8.222"]'` };
  }
  const v4 = parsed.filter((a: string) => !looksLikeIPv6(a));
  const v6 = parsed.filter((a: string) => looksLikeIPv6(a));
  if (v6.length > 0)
    return { error: `IPv6 address ${v6[0]} is not supported (kubewire emulates IPv4)` };
  if (v4.length !== 1) return { error: `expected exactly one IPv4 address, got ${v4.length}` };
  if (!isIPv4(v4[0]!)) return { error: `${JSON.stringify(v4[0])} is not an IPv4 address` };
  return { ip: v4[0]! };
}

export const labelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  for (const [key, value] of Object.entries(labels)) {
    if (!isQualifiedName(key)) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `label key ${JSON.stringify(key)} is not a valid qualified name`,
      });
    }
    if (!isLabelValue(value)) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `label value ${JSON.stringify(value)} is invalid (at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit)`,
      });
    }
  }
});

export const annotationsSchema = z
  .record(z.string(), z.string())
  .superRefine((annotations, ctx) => {
    for (const [key, value] of Object.entries(annotations)) {
      if (!isQualifiedName(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `annotation key ${JSON.stringify(key)} is not a valid qualified name`,
        });
      }
      if (key === IP_ADDRS_ANNOTATION) {
        const r = parseIpAddrsAnnotation(value);
        if ('error' in r) ctx.addIssue({ code: 'custom', path: [key], message: r.error });
      }
    }
  });

export const ipv4String = z.string().superRefine((s, ctx) => {
  if (!isIPv4(s))
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} is not an IPv4 address` });
});

/** An IPv4 CIDR with no host bits set; `allowIPv6` lets IPv6 text through for the caller to skip. */
export const cidrString = (allowIPv6: boolean) =>
  z.string().superRefine((s, ctx) => {
    const r = parseCidrStrict(s);
    if (r.ok) return;
    if (r.reason === 'ipv6') {
      if (!allowIPv6)
        ctx.addIssue({
          code: 'custom',
          message: `IPv6 CIDR ${s} is not supported (kubewire emulates IPv4)`,
        });
    } else if (r.reason === 'host-bits') {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(s)} has host bits set; did you mean ${r.network}?`,
      });
    } else {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(s)} is not an IPv4 CIDR such as 192.168.0.0/16`,
      });
    }
  });

const nonNegativeInt = z
  .int({ error: 'expected a non-negative integer' })
  .min(0, { error: 'expected a non-negative integer' });
const portNumber = z
  .int({ error: 'expected a port number (an integer 1-65535)' })
  .min(1, { error: 'expected a port number (an integer 1-65535)' })
  .max(65535, { error: 'expected a port number (an integer 1-65535)' });
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);

// ---------------------------------------------------------------------------------------
// Metadata

export const objectMeta = (nameSchema: z.ZodType<string>) =>
  z.object({
    name: nameSchema,
    namespace: dnsLabel.optional(),
    labels: labelsSchema.optional(),
    annotations: annotationsSchema.optional(),
  });

// ---------------------------------------------------------------------------------------
// Selectors, taints, tolerations, affinity

export const labelSelectorSchema = z.object({
  matchLabels: labelsSchema.optional(),
  matchExpressions: z
    .array(
      z
        .object({
          key: qualifiedName,
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(z.string()).optional(),
        })
        .superRefine((req, ctx) => {
          const n = req.values?.length ?? 0;
          if ((req.operator === 'In' || req.operator === 'NotIn') && n === 0) {
            ctx.addIssue({
              code: 'custom',
              path: ['values'],
              message: `must be non-empty for operator ${req.operator}`,
            });
          }
          if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && n > 0) {
            ctx.addIssue({
              code: 'custom',
              path: ['values'],
              message: `must be empty for operator ${req.operator}`,
            });
          }
        }),
    )
    .optional(),
});

const nodeSelectorRequirement = z
  .object({
    key: z.string().min(1),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
    values: z.array(z.string()).optional(),
  })
  .superRefine((req, ctx) => {
    const n = req.values?.length ?? 0;
    if ((req.operator === 'In' || req.operator === 'NotIn') && n === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must be non-empty for operator ${req.operator}`,
      });
    }
    if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && n > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must be empty for operator ${req.operator}`,
      });
    }
    if (
      (req.operator === 'Gt' || req.operator === 'Lt') &&
      (n !== 1 || !/^-?\d+$/.test(req.values![0]!))
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must be a single integer for operator ${req.operator}`,
      });
    }
  });

const nodeSelectorTerm = z.object({
  matchExpressions: z.array(nodeSelectorRequirement).optional(),
  matchFields: z
    .array(
      nodeSelectorRequirement.superRefine((req, ctx) => {
        if (req.key !== 'metadata.name') {
          ctx.addIssue({
            code: 'custom',
            path: ['key'],
            message: `only the field metadata.name is supported, got ${JSON.stringify(req.key)}`,
          });
        }
      }),
    )
    .optional(),
});

export const affinitySchema = z
  .object({
    nodeAffinity: z
      .object({
        requiredDuringSchedulingIgnoredDuringExecution: z
          .object({ nodeSelectorTerms: z.array(nodeSelectorTerm) })
          .optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export const taintSchema = z.object({
  key: qualifiedName,
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});

export const tolerationSchema = z
  .object({
    key: z.string().optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.int().optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.operator ?? 'Equal') === 'Exists' && t.value) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: 'must be empty when operator is Exists',
      });
    }
    if (!t.key && (t.operator ?? 'Equal') !== 'Exists') {
      ctx.addIssue({
        code: 'custom',
        path: ['operator'],
        message: 'must be Exists when key is empty',
      });
    }
  });

// ---------------------------------------------------------------------------------------
// Pods

const containerSchema = z.object({
  name: dnsLabel,
  image: z.string().min(1),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: z
    .array(
      z.object({
        name: z.string().min(1),
        value: z.string().optional(),
        valueFrom: z.unknown().optional(),
      }),
    )
    .optional(),
  ports: z
    .array(
      z.object({
        name: portName.optional(),
        containerPort: portNumber,
        protocol: protocol.optional(),
        hostPort: portNumber.optional(),
        hostIP: z.string().optional(),
      }),
    )
    .optional(),
  readinessProbe: z.unknown().optional(),
});

export const dnsConfigSchema = z.object({
  nameservers: z.array(ipv4String).optional(),
  searches: z.array(z.string()).optional(),
  options: z.array(z.object({ name: z.string().min(1), value: z.string().optional() })).optional(),
});

export const podSpecSchema = z
  .object({
    nodeName: z.string().optional(),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    affinity: affinitySchema.optional(),
    tolerations: z.array(tolerationSchema).optional(),
    hostNetwork: z.boolean().optional(),
    hostname: dnsLabel.optional(),
    subdomain: dnsLabel.optional(),
    dnsPolicy: z.enum(['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None']).optional(),
    dnsConfig: dnsConfigSchema.optional(),
    restartPolicy: z.enum(['Always', 'OnFailure', 'Never']).optional(),
    containers: z.array(containerSchema).min(1),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, number>();
    spec.containers.forEach((c, i) => {
      if (seen.has(c.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['containers', i, 'name'],
          message: `duplicate container name ${JSON.stringify(c.name)} (also containers[${seen.get(c.name)}])`,
        });
      } else seen.set(c.name, i);
    });
    if (spec.dnsPolicy === 'None' && !spec.dnsConfig) {
      ctx.addIssue({
        code: 'custom',
        path: ['dnsConfig'],
        message: 'required when dnsPolicy is None',
      });
    }
  });

export const podTemplateSchema = z.object({
  metadata: z
    .object({ labels: labelsSchema.optional(), annotations: annotationsSchema.optional() })
    .optional(),
  spec: podSpecSchema,
});

export const podSchema = z.object({ metadata: objectMeta(dnsSubdomain), spec: podSpecSchema });

export const deploymentSchema = z.object({
  metadata: objectMeta(dnsSubdomain),
  spec: z.object({
    replicas: nonNegativeInt.optional(),
    selector: labelSelectorSchema,
    template: podTemplateSchema,
  }),
});

export const daemonSetSchema = z.object({
  metadata: objectMeta(dnsSubdomain),
  spec: z.object({ selector: labelSelectorSchema, template: podTemplateSchema }),
});

// ---------------------------------------------------------------------------------------
// Nodes, namespaces, cluster configuration, IP pools

export const nodeSchema = z.object({
  metadata: objectMeta(dnsSubdomain),
  spec: z
    .object({
      podCIDR: cidrString(true).optional(),
      podCIDRs: z.array(cidrString(true)).optional(),
      taints: z.array(taintSchema).optional(),
      unschedulable: z.boolean().optional(),
    })
    .optional(),
  status: z.object({
    addresses: z
      .array(z.object({ type: z.string().min(1), address: z.string().min(1) }))
      .superRefine((addresses, ctx) => {
        const internal = addresses.filter((a) => a.type === 'InternalIP');
        if (internal.length === 0) {
          ctx.addIssue({
            code: 'custom',
            message: 'a Node needs an address of type InternalIP (the node IP)',
          });
          return;
        }
        addresses.forEach((a, i) => {
          if (a.type === 'InternalIP' && !looksLikeIPv6(a.address) && !isIPv4(a.address)) {
            ctx.addIssue({
              code: 'custom',
              path: [i, 'address'],
              message: `${JSON.stringify(a.address)} is not an IPv4 address`,
            });
          }
        });
        if (internal.every((a) => looksLikeIPv6(a.address))) {
          ctx.addIssue({ code: 'custom', message: 'a Node needs an IPv4 InternalIP address' });
        }
      }),
  }),
});

export const namespaceSchema = z.object({ metadata: objectMeta(dnsLabel) });

const subnetList = z.string().superRefine((s, ctx) => {
  for (const part of s.split(',').map((p) => p.trim())) {
    const r = parseCidrStrict(part);
    if (r.ok || r.reason === 'ipv6') continue;
    ctx.addIssue({
      code: 'custom',
      message:
        r.reason === 'host-bits'
          ? `${JSON.stringify(part)} has host bits set; did you mean ${r.network}?`
          : `${JSON.stringify(part)} is not an IPv4 CIDR such as 10.96.0.0/12`,
    });
  }
});

export const clusterConfigurationSchema = z.object({
  clusterName: z.string().optional(),
  kubernetesVersion: z.string().optional(),
  networking: z
    .object({
      podSubnet: subnetList.optional(),
      serviceSubnet: subnetList.optional(),
      dnsDomain: dnsSubdomain.optional(),
    })
    .optional(),
});

export const ipPoolSchema = z.object({
  metadata: objectMeta(dnsSubdomain),
  spec: z.object({
    cidr: cidrString(true),
    blockSize: z.int().optional(),
    ipipMode: z.enum(['Always', 'CrossSubnet', 'Never']).optional(),
    vxlanMode: z.enum(['Always', 'CrossSubnet', 'Never']).optional(),
    natOutgoing: z.boolean().optional(),
    nodeSelector: z
      .string()
      .superRefine((s, ctx) => {
        try {
          parseCalicoSelector(s);
        } catch (e) {
          if (e instanceof CalicoSelectorError)
            ctx.addIssue({ code: 'custom', message: e.message });
          else throw e;
        }
      })
      .optional(),
    disabled: z.boolean().optional(),
  }),
});

/** `spec.affinity` of an IPAMBlock: `host:<node name>` (libcalico-go AffinityTypeHost). */
export const IPAM_BLOCK_AFFINITY_PREFIX = 'host:';

/**
 * Calico IPAMBlock (crd.projectcalico.org/v1; libcalico-go model.AllocationBlock): the
 * allocations of one block. Rules that need the block size or other objects are checked
 * in validate.ts (CHECKS.IPAMBlock) and state.ts (pool, overlap).
 */
export const ipamBlockSchema = z.object({
  metadata: objectMeta(dnsSubdomain),
  spec: z
    .object({
      cidr: cidrString(true),
      affinity: z.string().optional(),
      strictAffinity: z.boolean().optional(),
      allocations: z.array(nonNegativeInt.nullable()),
      unallocated: z.array(nonNegativeInt).optional(),
      attributes: z
        .array(
          z
            .object({
              handle_id: z.string().optional(),
              secondary: z.record(z.string(), z.string()).optional(),
            })
            .loose(),
        )
        .optional(),
      deleted: z.boolean().optional(),
    })
    .loose(),
});

// ---------------------------------------------------------------------------------------
// Kinds kept as raw objects (validated lightly)

const looseMeta = (nameSchema: z.ZodType<string>) => objectMeta(nameSchema).loose();

/** A port field where 0 means "not set" (nodePort, healthCheckNodePort), as the API reads it. */
const optionalPortNumber = z
  .int({ error: 'expected a port number (an integer 1-65535, or 0 for none)' })
  .min(0, { error: 'expected a port number (an integer 1-65535, or 0 for none)' })
  .max(65535, { error: 'expected a port number (an integer 1-65535, or 0 for none)' });

export const servicePortSchema = z
  .object({
    name: dnsLabel.optional(),
    protocol: protocol.optional(),
    appProtocol: qualifiedName.optional(),
    port: portNumber,
    // 0 and "" mean "unset": the API server then defaults targetPort to port.
    targetPort: z
      .union([z.literal(0), z.literal(''), portNumber, portName], {
        error: 'expected a port number (1-65535) or a port name',
      })
      .optional(),
    nodePort: optionalPortNumber.optional(),
  })
  .loose();

/** v1 Service (pkg/apis/core/validation ValidateService; cross-field rules in services.ts). */
export const serviceSchema = z
  .object({
    metadata: looseMeta(dns1035Label),
    spec: z
      .object({
        type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
        selector: labelsSchema.optional(),
        clusterIP: z.string().optional(),
        clusterIPs: z.array(z.string()).optional(),
        ipFamilies: z.array(z.enum(['IPv4', 'IPv6'])).optional(),
        ipFamilyPolicy: z.enum(['SingleStack', 'PreferDualStack', 'RequireDualStack']).optional(),
        externalName: z.string().optional(),
        ports: z.array(servicePortSchema).optional(),
        sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
        sessionAffinityConfig: z
          .object({
            clientIP: z.object({ timeoutSeconds: z.int().optional() }).loose().optional(),
          })
          .loose()
          .optional(),
        externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
        internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
        healthCheckNodePort: optionalPortNumber.optional(),
        publishNotReadyAddresses: z.boolean().optional(),
        externalIPs: z.array(z.string()).optional(),
        loadBalancerIP: z.string().optional(),
        loadBalancerSourceRanges: z.array(z.string()).optional(),
        loadBalancerClass: z.string().min(1).optional(),
        allocateLoadBalancerNodePorts: z.boolean().optional(),
      })
      .loose()
      .superRefine((spec, ctx) => {
        const ip = spec.clusterIP;
        if (ip !== undefined && ip !== '' && ip !== 'None' && !isIPv4(ip)) {
          ctx.addIssue({
            code: 'custom',
            path: ['clusterIP'],
            message: looksLikeIPv6(ip)
              ? `IPv6 address ${ip} is not supported (kubewire emulates IPv4)`
              : `${JSON.stringify(ip)} is not an IPv4 address, "None" or empty`,
          });
        }
        const lb = spec.loadBalancerIP;
        if (lb !== undefined && lb !== '' && !isIPv4(lb)) {
          ctx.addIssue({
            code: 'custom',
            path: ['loadBalancerIP'],
            message: looksLikeIPv6(lb)
              ? `IPv6 address ${lb} is not supported (kubewire emulates IPv4)`
              : `${JSON.stringify(lb)} is not an IPv4 address`,
          });
        }
      })
      .optional(),
  })
  .loose();

const stringMap = z.record(z.string(), z.string());

export const configMapSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    data: stringMap.optional(),
    binaryData: stringMap.optional(),
  })
  .loose();

export const secretSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    type: z.string().optional(),
    data: stringMap.optional(),
    stringData: stringMap.optional(),
  })
  .loose();

export const ingressSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    spec: z
      .object({
        ingressClassName: z.string().optional(),
        rules: z.array(z.object({ host: z.string().optional() }).loose()).optional(),
        tls: z
          .array(
            z
              .object({ hosts: z.array(z.string()).optional(), secretName: z.string().optional() })
              .loose(),
          )
          .optional(),
        defaultBackend: z.object({}).loose().optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export const ingressClassSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    spec: z.object({ controller: z.string().optional() }).loose().optional(),
  })
  .loose();

export const networkPolicySchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    spec: z
      .object({
        podSelector: labelSelectorSchema.loose(),
        policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
        ingress: z.array(z.object({}).loose()).optional(),
        egress: z.array(z.object({}).loose()).optional(),
      })
      .loose(),
  })
  .loose();

export const ipAddressPoolSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    spec: z
      .object({
        addresses: z.array(z.string().min(1)).min(1),
        autoAssign: z.boolean().optional(),
        avoidBuggyIPs: z.boolean().optional(),
        serviceAllocation: z
          .object({
            priority: z.number().int().min(0).optional(),
            namespaces: z.array(z.string()).optional(),
            namespaceSelectors: z.array(labelSelectorSchema).optional(),
            serviceSelectors: z.array(labelSelectorSchema).optional(),
          })
          .loose()
          .optional(),
      })
      .loose(),
  })
  .loose();

export const l2AdvertisementSchema = z
  .object({
    metadata: looseMeta(dnsSubdomain),
    spec: z
      .object({
        ipAddressPools: z.array(z.string().min(1)).optional(),
        ipAddressPoolSelectors: z.array(labelSelectorSchema).optional(),
        nodeSelectors: z.array(labelSelectorSchema).optional(),
        serviceSelectors: z.array(labelSelectorSchema).optional(),
        interfaces: z.array(z.string().min(1)).optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export type IPAddressPoolInput = z.infer<typeof ipAddressPoolSchema>;
export type L2AdvertisementInput = z.infer<typeof l2AdvertisementSchema>;

export type PodSpecInput = z.infer<typeof podSpecSchema>;
export type PodInput = z.infer<typeof podSchema>;
export type DeploymentInput = z.infer<typeof deploymentSchema>;
export type DaemonSetInput = z.infer<typeof daemonSetSchema>;
export type NodeInput = z.infer<typeof nodeSchema>;
export type NamespaceInput = z.infer<typeof namespaceSchema>;
export type ClusterConfigurationInput = z.infer<typeof clusterConfigurationSchema>;
export type IPPoolInput = z.infer<typeof ipPoolSchema>;
export type IPAMBlockInput = z.infer<typeof ipamBlockSchema>;
export type LabelSelectorInput = z.infer<typeof labelSelectorSchema>;
export type TaintInput = z.infer<typeof taintSchema>;
export type TolerationInput = z.infer<typeof tolerationSchema>;
export type ServiceInput = z.infer<typeof serviceSchema>;
export type ServicePortInput = z.infer<typeof servicePortSchema>;
