import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerIsRoot } from './test-support.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
const driver = fileURLToPath(new URL('./fixtures/subordinate-driver.ts', import.meta.url));
const SUBORDINATE_FIRST = 1_700_000_000;

// Creating an account with subordinate ids needs root; the tests then run as that account.
describe.skipIf(!callerIsRoot)('an unprivileged caller with subordinate ids', () => {
  const name = `bhsub${process.pid}`;
  let folder: string;
  let uid: number;

  function asUser(...argv: string[]): Record<string, unknown> {
    const run = spawnSync(
      'runuser',
      ['-u', name, '--', viteNode, '--config', 'vitest.config.ts', driver, ...argv],
      {
        cwd: packageDirectory,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const line = run.stdout.trim().split('\n').at(-1) ?? '';
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`the driver printed no result: ${run.stdout}\n${run.stderr}`);
    }
  }

  beforeAll(async () => {
    execFileSync('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', name]);
    // useradd may already have given a range: replace it with one far from every other.
    execFileSync('sed', ['-i', `/^${name}:/d`, '/etc/subuid', '/etc/subgid']);
    execFileSync('usermod', [
      '--add-subuids',
      `${SUBORDINATE_FIRST}-${SUBORDINATE_FIRST + 65_535}`,
      '--add-subgids',
      `${SUBORDINATE_FIRST}-${SUBORDINATE_FIRST + 65_535}`,
      name,
    ]);
    uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    // vite-node writes its bundled config next to the package's node_modules.
    await mkdir(join(packageDirectory, 'node_modules', '.vite-temp'), { recursive: true });
    await chmod(join(packageDirectory, 'node_modules', '.vite-temp'), 0o1777);
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-subordinate-'));
    await chmod(folder, 0o777);
  });
  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
    execFileSync('userdel', ['--remove', name], { stdio: 'ignore' });
    execFileSync('sed', ['-i', `/^${name}:/d`, '/etc/subuid', '/etc/subgid']);
  });

  it('says in the probe whether the tier can run, and otherwise refuses to launch (fail closed)', () => {
    const result = asUser('probe', folder);
    expect(result.range).toEqual({ firstUid: SUBORDINATE_FIRST, firstGid: SUBORDINATE_FIRST, count: 65_536 });
    if (result.available) {
      expect(result.launch).toBe('ran');
      return;
    }
    expect(result.launch).toBe('TIER_UNAVAILABLE');
    expect(String(result.reason)).not.toBe('');
    expect(String(result.fix)).not.toBe('');
    expect(result.identity).toMatchObject({ enforced: false, reason: result.reason });
    // Where the controllers are cgroup v1 (this host), the kernel's migration rule is what stops it.
    if (String(result.cgroupPids).startsWith('v1')) {
      expect(String(result.reason)).toMatch(
        /cgroup v1 .*lets an unprivileged caller move only its own processes/,
      );
    }
  });

  it("runs bubblewrap as a subordinate uid/gid through newuidmap, with none of the caller's groups", async () => {
    const result = asUser('switch', folder);
    expect(result.switch).toMatchObject({ usable: true });
    expect(result.status, String(result.stderr)).toBe(0);
    expect(String(result.stdout).trim().split('\n')).toEqual([
      String(SUBORDINATE_FIRST),
      String(SUBORDINATE_FIRST),
    ]);
    // From the host, what it made is the subordinate uid's, not the caller's.
    expect((await stat(join(folder, 'by-sandbox'))).uid).toBe(SUBORDINATE_FIRST);
    expect((await lstat(join(folder, 'link'))).uid).toBe(SUBORDINATE_FIRST);
  });

  it('gives the caller back what the subordinate uid wrote, never following a symbolic link', async () => {
    const result = asUser('return', folder);
    expect(result.returned).toBe(true);
    for (const path of ['by-sandbox', 'folder', 'folder/file']) {
      const status = await stat(join(folder, path));
      expect({ path, uid: status.uid, gid: status.gid }).toEqual({
        path,
        uid,
        gid: uid === 0 ? 0 : status.gid,
      });
      expect(status.gid).not.toBe(SUBORDINATE_FIRST);
    }
    // The link itself changed hands; its target (root's) did not.
    expect((await lstat(join(folder, 'link'))).uid).toBe(uid);
    expect((await stat('/etc/hostname')).uid).toBe(0);
  });
});
