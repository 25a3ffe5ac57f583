import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { capturedIo } from './captured-io.js';
import { main } from './main.js';

const COMMANDS = [
  [],
  ['run'],
  ['doctor'],
  ['manifest'],
  ['manifest', 'check'],
  ['manifest', 'explain'],
  ['manifest', 'schema'],
  ['init'],
  ['bench'],
  ['vm'],
  ['vm', 'kernel'],
  ['vm', 'kernel', 'build'],
];

describe('bulkhead --help', () => {
  it.each(COMMANDS.map((command) => [command.join(' ') || '(top level)', command]))(
    '%s --help prints usage and examples and exits 0',
    async (_name, command) => {
      const io = capturedIo({ cwd: tmpdir() });
      const status = await main([...command, '--help'], io);
      expect(status).toBe(0);
      expect(io.output()).toContain(`Usage: bulkhead${command.length > 0 ? ` ${command.join(' ')}` : ''}`);
      expect(io.output()).toContain('Examples:');
      expect(io.output()).toContain('$ bulkhead');
    },
  );

  it('--version prints the package version', async () => {
    const io = capturedIo({ cwd: tmpdir() });
    expect(await main(['--version'], io)).toBe(0);
    expect(io.output().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown command is a usage error with the fix', async () => {
    const io = capturedIo({ cwd: tmpdir() });
    expect(await main(['rnu'], io)).toBe(2);
    expect(io.errors()).toContain("bulkhead: unknown command 'rnu'");
    expect(io.errors()).toContain('run');
  });

  it('a usage error of run exits 125, never a status the command could have returned', async () => {
    const io = capturedIo({ cwd: tmpdir() });
    expect(await main(['run', '--tier'], io)).toBe(125);
    expect(io.errors()).toContain('--tier');
  });
});
