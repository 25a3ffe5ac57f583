import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { probeCgroupSupport } from './cgroup-support.js';
import { createSandboxCgroup, reapStaleCgroups, type SandboxCgroup } from './sandbox-cgroup.js';

const support = await probeCgroupSupport();
const writable =
  support.memory !== undefined && support.processes !== undefined && support.kill !== undefined;

/** A shell that waits for one line on stdin before running `script`: placed in the cgroup first. */
function gated(script: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', `read line; ${script}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

function alive(pid: number): boolean {
  const status = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' });
  return status.status === 0 && !/\) Z /.test(status.stdout);
}

async function until(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (await condition()) return;
    await delay(10);
  }
  throw new Error(`timed out waiting until ${what}`);
}

async function withCgroup<T>(
  limits: Parameters<typeof createSandboxCgroup>[0]['limits'],
  body: (cgroup: SandboxCgroup) => Promise<T>,
): Promise<T> {
  const cgroup = await createSandboxCgroup({
    sandboxId: `test-${Math.random().toString(36).slice(2)}`,
    limits,
  });
  try {
    return await body(cgroup);
  } finally {
    await cgroup.remove();
    for (const directory of cgroup.directories)
      expect(existsSync(directory), `${directory} left behind`).toBe(false);
  }
}

// An unprivileged user without a delegated subtree has no writable cgroup: the tier then fails closed,
// which process-provider tests cover. Everything here needs a cgroup to write.
describe.skipIf(!writable)('sandbox cgroups', () => {
  it('says which cgroup version enforces each limit and writes the limits', async () => {
    await withCgroup({ memoryBytes: 64 * 1024 * 1024, maxProcesses: 7, cpus: 0.5 }, async (cgroup) => {
      expect(cgroup.enforcement.memory).toMatch(/^cgroup-v[12]$/);
      expect(cgroup.enforcement.processes).toMatch(/^cgroup-v[12]$/);
      const pidsDirectory = cgroup.directories.find((directory) =>
        existsSync(posix.join(directory, 'pids.max')),
      );
      expect(pidsDirectory).toBeDefined();
      expect((await readFile(posix.join(pidsDirectory!, 'pids.max'), 'utf8')).trim()).toBe('7');
      const memoryDirectory = cgroup.directories.find(
        (directory) =>
          existsSync(posix.join(directory, 'memory.limit_in_bytes')) ||
          existsSync(posix.join(directory, 'memory.max')),
      );
      const limitFile = existsSync(posix.join(memoryDirectory!, 'memory.max'))
        ? 'memory.max'
        : 'memory.limit_in_bytes';
      expect(Number((await readFile(posix.join(memoryDirectory!, limitFile), 'utf8')).trim())).toBe(
        64 * 1024 * 1024,
      );
    });
  });

  it('holds every descendant, setsid ones included, and kills the whole tree', async () => {
    await withCgroup({ maxProcesses: 64 }, async (cgroup) => {
      const child = gated('sleep 60 & setsid sleep 60 & (sleep 60 &) ; echo started; wait');
      await cgroup.addProcess(child.pid!);
      child.stdin!.write('go\n');
      await until(async () => (await cgroup.processes()).length >= 4, 'the tree runs');
      const pids = await cgroup.processes();
      expect(pids).toContain(child.pid);
      await cgroup.kill();
      expect(await cgroup.processes()).toEqual([]);
      for (const pid of pids) await until(() => !alive(pid), `process ${pid} is gone`);
    });
  });

  it('OOM-kills at the memory cap and says so', async () => {
    await withCgroup({ memoryBytes: 32 * 1024 * 1024 }, async (cgroup) => {
      const child = gated(`exec /usr/bin/python3 -c "b = bytearray(256 * 1024 * 1024); print(len(b))"`);
      await cgroup.addProcess(child.pid!);
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.once('exit', (_code, signal) => resolve(signal)),
      );
      child.stdin!.end('go\n');
      expect(await exited).toBe('SIGKILL');
      const statistics = await cgroup.statistics();
      expect(statistics.oomKilled).toBe(true);
      expect(statistics.peakMemoryBytes).toBeGreaterThan(0);
      expect(statistics.peakMemoryBytes).toBeLessThanOrEqual(32 * 1024 * 1024);
    });
  });

  it('refuses forks past the process cap and counts them', async () => {
    await withCgroup({ maxProcesses: 5 }, async (cgroup) => {
      const child = gated('for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; echo done; wait');
      await cgroup.addProcess(child.pid!);
      child.stdin!.end('go\n');
      await until(async () => (await cgroup.statistics()).processLimitHits > 0, 'a fork is refused');
      expect((await cgroup.processes()).length).toBeLessThanOrEqual(5);
      await cgroup.kill();
    });
  });

  it('reports CPU time used by the tree', async () => {
    await withCgroup({}, async (cgroup) => {
      const child = gated('i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done');
      await cgroup.addProcess(child.pid!);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end('go\n');
      await exited;
      const statistics = await cgroup.statistics();
      expect(statistics.cpuMs).toBeGreaterThan(0);
    });
  });

  it('reaps the cgroups of a dead owner, killing what still runs in them', async () => {
    const dead = spawnSync('/bin/sh', ['-c', 'echo $$']);
    const deadPid = Number(dead.stdout.toString().trim());
    const base = support.kill!.base.directory;
    const stale = posix.join(base, `${deadPid}-stale-test`);
    await mkdir(stale);
    const orphan = spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
    await writeFile(posix.join(stale, 'cgroup.procs'), String(orphan.pid));
    const removed = await reapStaleCgroups();
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(existsSync(stale)).toBe(false);
    await until(() => !alive(orphan.pid!), 'the orphan is killed');
  });
});
