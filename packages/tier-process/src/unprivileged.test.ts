import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { failedTests, runVitestAsUser as runVitestAs } from '@bulkhead/conformance/corpus';
import { ownerProcessAlive, readCgroupLayout } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesOfUid } from './test-support.js';

const isRoot = process.getuid?.() === 0;
const packageDirectory = dirname(dirname(fileURLToPath(import.meta.url)));

// Making a throwaway account and delegating cgroups to it takes root. An unprivileged caller running
// the normal suite is already the unprivileged case this file sets up.
describe.skipIf(!isRoot)('the process tier as an unprivileged user', () => {
  const user = `bhtp${process.pid}`;
  let home = '';
  let uid = 0;
  const delegated: string[] = [];

  beforeAll(async () => {
    // Accounts of an earlier run that was killed before its cleanup.
    for (const line of execFileSync('getent', ['passwd']).toString().split('\n')) {
      const stale = /^(bhtp(\d+)):/.exec(line);
      if (!stale || ownerProcessAlive(Number(stale[2]))) continue;
      const staleUid = Number(execFileSync('id', ['-u', stale[1]!]).toString().trim());
      for (const pid of processesOfUid(staleUid)) process.kill(pid, 'SIGKILL');
      execFileSync('userdel', [stale[1]!]);
    }
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    home = await mkdtemp(join(tmpdir(), 'bulkhead-unprivileged-'));
    await chown(home, uid, uid);
  });

  afterAll(async () => {
    // A process of the account (a fixture a killed run left) would keep userdel from removing it.
    for (const pid of processesOfUid(uid)) process.kill(pid, 'SIGKILL');
    await undelegate();
    try {
      execFileSync('userdel', ['-r', user], { stdio: 'ignore' });
    } catch {
      // No home folder was made, so userdel -r reports it; the account is gone all the same.
    }
    await rm(home, { recursive: true, force: true });
    await rm(join(tmpdir(), `bulkhead-${uid}`), { recursive: true, force: true });
    await rm(join(tmpdir(), `bulkhead-egress-${uid}`), { recursive: true, force: true });
    expect(execFileSync('getent', ['passwd']).toString()).not.toContain(`${user}:`);
  });

  /**
   * What an administrator does for a user: a cgroup v1 subtree per controller, owned by the user.
   * Once: a test that needs it after another that made it finds it made.
   */
  async function delegate(): Promise<void> {
    if (delegated.length > 0) return;
    const layout = await readCgroupLayout();
    const mountPoints = new Set(Object.values(layout.v1).map((hierarchy) => hierarchy.mountPoint));
    for (const mountPoint of mountPoints) {
      const directory = posix.join(mountPoint, `bulkhead-${user}`);
      await mkdir(directory);
      delegated.push(directory);
      execFileSync('chown', ['-R', user, directory]);
    }
  }

  async function undelegate(): Promise<void> {
    for (const directory of delegated.splice(0)) {
      if (!existsSync(directory)) continue;
      for (const entry of await readdir(directory, { withFileTypes: true })) {
        if (entry.isDirectory()) await rmdir(posix.join(directory, entry.name));
      }
      await rmdir(directory);
    }
  }

  const runVitestAsUser = (files: string[], environment: Record<string, string> = {}) =>
    runVitestAs({ user, home, packageDirectory, files, environment });

  it('passes the conformance suite in both modes, with a delegated cgroup subtree', async () => {
    await delegate();
    const report = await runVitestAsUser([
      'src/conformance-namespace.test.ts',
      'src/conformance-shim-only.test.ts',
    ]);
    expect(failedTests(report)).toEqual([]);
    expect(report.numPassedTests).toBeGreaterThanOrEqual(100);
  }, 600_000);

  // As the caller's own uid, a shim-only sandbox may write what the caller owns: only Landlock keeps a
  // read grant inside a write grant read-only there.
  it('keeps a read grant inside a write grant read-only, existing or not, in both modes', async () => {
    await delegate();
    const report = await runVitestAsUser(['src/nested-grants.test.ts']);
    expect(failedTests(report)).toEqual([]);
    expect(report.numPassedTests).toBe(4);
  }, 300_000);

  it('without a delegated cgroup: RLIMIT_AS stands in for memory, processes.max fails closed with the fix', async () => {
    await undelegate();
    const report = await runVitestAsUser(['src/unprivileged-harness.test.ts'], {
      BULKHEAD_UNPRIVILEGED_HARNESS: 'no-cgroups',
    });
    expect(failedTests(report)).toEqual([]);
    expect(report.numPassedTests).toBe(4);
  }, 300_000);

  it('enforces an allow-list: allowed hosts through the proxy, the rest refused and reported', async () => {
    await delegate();
    // The user's egress sockets (0700 folder of its own) and the tier's runtime folder (0711) apart.
    const report = await runVitestAsUser([
      'src/egress-allowlist.test.ts',
      '-t',
      'over CONNECT|a name off the list|no other way out',
    ]);
    expect(failedTests(report)).toEqual([]);
    // 'over CONNECT' also names the test that a CONNECT download goes around the proxy.
    expect(report.numPassedTests).toBe(4);
  }, 300_000);
});
