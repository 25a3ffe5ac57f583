import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wrapperScript } from './subordinate-account.js';

/**
 * The bubblewrap stand-in of unprivileged callers, run with stand-ins of its own: `unshare` and `bwrap`
 * that print the argv they were given, so that what it would run can be read back.
 */
describe('the bubblewrap stand-in', () => {
  let folder: string;
  let wrapper: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-wrapper-'));
    const printer = (name: string) =>
      `#!/bin/sh\necho ${name}\nfor argument in "$@"; do printf '%s\\n' "$argument"; done\n`;
    await writeFile(join(folder, 'unshare'), printer('unshare'), { mode: 0o755 });
    await writeFile(join(folder, 'bwrap'), printer('bwrap'), { mode: 0o755 });
    wrapper = join(folder, 'wrapper');
    await writeFile(wrapper, wrapperScript('/bin/bash', join(folder, 'unshare'), join(folder, 'bwrap')));
    await chmod(wrapper, 0o755);
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  function run(args: string[], extraFds = 0, onSpawn?: (stdio: (Readable | Writable | null)[]) => void) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(wrapper, args, {
        stdio: ['ignore', 'pipe', 'pipe', ...Array.from({ length: extraFds }, () => 'pipe' as const)],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      onSpawn?.(child.stdio as (Readable | Writable | null)[]);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('is plain bubblewrap without --uid/--gid (the probes)', async () => {
    const result = await run(['--version']);
    expect(result.stdout.split('\n').slice(0, 2)).toEqual(['bwrap', '--version']);
  });

  it('switches to the --uid/--gid of the arguments, whatever variables and paths look like', async () => {
    const args = [
      '--unshare-user',
      '--uid',
      '1700000005',
      '--gid',
      '1700000006',
      '--setenv',
      '--info-fd',
      '9',
      '--setenv',
      'X',
      '--',
      '--ro-bind',
      '/a b',
      '/a b',
      '--chdir',
      '/',
      '--',
      'sh',
      '-c',
      'echo --uid 0',
    ];
    const result = await run(args);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'unshare',
      '--user',
      '--map-users=1700000005,1700000005,1',
      '--map-groups=1700000006,1700000006,1',
      '--setuid',
      '1700000005',
      '--setgid',
      '1700000006',
      '--',
      join(folder, 'bwrap'),
      ...args,
    ]);
  });

  it('answers the info fd for bubblewrap and waits on the block fd before it switches', async () => {
    let info = '';
    let blockFd: Writable | undefined;
    const result = await run(
      ['--unshare-user', '--uid', '5', '--gid', '6', '--info-fd', '3', '--block-fd', '4', '--', 'true'],
      2,
      (stdio) => {
        (stdio[3] as Readable).on('data', (chunk: Buffer) => {
          info += chunk.toString();
          // Unblocked only once the pid was read, as the process tier does after placing it.
          if (info.includes('\n')) blockFd?.end(Buffer.from([1]));
        });
        blockFd = stdio[4] as Writable;
      },
    );
    expect(info).toMatch(/^\{"child-pid": \d+\}\n$/);
    // The two fds are the stand-in's business: bubblewrap is started without them.
    const lines = result.stdout.trim().split('\n');
    expect(lines.slice(lines.indexOf(join(folder, 'bwrap')))).toEqual([
      join(folder, 'bwrap'),
      '--unshare-user',
      '--uid',
      '5',
      '--gid',
      '6',
      '--',
      'true',
    ]);
  });

  it('refuses an option it does not know (fail closed)', async () => {
    const result = await run(['--uid', '5', '--gid', '6', '--bind-fd', '3', '/x', '--', 'true']);
    expect(result.code).toBe(125);
    expect(result.stderr).toMatch(/does not know the option '--bind-fd'/);
    expect(result.stdout).toBe('');
  });
});
