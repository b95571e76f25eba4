/**
 * Byte-for-byte agreement with iptables v1.8.9 (legacy): every command of the
 * fixture was run against the real iptables in a scratch network namespace and its
 * standard output, standard error and exit status recorded; restore inputs were fed
 * to the real iptables-restore and iptables-save -c recorded after each.
 * (test/integration/netfilter repeats the comparison live when root.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IptablesError } from '../../../src/netfilter/errors.js';
import { makeNf, tryCommand } from './helpers.js';

const fixtures = join(import.meta.dirname, '../../../../test/unit/netfilter/fixtures');

interface Golden {
  sequences: Array<{
    name: string;
    steps: Array<{ argv: string[]; stdout: string; stderr: string; code: number }>;
  }>;
  restores: Array<{
    name: string;
    steps: Array<{ flags: string[]; input: string; stderr: string; code: number; save: string }>;
  }>;
}

const golden = JSON.parse(readFileSync(join(fixtures, 'iptables-golden.json'), 'utf8')) as Golden;

const noComments = (s: string) =>
  s
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');

describe('iptables command line, as iptables v1.8.9 (legacy) prints it', () => {
  for (const seq of golden.sequences) {
    it(seq.name, () => {
      const { nf } = makeNf();
      for (const step of seq.steps) {
        const got = tryCommand(nf, step.argv);
        const label = `iptables ${step.argv.join(' ')}`;
        assert.equal(got.err, step.stderr, `${label}: stderr`);
        assert.equal(got.code, step.code, `${label}: exit status`);
        assert.equal(got.out, step.stdout, `${label}: stdout`);
      }
    });
  }
});

describe('iptables-restore and iptables-save, as v1.8.9 (legacy)', () => {
  for (const c of golden.restores) {
    it(c.name, () => {
      const { nf } = makeNf();
      for (const step of c.steps) {
        let err = '';
        let code = 0;
        try {
          nf.restore(step.input, {
            noflush: step.flags.includes('--noflush'),
            counters: step.flags.includes('--counters'),
          });
        } catch (e) {
          if (!(e instanceof IptablesError)) throw e;
          err = e.stderr;
          code = e.exitCode;
        }
        const label = `iptables-restore ${step.flags.join(' ')} <<< ${JSON.stringify(step.input.slice(0, 80))}`;
        assert.equal(err, step.stderr, `${label}: stderr`);
        assert.equal(code, step.code, `${label}: exit status`);
        assert.equal(
          noComments(nf.save({ counters: true })),
          step.save,
          `${label}: iptables-save -c`,
        );
      }
    });
  }
});
