import { describe, expect, it } from 'vitest';
import {
  type Bench,
  measureCpu,
  measureLaunch,
  type PreparedSubject,
  SYSCALL_JOB_HELD_FILES_CYCLE,
} from './measurements.js';
import { parseBenchOptions } from './options.js';
import { Progress } from './progress.js';
import type { Subject, SubjectSession } from './subject.js';

/** A subject whose run() is a fake seam: it records the order of calls and answers at once. */
function fakeSubject(id: string, calls: string[], limits?: Subject['limits']): PreparedSubject {
  const subject: Subject = {
    id,
    label: id,
    family: id === 'bare' ? 'baseline' : 'bulkhead',
    group: id,
    scope: 'in-process',
    description: id,
    ...(limits === undefined ? {} : { limits }),
    version: async () => undefined,
    prepare: async () => session,
  };
  const session: SubjectSession = {
    run: async () => {
      calls.push(id);
      return { exitCode: 0, stdout: '' };
    },
    streamingUnavailable: 'fake subject',
    close: async () => {},
  };
  return { subject, session };
}

function bench(prepared: PreparedSubject[], runs: number): Bench {
  const options = { ...parseBenchOptions(['--runs', String(runs)]), warmup: 1 };
  const quiet = new Progress({ write: () => true, isTTY: false } as unknown as NodeJS.WriteStream);
  return {
    options,
    context: { repositoryRoot: '/', workloadPath: '/bin/true', workloadDirectory: '/bin' },
    progress: quiet,
    prepared,
    omissions: [],
  };
}

describe('measureLaunch (fake run() seam)', () => {
  it('interleaves subjects, discards warm-up runs and keeps the counted ones', async () => {
    const calls: string[] = [];
    const figures = await measureLaunch(bench([fakeSubject('bare', calls), fakeSubject('tier', calls)], 4));
    expect(calls).toEqual(['bare', 'tier', 'bare', 'tier', 'bare', 'tier', 'bare', 'tier', 'bare', 'tier']);
    expect(figures.map((figure) => [figure.subject, figure.exit?.samples.length])).toEqual([
      ['bare', 4],
      ['tier', 4],
    ]);
    expect(figures[0]?.exitRatio).toBe(1);
  });

  it('gives a slow subject only its capped runs, still interleaved with the others', async () => {
    const calls: string[] = [];
    const figures = await measureLaunch(
      bench([fakeSubject('bare', calls), fakeSubject('vm', calls, { runs: 2, warmup: 0 })], 5),
    );
    expect(calls.filter((id) => id === 'vm')).toHaveLength(2);
    expect(calls.slice(0, 5)).toEqual(['bare', 'bare', 'vm', 'bare', 'vm']);
    expect(figures.find((figure) => figure.subject === 'vm')?.exit?.samples).toHaveLength(2);
    expect(figures.find((figure) => figure.subject === 'bare')?.exit?.samples).toHaveLength(5);
  });

  it('says why a subject without a streaming API has no first-byte figure', async () => {
    const prepared = [fakeSubject('bare', []), fakeSubject('tier', [])];
    const measured = bench(prepared, 2);
    await measureLaunch(measured);
    expect(measured.omissions).toContainEqual({
      measurement: 'launch',
      subject: 'tier',
      reason: 'first byte not measurable: fake subject',
    });
  });

  it('reports a subject whose every launch fails, with the failure', async () => {
    const failing = fakeSubject('broken', []);
    failing.session.run = async () => ({ exitCode: 3, stdout: 'no' });
    const measured = bench([fakeSubject('bare', []), failing], 3);
    const figures = await measureLaunch(measured);
    expect(figures.find((figure) => figure.subject === 'broken')?.exit).toBeUndefined();
    expect(
      measured.omissions.find(
        (omission) => omission.subject === 'broken' && /every launch failed/.test(omission.reason),
      )?.reason,
    ).toMatch(/exited with 3/);
  });
});

/** A subject whose run() records each command and answers like the workload: a timing in nanoseconds. */
function timingSubject(id: string, commands: { id: string; command: string[] }[]): PreparedSubject {
  const subject: Subject = {
    id,
    label: id,
    family: id === 'bare' ? 'baseline' : 'bulkhead',
    group: id,
    scope: 'in-process',
    description: id,
    version: async () => undefined,
    prepare: async () => session,
  };
  const session: SubjectSession = {
    run: async (command) => {
      commands.push({ id, command });
      return { exitCode: 0, stdout: '1000000\n' };
    },
    streamingUnavailable: 'fake subject',
    close: async () => {},
  };
  return { subject, session };
}

describe('measureCpu (fake run() seam)', () => {
  it('runs each round of the syscall-heavy job with the same held files on both sides, and new ones each round', async () => {
    const commands: { id: string; command: string[] }[] = [];
    const runs = SYSCALL_JOB_HELD_FILES_CYCLE;
    const options = { ...parseBenchOptions(['--runs', String(runs * 3)]), cpuRuns: runs };
    const figures = await measureCpu({
      ...bench([timingSubject('bare', commands), timingSubject('tier', commands)], runs),
      options,
    });
    expect(figures.map(({ job, ratio }) => [job, ratio])).toEqual([
      ['cpu-bound', 1],
      ['syscall-heavy', 1],
    ]);
    const syscallRuns = commands.filter(({ command }) => command[1] === 'syscalls');
    // One warm-up round, then the counted ones; each round is bare then the sandbox.
    expect(syscallRuns).toHaveLength(2 * (runs + 1));
    const heldPerRound: string[] = [];
    for (let index = 0; index < syscallRuns.length; index += 2) {
      const [outside, inside] = [syscallRuns[index]!, syscallRuns[index + 1]!];
      expect([outside.id, inside.id]).toEqual(['bare', 'tier']);
      expect(inside.command).toEqual(outside.command);
      heldPerRound.push(inside.command[4]!);
    }
    expect(new Set(heldPerRound.slice(1)).size).toBe(SYSCALL_JOB_HELD_FILES_CYCLE);
  });
});
