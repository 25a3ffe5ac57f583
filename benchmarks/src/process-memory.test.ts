import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMeasurementCgroup,
  descendantsOf,
  listProcesses,
  memoryByName,
  ownMemoryCgroup,
  parseProcessStat,
  pssBytes,
} from './process-memory.js';
import { commandLine } from './subjects.js';

describe('parseProcessStat', () => {
  it('reads pid, parent and a name that holds spaces and parentheses', () => {
    expect(parseProcessStat('4242 (my (odd) name) S 17 4242 4242 0 -1 4194560')).toEqual({
      pid: 4242,
      parentPid: 17,
      name: 'my (odd) name',
    });
  });

  it('returns undefined for text that is not a stat line', () => {
    expect(parseProcessStat('garbage')).toBeUndefined();
  });
});

describe('process tree and PSS (real /proc)', () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  it('finds a grandchild under this process and weighs it', async () => {
    const child = spawn('/bin/sh', ['-c', '/bin/sleep 30 & wait'], { stdio: 'ignore' });
    children.push(child);
    let sleeper: { pid: number } | undefined;
    for (let attempt = 0; attempt < 100 && !sleeper; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      sleeper = descendantsOf(process.pid, listProcesses()).find((entry) => entry.name === 'sleep');
    }
    expect(sleeper).toBeDefined();
    const shell = descendantsOf(process.pid, listProcesses()).find((entry) => entry.pid === child.pid);
    expect(shell?.name).toBe('sh');
    expect(pssBytes(sleeper!.pid)).toBeGreaterThan(0);
    const byName = memoryByName(descendantsOf(child.pid!, listProcesses()));
    expect(byName.map((entry) => entry.name)).toEqual(['sleep']);
    process.kill(sleeper!.pid, 'SIGKILL');
  });

  it('has no PSS for a process that does not exist', () => {
    expect(pssBytes(2 ** 22 + 1)).toBeUndefined();
  });
});

describe('commandLine', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(commandLine(['/bin/echo', 'a-b_c', 'two words', "it's"])).toBe(
      `/bin/echo a-b_c 'two words' 'it'\\''s'`,
    );
  });
});

// The measurement cgroup needs a writable memory controller (root on v1, or a delegated v2 subtree);
// where there is none the benchmark reports the charged figures as not measured, and so do these.
const cgroupAvailable = ownMemoryCgroup() !== undefined && process.getuid?.() === 0;

describe.skipIf(!cgroupAvailable)(
  'measurement cgroup (real cgroups, needs root and a memory controller)',
  () => {
    it('sees what a worker left behind, kills it and removes itself, nested cgroups included', async () => {
      const cgroup = await createMeasurementCgroup();
      if (typeof cgroup === 'string') throw new Error(cgroup);
      const child = spawn('/bin/sleep', ['30'], { stdio: 'ignore', detached: true });
      await new Promise((resolve) => child.once('spawn', resolve));
      await mkdir(path.join(cgroup.directory, 'nested-by-a-tier'));
      await cgroup.add(child.pid!);
      expect((await cgroup.remaining()).map((entry) => entry.pid)).toEqual([child.pid]);
      expect(await cgroup.chargedBytes()).toBeGreaterThanOrEqual(0);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await cgroup.remove();
      await exited;
      expect(existsSync(cgroup.directory)).toBe(false);
    });
  },
);
