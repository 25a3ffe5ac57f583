import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { failedTests, runVitestAsUser } from '@bulkhead/conformance/corpus';
import { readCgroupLayout } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { callerIsRoot } from './test-support.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
const driver = fileURLToPath(new URL('./fixtures/subordinate-driver.ts', import.meta.url));
// Below 2^31: bubblewrap reads ids as a signed int.
const SUBORDINATE_FIRST = 1_700_000_000;
const SUBORDINATE_COUNT = 65_536;

/** What of display `:N` is left on the host: its socket and its lock. */
async function displayLeftovers(display: string): Promise<string[]> {
  const number = /^:(\d+)$/.exec(display)?.[1];
  if (number === undefined) throw new Error(`not a display: ${display}`);
  const paths = [`/tmp/.X11-unix/X${number}`, `/tmp/.X${number}-lock`];
  const present = await Promise.all(
    paths.map((path) =>
      lstat(path).then(
        () => true,
        () => false,
      ),
    ),
  );
  return paths.filter((_, index) => present[index]);
}

/** After the test, whatever it asserted: a failed run leaves no display behind either. */
function removeDisplayAfterTest(display: string): void {
  onTestFinished(async () => {
    for (const path of await displayLeftovers(display)) await rm(path, { force: true });
  });
}

function liveProcessesOf(first: number, count: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const status = readFileSync(`/proc/${entry}/status`, 'utf8');
        const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
        return uid >= first && uid < first + count && !/^State:\s+Z/m.test(status);
      } catch {
        return false;
      }
    })
    .map(Number);
}

// Making an account with subordinate ids and delegating cgroups to it takes root; the tests then run
// as that account, the way a person's own unprivileged harness would.
describe.skipIf(!callerIsRoot)('an unprivileged caller with subordinate ids', () => {
  const name = `bhsub${process.pid}`;
  let home: string;
  let folder: string;
  let uid: number;
  const delegated: string[] = [];

  const driverCommand = (argv: string[]) => [
    '-u',
    name,
    '--',
    'env',
    '-i',
    `HOME=${home}`,
    'PATH=/usr/bin:/bin',
    viteNode,
    '--config',
    'vitest.config.ts',
    driver,
    ...argv,
  ];

  function asUser(...argv: string[]): Record<string, unknown> {
    const run = spawnSync('runuser', driverCommand(argv), {
      cwd: packageDirectory,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const line = run.stdout.trim().split('\n').at(-1) ?? '';
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`the driver printed no result: ${run.stdout}\n${run.stderr}`);
    }
  }

  const vitestAsUser = (files: string[]) =>
    runVitestAsUser({ user: name, home, packageDirectory, files, environment: { PATH: '/usr/bin:/bin' } });

  beforeAll(async () => {
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    // useradd may already have given a range: replace it with one far from every other.
    execFileSync('sed', ['-i', `/^${name}:/d`, '/etc/subuid', '/etc/subgid']);
    const range = `${SUBORDINATE_FIRST}-${SUBORDINATE_FIRST + SUBORDINATE_COUNT - 1}`;
    execFileSync('usermod', ['--add-subuids', range, '--add-subgids', range, name]);
    uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    home = await mkdtemp(join(tmpdir(), 'bulkhead-subordinate-home-'));
    await chown(home, uid, uid);
    // What an administrator does for a user on a cgroup v1 host: a subtree per controller it owns.
    const layout = await readCgroupLayout();
    for (const mountPoint of new Set(Object.values(layout.v1).map((hierarchy) => hierarchy.mountPoint))) {
      const directory = posix.join(mountPoint, `bulkhead-${name}`);
      await mkdir(directory);
      delegated.push(directory);
      execFileSync('chown', ['-R', name, directory]);
    }
    // vite-node writes its bundled config next to the package's node_modules.
    await mkdir(join(packageDirectory, 'node_modules', '.vite-temp'), { recursive: true });
    await chmod(join(packageDirectory, 'node_modules', '.vite-temp'), 0o1777);
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-subordinate-'));
    await chmod(folder, 0o777);
  });
  afterAll(async () => {
    for (const pid of liveProcessesOf(uid, 1)) process.kill(pid, 'SIGKILL');
    // userdel refuses an account whose processes are still dying, and rmdir a cgroup that holds them.
    await vi.waitFor(() => expect(liveProcessesOf(uid, 1)).toEqual([]), { timeout: 10_000, interval: 100 });
    for (const directory of delegated.splice(0)) {
      if (!existsSync(directory)) continue;
      for (const entry of await readdir(directory, { withFileTypes: true })) {
        if (entry.isDirectory()) await rmdir(posix.join(directory, entry.name)).catch(() => {});
      }
      await rmdir(directory).catch(() => {});
    }
    if (folder) await rm(folder, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
    await rm(join(tmpdir(), `bulkhead-${uid}`), { recursive: true, force: true });
    await rm(`/tmp/bulkhead-session-${uid}`, { recursive: true, force: true });
    await rm(join(tmpdir(), `bulkhead-egress-${uid}`), { recursive: true, force: true });
    execFileSync('userdel', [name], { stdio: 'ignore' });
    execFileSync('sed', ['-i', `/^${name}:/d`, '/etc/subuid', '/etc/subgid']);
  });

  it('is available with its subordinate ids and a delegated cgroup subtree', () => {
    const result = asUser('probe', folder);
    expect(result.range).toEqual({
      firstUid: SUBORDINATE_FIRST,
      firstGid: SUBORDINATE_FIRST,
      count: SUBORDINATE_COUNT,
    });
    expect(result.available, String(result.reason)).toBe(true);
    expect(result.identity).toMatchObject({
      enforced: true,
      mechanisms: ['subordinate-ids', 'user-namespace'],
    });
    expect(result.launch).toBe('ran');
  });

  it("runs a session as a subordinate uid, with its own display; what it wrote is the caller's", async () => {
    const result = asUser('session', folder);
    expect(result.exitCode, String(result.stderr)).toBe(0);
    const [sandboxUid, sandboxGid, screens, display = '', socketOwner] = String(result.stdout)
      .trim()
      .split('\n');
    removeDisplayAfterTest(display);
    expect(Number(sandboxUid)).toBeGreaterThanOrEqual(SUBORDINATE_FIRST);
    expect(Number(sandboxUid)).toBeLessThan(SUBORDINATE_FIRST + SUBORDINATE_COUNT);
    expect(sandboxGid).toBe(sandboxUid);
    expect(screens).toBe('1');
    // The X server is the sandbox's own account, not the caller's (whose uid it would see as 65534).
    expect(socketOwner).toBe(sandboxUid);
    // Its socket (the subordinate uid's, in the sticky /tmp/.X11-unix) and lock went with the session.
    expect(await displayLeftovers(display)).toEqual([]);
    expect(result.memory).toEqual(['cgroup-v1']);
    for (const path of ['session-file', 'session-folder', 'session-folder/file']) {
      const status = await stat(join(folder, path));
      expect({ path, uid: status.uid, gid: status.gid }).toEqual({ path, uid, gid: uid });
    }
    expect(liveProcessesOf(SUBORDINATE_FIRST, SUBORDINATE_COUNT)).toEqual([]);
  });

  it("reaps a crashed caller's display: the next session removes the socket its subordinate uid left", async () => {
    const crashing = spawn('runuser', driverCommand(['crash', folder]), {
      cwd: packageDirectory,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    crashing.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise((resolve) => crashing.once('exit', resolve));
    const ready = await new Promise<{ pid: number; uid: number; display: string }>((resolve, reject) => {
      let text = '';
      crashing.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const line = text.split('\n').find((candidate) => candidate.startsWith('{"step":"crash"'));
        if (line) resolve(JSON.parse(line) as { pid: number; uid: number; display: string });
      });
      crashing.once('exit', (code) => reject(new Error(`the driver exited (${code}): ${text}\n${stderr}`)));
    });
    onTestFinished(async () => {
      if (crashing.exitCode === null && crashing.signalCode === null) {
        process.kill(ready.pid, 'SIGKILL');
        await exited;
      }
    });
    removeDisplayAfterTest(ready.display);
    const socket = `/tmp/.X11-unix/X${ready.display.slice(1)}`;
    expect((await lstat(socket)).uid).toBe(ready.uid);
    // The caller dies without disposing: bubblewrap's --die-with-parent ends the sandbox and its X server.
    process.kill(ready.pid, 'SIGKILL');
    await exited;
    await vi.waitFor(() => expect(liveProcessesOf(SUBORDINATE_FIRST, SUBORDINATE_COUNT)).toEqual([]), {
      timeout: 10_000,
      interval: 100,
    });
    expect(await displayLeftovers(ready.display)).toEqual([socket, `/tmp/.X${ready.display.slice(1)}-lock`]);
    // The caller's next session, in another process, reaps what the dead one left.
    expect(asUser('probe', folder).launch).toBe('ran');
    expect(await displayLeftovers(ready.display)).toEqual([]);
  });

  it("runs the next launch in a session prepared for it, as another subordinate uid; the files are the caller's", async () => {
    const result = asUser('prepared', folder);
    const launches = result.launches as {
      startup: string;
      exitCode: number;
      stdout: string;
      stderr: string;
    }[];
    expect(launches.map((launch) => [launch.startup, launch.exitCode])).toEqual([
      ['cold', 0],
      ['warm', 0],
    ]);
    const [first, second] = launches.map((launch) => Number(launch.stdout.trim()));
    expect(first).toBeGreaterThanOrEqual(SUBORDINATE_FIRST);
    expect(second).toBeGreaterThanOrEqual(SUBORDINATE_FIRST);
    expect(second).not.toBe(first);
    for (const name of ['prepared-first', 'prepared-second'])
      expect((await stat(join(folder, name))).uid).toBe(uid);
    // Drained: no process of a subordinate uid is left.
    expect(liveProcessesOf(SUBORDINATE_FIRST, SUBORDINATE_COUNT)).toEqual([]);
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
      expect({ path, uid: status.uid, gid: status.gid }).toEqual({ path, uid, gid: uid });
    }
    // The link itself changed hands; its target (root's) did not.
    expect((await lstat(join(folder, 'link'))).uid).toBe(uid);
    expect((await stat('/etc/hostname')).uid).toBe(0);
  });

  it("grants the caller's sound server socket when its subordinate uid can reach it, and fails closed saying why when not", () => {
    const reachable = asUser('audio', folder, '755');
    expect(reachable.exitCode, String(reachable.stderr ?? reachable.error)).toBe(0);
    expect(reachable.stdout).toBe('pulse-greeting\n');
    expect(reachable.audio).toEqual(['mount-namespace']);
    // A runtime folder private to the caller, as systemd makes it: nothing to bind, and the error says so.
    const closed = asUser('audio', folder, '700');
    expect(closed.code).toBe('UNENFORCEABLE_CAPABILITY');
    expect(closed.error).toMatch(/pulse\/native: a sandbox's uid cannot enter .*runtime-\d+-700/);
  });

  it('passes the conformance suite as that caller', async () => {
    const report = await vitestAsUser(['src/conformance.test.ts']);
    expect(failedTests(report, 1500)).toEqual([]);
    expect(report.numPassedTests).toBeGreaterThanOrEqual(50);
  }, 600_000);
});
