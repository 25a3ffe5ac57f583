import { describe, expect, it } from 'vitest';
import { interleave, median, p95, quantile, ratio, spreadReasons, summarize } from './statistics.js';

describe('median', () => {
  it('is the middle sample of an odd count, whatever the order', () => {
    expect(median([9, 1, 5])).toBe(5);
  });

  it('is the mean of the two middle samples of an even count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('ignores samples that are not finite numbers', () => {
    expect(median([1, Number.NaN, 3, Number.POSITIVE_INFINITY])).toBe(2);
  });

  it('refuses an empty sample set instead of inventing a figure', () => {
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('p95', () => {
  it('interpolates between the closest ranks', () => {
    // 20 samples 1..20: rank (20-1)*0.95 = 18.05 -> between 19 and 20.
    const samples = Array.from({ length: 20 }, (_, index) => index + 1);
    expect(p95(samples)).toBeCloseTo(19.05, 10);
  });

  it('of a single sample is that sample', () => {
    expect(p95([7])).toBe(7);
  });

  it('lies between the median and the maximum', () => {
    const samples = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9];
    expect(p95(samples)).toBeGreaterThanOrEqual(median(samples));
    expect(p95(samples)).toBeLessThanOrEqual(9);
  });

  it('refuses quantiles outside 0..1', () => {
    expect(() => quantile([1, 2], 1.5)).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('reports median, p95, range and quartiles of the samples', () => {
    const summary = summarize([10, 12, 11, 13, 14]);
    expect(summary).toMatchObject({
      count: 5,
      median: 12,
      min: 10,
      max: 14,
      q1: 11,
      q3: 13,
      iqr: 2,
      noisy: false,
    });
    expect(summary.spreadReasons).toEqual([]);
  });
});

describe('spread flag', () => {
  it('trusts a tight set of samples', () => {
    expect(spreadReasons([10, 10.5, 11, 10.2, 10.8, 10.1, 10.4])).toEqual([]);
  });

  it('flags a long tail: p95 more than twice the median', () => {
    const samples = [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 80, 90];
    const reasons = spreadReasons(samples);
    expect(reasons.some((reason) => reason.startsWith('p95 is'))).toBe(true);
    expect(summarize(samples).noisy).toBe(true);
  });

  it('flags a wide middle: IQR beyond half the median', () => {
    const reasons = spreadReasons([5, 10, 15, 20, 25]);
    expect(reasons.some((reason) => reason.startsWith('IQR is'))).toBe(true);
  });

  it('flags too few samples to show a spread', () => {
    expect(spreadReasons([1, 1])).toEqual(['only 2 sample(s)']);
  });
});

describe('ratio', () => {
  it('divides by the baseline of the same run', () => {
    expect(ratio(15, 5)).toBe(3);
  });

  it('is undefined without a usable baseline', () => {
    expect(ratio(15, undefined)).toBeUndefined();
    expect(ratio(15, 0)).toBeUndefined();
    expect(ratio(undefined, 5)).toBeUndefined();
  });
});

describe('interleave', () => {
  it('alternates the subjects round by round (A B A B ...)', () => {
    const order = interleave(['A', 'B'], 3).map((run) => run.subject);
    expect(order).toEqual(['A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('never runs one subject twice in a row when there are several', () => {
    const order = interleave(['A', 'B', 'C'], 5, 2).map((run) => run.subject);
    for (let index = 1; index < order.length; index++) expect(order[index]).not.toBe(order[index - 1]);
  });

  it('puts warm-up rounds first, marked, and counts the rest', () => {
    const schedule = interleave(['A', 'B'], 2, 1);
    expect(schedule.map((run) => [run.subject, run.warmup])).toEqual([
      ['A', true],
      ['B', true],
      ['A', false],
      ['B', false],
      ['A', false],
      ['B', false],
    ]);
    expect(schedule.filter((run) => !run.warmup && run.subject === 'A')).toHaveLength(2);
  });

  it('refuses a run count that is not a whole number', () => {
    expect(() => interleave(['A'], 2.5)).toThrow(RangeError);
    expect(() => interleave(['A'], 2, -1)).toThrow(RangeError);
  });
});
