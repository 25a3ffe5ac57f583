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

/**
 * A subject whose run() is a fake seam: it records the order of calls (and, given `commands`, each
 * command) and answers at once, with `stdout` (a workload's timing, say).
 */
function fakeSubject(
  id: string,
  calls: string[],
  options: { limits?: Subject['limits']; stdout?: string; commands?: string[][] } = {},
): PreparedSubject {
  const subject: Subject = {
    id,
    label: id,
    family: id === 'bare' ? 'baseline' : 'bulkhead',
    group: id,
    scope: 'in-process',
    description: id,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    version: async () => undefined,
    prepare: async () => session,
  };
  const session: SubjectSession = {
    run: async (command) => {
      calls.push(id);
      options.commands?.push(command);
      return { exitCode: 0, stdout: options.stdout ?? '' };
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
      bench([fakeSubject('bare', calls), fakeSubject('vm', calls, { limits: { runs: 2, warmup: 0 } })], 5),
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

describe('measureCpu (fake run() seam)', () => {
  it('runs each round of the syscall-heavy job with the same held files on both sides, and new ones each round', async () => {
    const calls: string[] = [];
    const commands: string[][] = [];
    const timing = { stdout: '1000000\n', commands };
    const runs = SYSCALL_JOB_HELD_FILES_CYCLE;
    const options = { ...parseBenchOptions(['--runs', String(runs * 3)]), cpuRuns: runs };
    const figures = await measureCpu({
      ...bench([fakeSubject('bare', calls, timing), fakeSubject('tier', calls, timing)], runs),
      options,
    });
    expect(figures.map(({ job, ratio }) => [job, ratio])).toEqual([
      ['cpu-bound', 1],
      ['syscall-heavy', 1],
    ]);
    const syscallRuns = commands.flatMap((command, index) =>
      command[1] === 'syscalls' ? [{ id: calls[index], command }] : [],
    );
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
