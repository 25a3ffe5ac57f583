import { describe, expect, it } from 'vitest';
import { type Bench, measureLaunch, type PreparedSubject } from './measurements.js';
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
