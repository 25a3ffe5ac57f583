/**
 * The statistics every figure goes through: a benchmark number is a median of counted runs after
 * warm-up, shown with its p95 and range, and flagged when its spread is too wide to trust.
 */

export interface Summary {
  count: number;
  median: number;
  p95: number;
  min: number;
  max: number;
  /** First and third quartiles. */
  q1: number;
  q3: number;
  /** Interquartile range, q3 - q1. */
  iqr: number;
  /** True when the spread is too wide for the median to be trusted; see `spreadReasons`. */
  noisy: boolean;
  spreadReasons: string[];
}

/** Beyond these, a figure is reported as noisy (a warning, never a failure). */
export const SPREAD_LIMITS = {
  /** p95 / median. */
  p95OverMedian: 2,
  /** IQR / median. */
  iqrOverMedian: 0.5,
  /** Fewer counted samples than this cannot show their spread. */
  minimumSamples: 3,
} as const;

function sorted(samples: readonly number[]): number[] {
  const finite = samples.filter((sample) => Number.isFinite(sample));
  if (finite.length === 0) throw new RangeError('no finite samples to summarise');
  return finite.sort((a, b) => a - b);
}

/**
 * The q-quantile (0..1) with linear interpolation between closest ranks (the R-7 / NumPy default),
 * so that the p95 of few samples lies between the two largest instead of jumping to the maximum.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be within 0..1, got ${q}`);
  const values = sorted(samples);
  const position = (values.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const low = values[lower]!;
  const high = values[upper]!;
  return low + (high - low) * (position - lower);
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

export function p95(samples: readonly number[]): number {
  return quantile(samples, 0.95);
}

/** Why a set of samples is too spread out to trust its median; empty when it can be trusted. */
export function spreadReasons(samples: readonly number[]): string[] {
  const values = sorted(samples);
  const reasons: string[] = [];
  if (values.length < SPREAD_LIMITS.minimumSamples) {
    reasons.push(`only ${values.length} sample(s)`);
    return reasons;
  }
  const middle = median(values);
  if (middle <= 0) return reasons;
  const tail = p95(values) / middle;
  if (tail > SPREAD_LIMITS.p95OverMedian) reasons.push(`p95 is ${tail.toFixed(1)}x the median`);
  const interquartile = (quantile(values, 0.75) - quantile(values, 0.25)) / middle;
  if (interquartile > SPREAD_LIMITS.iqrOverMedian) {
    reasons.push(`IQR is ${(interquartile * 100).toFixed(0)}% of the median`);
  }
  return reasons;
}

/**
 * A CPU ratio whose back-to-back pairs spread wider than this (IQR of inside/outside) cannot tell a
 * 5% overhead from the machine's own drift: it is noisy, whatever each side's spread.
 */
export const PAIR_RATIO_IQR_LIMIT = 0.05;

/** Is a CPU figure too noisy to judge: either side spread out, or its pairs disagreeing? */
export function cpuFigureNoisy(figure: {
  inside: { summary: Summary };
  outside: { summary: Summary };
  pairRatios?: Summary;
}): boolean {
  return (
    figure.inside.summary.noisy ||
    figure.outside.summary.noisy ||
    (figure.pairRatios !== undefined && figure.pairRatios.iqr > PAIR_RATIO_IQR_LIMIT)
  );
}

export function summarize(samples: readonly number[]): Summary {
  const values = sorted(samples);
  const q1 = quantile(values, 0.25);
  const q3 = quantile(values, 0.75);
  const reasons = spreadReasons(values);
  return {
    count: values.length,
    median: median(values),
    p95: p95(values),
    min: values[0]!,
    max: values[values.length - 1]!,
    q1,
    q3,
    iqr: q3 - q1,
    noisy: reasons.length > 0,
    spreadReasons: reasons,
  };
}

/** A figure as a multiple of the baseline measured in the same run; undefined when either is missing. */
export function ratio(value: number | undefined, baseline: number | undefined): number | undefined {
  if (value === undefined || baseline === undefined || !(baseline > 0) || !Number.isFinite(value))
    return undefined;
  return value / baseline;
}

export interface ScheduledRun<T> {
  /** 0-based; rounds below `warmup` are not counted. */
  round: number;
  warmup: boolean;
  subject: T;
}

/**
 * The order in which compared subjects run: round-robin (A B C A B C ...), so that drift of the
 * machine (another job starting, thermal throttling, page cache) hits every subject alike instead of
 * landing on whichever ran last. Warm-up rounds come first and are interleaved the same way.
 */
export function interleave<T>(subjects: readonly T[], runs: number, warmup = 0): ScheduledRun<T>[] {
  if (!Number.isInteger(runs) || runs < 0) throw new RangeError(`runs must be a whole number, got ${runs}`);
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new RangeError(`warm-up runs must be a whole number, got ${warmup}`);
  const schedule: ScheduledRun<T>[] = [];
  for (let round = 0; round < warmup + runs; round++) {
    for (const subject of subjects) schedule.push({ round, warmup: round < warmup, subject });
  }
  return schedule;
}
