import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { failedTests, runVitestAsUser } from '@bulkhead/conformance/corpus';
import { type Capabilities, run } from '@bulkhead/core';
import { ownerProcessAlive } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, leftovers, processesOfUid, uniqueMarker } from './test-support.js';

const isRoot = process.getuid?.() === 0;
const packageDirectory = dirname(dirname(fileURLToPath(import.meta.url)));
/** Debian's interpreter, not a pyenv shim on PATH (which lives under /root). */
const PYTHON = '/usr/bin/python3';

// Each way at a denied path a payload with write access to the folder around it could try, one
// line per attempt: `name refused ERRNO`, or `name ESCAPED` when it worked.
const ATTACKS = `
import errno, os
def attempt(name, action):
    try:
        action()
        print(name, 'ESCAPED', flush=True)
    except OSError as error:
        print(name, 'refused', errno.errorcode.get(error.errno, error.errno), flush=True)
def write_file(path, text):
    with open(path, 'w') as handle:
        handle.write(text)
attempt('file-read', lambda: open('secret').read())
attempt('file-append', lambda: open('secret', 'a').write('x'))
attempt('file-open-truncate', lambda: os.close(os.open('secret', os.O_WRONLY | os.O_TRUNC)))
attempt('file-truncate', lambda: os.truncate('secret', 0))
attempt('file-chmod', lambda: os.chmod('secret', 0o666))
attempt('file-unlink', lambda: os.unlink('secret'))
attempt('file-rename-away', lambda: os.rename('secret', 'secret-moved'))
write_file('decoy', 'decoy')
attempt('file-replace-by-rename', lambda: os.rename('decoy', 'secret'))
attempt('file-hard-link', lambda: os.link('secret', 'secret-linked'))
os.symlink('decoy', 'decoy-link')
attempt('file-replace-by-symlink', lambda: os.rename('decoy-link', 'secret'))
attempt('folder-list', lambda: os.listdir('vault'))
attempt('folder-read-inside', lambda: open('vault/inner').read())
attempt('folder-create-inside', lambda: write_file('vault/planted', 'planted'))
attempt('folder-chmod', lambda: os.chmod('vault', 0o777))
attempt('folder-rmdir', lambda: os.rmdir('vault'))
attempt('folder-rename-away', lambda: os.rename('vault', 'vault-moved'))
os.mkdir('decoy-folder')
attempt('folder-replace-by-rename', lambda: os.rename('decoy-folder', 'vault'))
attempt('nested-read', lambda: open('nested/deeper/key').read())
attempt('nested-parent-rename', lambda: os.rename('nested', 'nested-moved'))
attempt('nested-folder-rename', lambda: os.rename('nested/deeper', 'nested/deeper-moved'))
os.mkdir('swap')
os.symlink('swap', 'swap-link')
attempt('nested-parent-symlink-swap', lambda: os.rename('swap-link', 'nested'))
attempt('inner-grant-read', lambda: open('outer/granted/inner/key').read())
attempt('inner-grant-parent-rename', lambda: os.rename('outer', 'outer-moved'))
attempt('inner-grant-folder-rename', lambda: os.rename('outer/granted/inner', 'outer/granted/inner-moved'))
`;

// What the payload may do beside the denied paths: create, write, rename and remove its own files.
const CREATES = [
  'touch created',
  'mkdir made-folder',
  'echo made > made-folder/file',
  'mv created renamed',
  'rm renamed',
  'echo beside > nested/beside',
  'echo beside > outer/granted/beside',
  'echo created-ok',
].join(' && ');

// Outside /tmp: the sandbox's private /tmp is one of the tier's own writable paths, whose Landlock
// rule covers a grant bound inside it, so there Landlock never split a grant and the mount namespace
// alone kept the denies. Here Landlock handles the grant itself, as for a project folder.
const WORKSPACE_PREFIX = 'bulkhead-namespace-denies-';
const WORKSPACE_PARENT = '/var/tmp';

/** A workspace (the payload's write-granted workdir) holding a denied file, folder and nested file. */
async function workspaceWithDenies(): Promise<{ workspace: string; capabilities: Capabilities }> {
  const workspace = await mkdtemp(join(WORKSPACE_PARENT, WORKSPACE_PREFIX));
  // Every uid may enter it (a root caller's sandbox runs as an unprivileged one).
  await chmod(workspace, 0o777);
  await writeFile(join(workspace, 'secret'), 'the secret');
  await mkdir(join(workspace, 'vault'));
  await writeFile(join(workspace, 'vault', 'inner'), 'in the vault');
  await mkdir(join(workspace, 'nested', 'deeper'), { recursive: true });
  await writeFile(join(workspace, 'nested', 'deeper', 'key'), 'the key');
  // A write grant inside the workspace, with a deny inside it: folders above it must hold too.
  await mkdir(join(workspace, 'outer', 'granted', 'inner'), { recursive: true });
  await writeFile(join(workspace, 'outer', 'granted', 'inner', 'key'), 'the inner key');
  const capabilities = capabilitiesFor(workspace, (base) => ({
    ...base,
    filesystem: {
      ...base.filesystem,
      deny: [
        ...base.filesystem.deny,
        join(workspace, 'secret'),
        join(workspace, 'vault'),
        join(workspace, 'nested', 'deeper', 'key'),
        join(workspace, 'outer', 'granted', 'inner', 'key'),
      ],
      write: [...base.filesystem.write, join(workspace, 'outer', 'granted')],
    },
    // No process limit, so that an unprivileged caller without a delegated cgroup runs this too.
    process: { ...base.process, maxProcesses: Number.POSITIVE_INFINITY },
  }));
  return { workspace, capabilities };
}

/** The denied paths' contents as the host sees them. */
async function hostContents(workspace: string) {
  return {
    secret: await readFile(join(workspace, 'secret'), 'utf8'),
    vault: await readdir(join(workspace, 'vault')),
    inner: await readFile(join(workspace, 'vault', 'inner'), 'utf8'),
    key: await readFile(join(workspace, 'nested', 'deeper', 'key'), 'utf8'),
    innerKey: await readFile(join(workspace, 'outer', 'granted', 'inner', 'key'), 'utf8'),
  };
}

const untouched = {
  secret: 'the secret',
  vault: ['inner'],
  inner: 'in the vault',
  key: 'the key',
  innerKey: 'the inner key',
};

describe('process tier: a denied path the host creates inside a grant while the sandbox runs', () => {
  // Neither exists at launch, so namespace mode has no mask over them: its mounts show the host live.
  for (const mode of ['namespace', 'shim-only'] as const) {
    // An unprivileged caller without a delegated cgroup cannot run shim-only mode at all (its timeout
    // could not reach a setsid descendant): the tier refuses it, so that mode runs as root here.
    it.skipIf(mode === 'shim-only' && !isRoot)(
      `stays unreadable, in the writable workdir and in a read grant (${mode} mode)`,
      async () => {
        const workspace = await mkdtemp(join(WORKSPACE_PARENT, WORKSPACE_PREFIX));
        try {
          await chmod(workspace, 0o777);
          await mkdir(join(workspace, 'shared'), { mode: 0o755 });
          const later = [join(workspace, '.env'), join(workspace, 'shared', '.env')];
          const capabilities = capabilitiesFor(workspace, (base) => ({
            ...base,
            filesystem: {
              ...base.filesystem,
              read: [...base.filesystem.read, join(workspace, 'shared')],
              deny: [...base.filesystem.deny, ...later],
            },
            process: { ...base.process, maxProcesses: Number.POSITIVE_INFINITY },
          }));
          // The payload waits for each file to appear (stat is not refused), then tries to read it.
          const script = [
            'for f in .env shared/.env; do',
            'i=0; while [ ! -e "$f" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done;',
            'if cat "$f" 2>/dev/null; then echo "$f READ"; else echo "$f refused"; fi;',
            'done',
          ].join(' ');
          const created = delay(300).then(async () => {
            for (const path of later) await writeFile(path, 'written by the host later\n', { mode: 0o644 });
          });
          const result = await run({
            command: ['/bin/sh', '-c', script],
            capabilities,
            providers: [createProcessProvider({ mode })],
            tier: 'process',
          });
          await created;
          expect(result.stdout).not.toContain('written by the host later');
          expect(result.stdout.trim().split('\n')).toEqual(['.env refused', 'shared/.env refused']);
        } finally {
          await rm(workspace, { recursive: true, force: true });
        }
      },
    );
  }
});

describe('process tier, namespace mode: denied paths inside a write-granted workdir', () => {
  const workspaces: string[] = [];
  afterAll(async () => {
    for (const workspace of workspaces) await rm(workspace, { recursive: true, force: true });
  });

  it('lets the payload create, rename and remove files in its workdir beside the denied paths', async () => {
    const { workspace, capabilities } = await workspaceWithDenies();
    workspaces.push(workspace);
    const id = `namespace-denies-${uniqueMarker().slice(-12)}`;
    const result = await run({
      providers: [createProcessProvider({ mode: 'namespace' })],
      tier: 'process',
      capabilities,
      command: ['sh', '-c', CREATES],
      id,
    });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('created-ok');
    expect(result.exitCode).toBe(0);
    expect(await readFile(join(workspace, 'made-folder', 'file'), 'utf8')).toBe('made\n');
    expect(existsSync(join(workspace, 'renamed'))).toBe(false);
    expect(await readFile(join(workspace, 'nested', 'beside'), 'utf8')).toBe('beside\n');
    expect(await readFile(join(workspace, 'outer', 'granted', 'beside'), 'utf8')).toBe('beside\n');
    // No grant was split to keep the denies: the sandbox says nothing about one.
    expect(result.warnings.join('\n')).not.toMatch(/split|nothing new can be created/);
    expect(await hostContents(workspace)).toEqual(untouched);
    expect(await leftovers(id)).toEqual([]);
  });

  it('refuses every way at the denied file, folder and nested file, and leaves them as they were', async () => {
    const { workspace, capabilities } = await workspaceWithDenies();
    workspaces.push(workspace);
    const result = await run({
      providers: [createProcessProvider({ mode: 'namespace' })],
      tier: 'process',
      capabilities,
      command: [PYTHON, '-c', ATTACKS],
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    // Every attempt ran and said how it ended.
    expect(lines).toHaveLength(ATTACKS.split('attempt(').length - 2);
    expect(lines.filter((line) => !/^\S+ refused [A-Z]+$/.test(line))).toEqual([]);
    expect(await hostContents(workspace)).toEqual(untouched);
    // Nothing was moved or planted where a denied path was.
    expect(existsSync(join(workspace, 'secret-moved'))).toBe(false);
    expect(existsSync(join(workspace, 'secret-linked'))).toBe(false);
    expect(existsSync(join(workspace, 'vault-moved'))).toBe(false);
    expect(existsSync(join(workspace, 'nested-moved'))).toBe(false);
    expect(existsSync(join(workspace, 'outer-moved'))).toBe(false);
  });
});

// The tier binds a root caller's grants from id-mapped copies and an unprivileged caller's as they
// are: this file again as a throwaway account covers the second. Making the account takes root; an
// unprivileged caller running the suite is already that case.
describe.skipIf(!isRoot)('process tier, namespace mode: denied paths, as an unprivileged caller', () => {
  const user = `bhnd${process.pid}`;
  let home = '';

  beforeAll(async () => {
    // Accounts of an earlier run that was killed before its cleanup.
    for (const line of execFileSync('getent', ['passwd']).toString().split('\n')) {
      const stale = /^(bhnd(\d+)):/.exec(line);
      if (stale && !ownerProcessAlive(Number(stale[2]))) execFileSync('userdel', ['-r', stale[1]!]);
    }
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    home = await mkdtemp(join(tmpdir(), 'bulkhead-namespace-denies-'));
    await chown(home, uid, uid);
  });

  afterAll(async () => {
    const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    for (const pid of processesOfUid(uid)) process.kill(pid, 'SIGKILL');
    try {
      execFileSync('userdel', ['-r', user], { stdio: 'ignore' });
    } catch {
      // No home folder was made, so userdel -r reports it; the account is gone all the same.
    }
    await rm(home, { recursive: true, force: true });
    await rm(join(tmpdir(), `bulkhead-${uid}`), { recursive: true, force: true });
    // The workspaces the account made (each test removes its own; a failed one may not have).
    for (const entry of await readdir(WORKSPACE_PARENT)) {
      if (!entry.startsWith(WORKSPACE_PREFIX)) continue;
      const path = join(WORKSPACE_PARENT, entry);
      if ((await stat(path)).uid === uid) await rm(path, { recursive: true, force: true });
    }
    expect(execFileSync('getent', ['passwd']).toString()).not.toContain(`${user}:`);
  });

  it('passes the same tests', async () => {
    const report = await runVitestAsUser({
      user,
      home,
      packageDirectory,
      files: ['src/namespace-denies.test.ts'],
      timeoutMs: 240_000,
    });
    expect(failedTests(report)).toEqual([]);
    expect(report.numPassedTests).toBe(3);
  }, 300_000);
});
