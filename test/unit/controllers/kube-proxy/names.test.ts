import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  computeProbability,
  endpointChainName,
  hash16,
  hash16Crypto,
  servicePortChainName,
  servicePortNameString,
} from '../../../../src/controllers/kube-proxy/index.js';

describe('chain names (reference/dataplane.md §1.2)', () => {
  // Every row of the §1.2 table: input string → chain.
  const vectors: [string, string][] = [
    ['ns1/svc1:p80tcp', 'KUBE-SVC-XPGD46QRK7WJZT7O'],
    ['ns2/svc2:p80tcp', 'KUBE-SVC-GNZBNJ2PO5MGZ6GT'],
    ['ns3/svc3:p80tcp', 'KUBE-SVC-X27LE4BHSL4DOUIK'],
    ['ns4/svc4:p80tcp', 'KUBE-SVC-4SW47YFZTEDKD3PK'],
    ['ns5/svc5:p80tcp', 'KUBE-SVC-NUKIZ6OKUXPJNT4C'],
    ['ns1/svc1:p80tcp10.180.0.1:80', 'KUBE-SEP-SXIVWICOYRO3J4NJ'],
    ['ns2/svc2:p80tcp10.180.0.2:80', 'KUBE-SEP-RS4RBKLTHTF2IUXJ'],
    ['ns3/svc3:p80tcp10.180.0.3:80', 'KUBE-SEP-OYPFS5VJICHGATKP'],
    ['ns4/svc4:p80tcp10.180.0.4:80', 'KUBE-SEP-UKSFD7AGPMPPLUHC'],
    ['ns4/svc4:p80tcp10.180.0.5:80', 'KUBE-SEP-C6EBXVWJJZMIWKLZ'],
    ['ns5/svc5:p80tcp10.180.0.3:80', 'KUBE-SEP-I77PXRDZVX7PMWMN'],
    ['kube-system/kube-dns:dnsudp', 'KUBE-SVC-TCOU7JCQXEZGVUNU'],
    ['default/kubernetes:httpstcp', 'KUBE-SVC-NPX46M4PTMTKRN6Y'],
  ];
  for (const [input, chain] of vectors) {
    test(`${input} → ${chain}`, () => {
      assert.equal(hash16(input), chain.slice(9));
    });
  }

  test('the public helpers build the same names from their parts', () => {
    assert.equal(
      servicePortChainName('KUBE-SVC-', 'ns1/svc1:p80', 'tcp'),
      'KUBE-SVC-XPGD46QRK7WJZT7O',
    );
    assert.equal(
      servicePortChainName('KUBE-FW-', 'ns5/svc5:p80', 'TCP'),
      'KUBE-FW-NUKIZ6OKUXPJNT4C',
    );
    assert.equal(
      servicePortChainName('KUBE-EXT-', 'ns3/svc3:p80', 'tcp'),
      'KUBE-EXT-X27LE4BHSL4DOUIK',
    );
    assert.equal(
      endpointChainName('ns4/svc4:p80', 'tcp', '10.180.0.5:80'),
      'KUBE-SEP-C6EBXVWJJZMIWKLZ',
    );
    assert.equal(
      servicePortChainName('KUBE-SVC-', 'kube-system/kube-dns:dns', 'udp'),
      'KUBE-SVC-TCOU7JCQXEZGVUNU',
    );
  });

  test('ServicePortName.String(): no colon for an unnamed port', () => {
    assert.equal(servicePortNameString('ns1', 'svc1', ''), 'ns1/svc1');
    assert.equal(servicePortNameString('ns1', 'svc1', 'p80'), 'ns1/svc1:p80');
  });

  test('the allocation-free SHA-256 agrees with node:crypto (1 to 3 blocks, non-ASCII)', () => {
    for (let i = 0; i < 400; i++) {
      const text = `${'k'.repeat(i % 150)}ns${i}/svc-${i * 7}:p${i}tcp10.0.${i & 255}.1:80`;
      assert.equal(hash16(text), hash16Crypto(text), text);
    }
    for (const text of ['', 'a', 'x'.repeat(55), 'x'.repeat(56), 'x'.repeat(64), 'é/ü:ß']) {
      assert.equal(hash16(text), hash16Crypto(text), JSON.stringify(text));
    }
  });

  test('names are 16 base32 characters', () => {
    for (let i = 0; i < 200; i++) assert.match(hash16(`x${i}`), /^[A-Z2-7]{16}$/);
  });
});

describe('computeProbability (reference/dataplane.md §1.7, TestComputeProbability)', () => {
  const cases: [number, string][] = [
    [1, '1.0000000000'],
    [2, '0.5000000000'],
    [3, '0.3333333333'],
    [4, '0.2500000000'],
    [5, '0.2000000000'],
    [6, '0.1666666667'],
    [7, '0.1428571429'],
    [10, '0.1000000000'],
    [100, '0.0100000000'],
    [1000, '0.0010000000'],
    [10000, '0.0001000000'],
    [100000, '0.0000100000'],
    [100001, '0.0000099999'],
    // The one exact tie: Go rounds 0.00048828125 half to even, toFixed would round up.
    [2048, '0.0004882812'],
    [1024, '0.0009765625'],
  ];
  for (const [n, want] of cases) {
    test(`1/${n} → ${want}`, () => assert.equal(computeProbability(n), want));
  }
});
