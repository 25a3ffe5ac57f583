import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGuestKernel } from './guest-kernel.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const viteNode = join(here, '..', '..', '..', 'node_modules', '.bin', 'vite-node');
const account = `bhmv${process.pid}`;
const isRoot = process.getuid?.() === 0;

// Making a throwaway account needs root; CI runs the suite as root, so there this always runs.
describe.skipIf(!isRoot)('microvm tier as an unprivileged caller', () => {
  let directory: string;
  let home: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'bulkhead-microvm-unprivileged-'));
    await chmod(directory, 0o755);
    home = join(directory, 'home');
    const added = spawnSync('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', account], {
      encoding: 'utf8',
    });
    expect(added.status, added.stderr).toBe(0);
    // root's kernel cache is private to root: the account gets a copy, as `kernel: { path }`.
    const kernel = findGuestKernel();
    expect(kernel, 'the global setup builds the guest kernel').toBeDefined();
    await copyFile(kernel!.path, join(directory, 'vmlinux'));
    await chmod(join(directory, 'vmlinux'), 0o644);
  });

  afterAll(async () => {
    spawnSync('userdel', ['--remove', account]);
    await rm(directory, { recursive: true, force: true });
  });

  it('runs the payload in a guest as the caller, writing the workspace as the caller', async () => {
    const script = join(directory, 'run.ts');
    await writeFile(
      script,
      `import { run } from ${JSON.stringify(join(here, '..', '..', 'core', 'src', 'index.ts'))};
import { createMicrovmProvider } from ${JSON.stringify(join(here, 'index.ts'))};
const home = ${JSON.stringify(home)};
const result = await run({
  command: ['sh', '-c', 'id -u; echo written > out'],
  capabilities: {
    filesystem: { read: ['/usr', '/bin', '/lib', '/lib64', '/etc'], write: [home], deny: [] },
    network: { mode: 'none', allow: [] },
    process: { spawn: true, maxProcesses: 64 },
    resources: { memoryBytes: 128 * 1024 * 1024, timeoutMs: 120_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: home,
  },
  providers: [createMicrovmProvider({ acceleration: 'any', kernel: { path: ${JSON.stringify(join(directory, 'vmlinux'))} } })],
  tier: 'microvm',
});
process.stdout.write(JSON.stringify({ exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr }));
`,
    );
    await chmod(script, 0o644);
    const child = spawnSync('su', [account, '-s', '/bin/sh', '-c', `cd ${home} && ${viteNode} ${script}`], {
      encoding: 'utf8',
      timeout: 150_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.slice(child.stdout.indexOf('{'))) as {
      exitCode: number;
      stdout: string;
      stderr: string;
    };
    const uid = spawnSync('id', ['-u', account], { encoding: 'utf8' }).stdout.trim();
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(uid);
    expect(existsSync(join(home, 'out'))).toBe(true);
    expect(await readFile(join(home, 'out'), 'utf8')).toBe('written\n');
    const owner = spawnSync('stat', ['-c', '%u', join(home, 'out')], { encoding: 'utf8' }).stdout.trim();
    expect(owner).toBe(uid);
  });
});
