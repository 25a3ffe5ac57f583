import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processTierUnavailable } from './process-tier-status.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** The cgroup v1 controllers the process tier asks an administrator to delegate to a user. */
const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'];

function skipReason(): Promise<string | undefined> | string | undefined {
  if (process.getuid?.() !== 0) return 'creating a throwaway account needs root';
  // On cgroup v2 hosts delegation is systemd's (user@.service); the set-up below is v1's, as here.
  if (!existsSync('/sys/fs/cgroup/pids/tasks')) return 'the delegation set-up in this test is cgroup v1’s';
  return processTierUnavailable();
}

const skip = await skipReason();
if (skip) console.warn(`skipping bulkhead run as an unprivileged user: ${skip}`);

describe.skipIf(skip !== undefined)('bulkhead run as an unprivileged user', () => {
  const name = `bhcli-${process.pid}`;
  let uid: number;
  let workspace: string;

  beforeAll(async () => {
    execFileSync('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', name]);
    uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    // A deleted account that had this uid may have left its runtime folder; it is not this user's.
    rmSync(runtimeFolder(), { recursive: true, force: true });
    workspace = await mkdtemp(join(tmpdir(), 'bulkhead-cli-user-'));
    chownSync(workspace, uid, uid);
  });

  afterAll(async () => {
    for (const controller of CONTROLLERS) {
      const path = `/sys/fs/cgroup/${controller}/bulkhead-${name}`;
      // Empty once every sandbox is gone: a leftover child cgroup makes this throw, and the test fail.
      if (existsSync(path)) rmdirSync(path);
    }
    await rm(workspace, { recursive: true, force: true });
    rmSync(runtimeFolder(), { recursive: true, force: true });
    execFileSync('userdel', ['--remove', name], { stdio: 'ignore' });
  });

  /** Where the Linux tiers keep a user's runtime files when XDG_RUNTIME_DIR is unset, as below. */
  const runtimeFolder = () => join('/tmp', `bulkhead-${uid}`);

  async function runAsUser(argv: string[]) {
    const child = spawn('runuser', ['-u', name, '--', process.execPath, CLI, ...argv], {
      cwd: workspace,
      env: { PATH: process.env.PATH, NO_COLOR: '1', LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  }

  it('refuses with 125 and the delegation fix while the user has no cgroup to limit processes in', async () => {
    const result = await runAsUser(['run', '--', 'sh', '-c', 'echo ran']);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^fix: |; fix: /m);
    expect(result.stderr).toContain(`bulkhead-${name}`);
  });

  it('runs the command once the administrator delegated the cgroups the fix names', async () => {
    for (const controller of CONTROLLERS) {
      const path = `/sys/fs/cgroup/${controller}/bulkhead-${name}`;
      mkdirSync(path);
      execFileSync('chown', ['-R', name, path]);
    }
    const result = await runAsUser([
      'run',
      '--',
      'sh',
      '-c',
      'id -u; echo kept > out.txt; cat /etc/shadow; exit 42',
    ]);
    expect(result.code).toBe(42);
    expect(result.stdout.split('\n')[0]).not.toBe('0');
    expect(await readFile(join(workspace, 'out.txt'), 'utf8')).toBe('kept\n');
    expect(statSync(join(workspace, 'out.txt')).uid).toBe(uid);
    expect(result.stderr).toContain('Permission denied');
  });

  it('runs again in a second bulkhead process of the same user', async () => {
    const first = await runAsUser(['run', '--', 'sh', '-c', 'exit 3']);
    const second = await runAsUser(['run', '--', 'sh', '-c', 'exit 4']);
    expect(second.stderr).not.toContain('internal error');
    expect([first.code, second.code]).toEqual([3, 4]);
  });
});
