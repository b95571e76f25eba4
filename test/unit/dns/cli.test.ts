/** `kubewire dns`: the commander registration and one run on loopback until SIGTERM. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { registerDnsCommand } from '../../../src/cli/commands/dns.js';

describe('kubewire dns', () => {
  it('registers the command with its options', () => {
    const program = new Command();
    registerDnsCommand(program);
    const dns = program.commands.find((c) => c.name() === 'dns');
    assert.ok(dns);
    assert.deepEqual(
      dns.options.map((o) => o.long),
      ['--manifests', '--listen', '--corefile', '--udp-io'],
    );
    assert.equal(dns.options.find((o) => o.long === '--listen')!.defaultValue, '127.0.0.1:5353');
    const io = dns.options.find((o) => o.long === '--udp-io')!;
    assert.equal(io.defaultValue, 'auto');
    assert.deepEqual(io.argChoices, ['auto', 'batched', 'dgram']);
  });

  it('serves until SIGTERM, then returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-dns-cli-'));
    try {
      writeFileSync(
        join(dir, 'svc.yaml'),
        'apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}\n',
      );
      writeFileSync(join(dir, 'Corefile'), '.:53 {\n kubernetes cluster.local\n}\n');
      const program = new Command().exitOverride();
      registerDnsCommand(program);
      const run = program.parseAsync(
        ['dns', '--manifests', dir, '--listen', '127.0.0.1:0', '--corefile', join(dir, 'Corefile')],
        { from: 'user' },
      );
      await new Promise((r) => setTimeout(r, 500));
      process.emit('SIGTERM');
      await run;
      assert.notEqual(process.exitCode, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
