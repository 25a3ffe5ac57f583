import { describe, expect, it } from 'vitest';
import { parseBenchOptions } from './options.js';
import { allSubjects, selectSubjects } from './subjects.js';

describe('bench options', () => {
  it('runs everything in full by default', () => {
    const options = parseBenchOptions([]);
    expect(options.quick).toBe(false);
    expect(options.measurements).toEqual(['launch', 'cold', 'memory', 'cpu', 'concurrency', 'network']);
    expect(options.concurrencyLevels).toEqual([10, 50, 100]);
    expect(options.tiers).toBeUndefined();
  });

  it('--quick runs fewer samples and concurrency 10 only', () => {
    const full = parseBenchOptions([]);
    const quick = parseBenchOptions(['--quick']);
    expect(quick.runs).toBeLessThan(full.runs);
    expect(quick.coldRuns).toBeLessThan(full.coldRuns);
    expect(quick.concurrencyLevels).toEqual([10]);
  });

  it('selects measurements, tiers, peers and run counts', () => {
    const options = parseBenchOptions([
      '--only',
      'launch,memory',
      '--tier',
      'process',
      '--peers',
      'mxc,srt',
      '--runs',
      '12',
    ]);
    expect(options.measurements).toEqual(['launch', 'memory']);
    expect(options.tiers).toEqual(['process']);
    expect(options.peers).toEqual(['mxc', 'srt']);
    expect(options.runs).toBe(12);
    expect(options.coldRuns).toBe(4);
  });

  it('refuses an unknown measurement, naming the known ones', () => {
    expect(() => parseBenchOptions(['--only', 'launch,speed'])).toThrow(
      /unknown measurement 'speed'. Known: launch, cold/,
    );
  });

  it('refuses a run count that is not a positive whole number', () => {
    expect(() => parseBenchOptions(['--runs', '0'])).toThrow(/--runs takes a whole number/);
    expect(() => parseBenchOptions(['--runs', 'many'])).toThrow(/--runs takes a whole number/);
  });

  it('refuses an unknown flag with a pointer to --help', () => {
    expect(() => parseBenchOptions(['--fast'])).toThrow(/--help/);
  });
});

describe('subject selection', () => {
  const ids = (subjects: { id: string }[]) => subjects.map((subject) => subject.id);

  it('keeps every subject without a selection, the bare baseline first', () => {
    const all = allSubjects();
    expect(ids(selectSubjects(all, {}))).toEqual(ids(all));
    expect(all[0]?.id).toBe('bare');
  });

  it('--peers keeps the named peers, every Bulkhead tier and the baselines', () => {
    const selected = ids(selectSubjects(allSubjects(), { peers: ['mxc'] }));
    expect(selected).toContain('bare');
    expect(selected).toContain('mxc');
    expect(selected).toContain('process-namespace');
    expect(selected).not.toContain('bwrap');
    expect(selected).not.toContain('srt');
  });

  it('--tier keeps the named tiers only, and never drops the baseline', () => {
    const selected = ids(selectSubjects(allSubjects(), { tiers: ['none'], peers: [] }));
    expect(selected).toEqual(['bare', 'none', 'node-start']);
  });

  it('gives every subject a unique id', () => {
    const all = ids(allSubjects());
    expect(new Set(all).size).toBe(all.length);
  });
});
