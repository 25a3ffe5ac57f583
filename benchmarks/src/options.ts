import { parseArgs } from 'node:util';
import { BulkheadError } from '@bulkhead/core';
import { MEASUREMENTS, type Measurement } from './result.js';

export interface BenchOptions {
  quick: boolean;
  measurements: Measurement[];
  tiers?: string[];
  peers?: string[];
  /** Counted runs per subject for warm launch. */
  runs: number;
  warmup: number;
  coldRuns: number;
  cpuRuns: number;
  memorySandboxes: number;
  concurrencyLevels: number[];
  cpuIterations: number;
  syscallIterations: number;
  check: boolean;
  baselinePath?: string;
  /** Check or render this result instead of running. */
  fromPath?: string;
  updateReadme: boolean;
  writeBaseline: boolean;
  outputDirectory?: string;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Measures launch, memory, CPU overhead, concurrency and the allow-list's network cost of every
Bulkhead tier beside bare spawn, bubblewrap alone, MXC, sandbox-runtime and QEMU alone, and writes
results/<date>-<host>.{json,md,svg}.

Options:
  --quick              CI mode: fewer runs, concurrency 10 only (a few minutes)
  --only LIST          measurements to run: ${MEASUREMENTS.join(',')}
  --tier LIST          Bulkhead tiers to include (process, session, microvm, none); default all
  --peers LIST         peers to include (bwrap, landlock, mxc, srt, qemu); default all
  --runs N             counted runs per subject for warm launch (cold and CPU scale with it)
  --check              compare the result with the mission targets and the baseline; exit 1 on a miss
  --baseline FILE      baseline for --check (default benchmarks/baseline.json)
  --from FILE          use this result instead of running: render it again, check it, put it in the README
  --write-baseline     save the result as the baseline
  --update-readme      put the latest table and chart into benchmarks/README.md
  --output DIR         where results go (default benchmarks/results)
  --help               this text

Examples:
  npm run bench
  npm run bench -- --quick --check
  npm run bench -- --only launch,memory --tier process --peers bwrap,mxc --runs 50
`;

function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

function positiveInteger(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) {
    throw new BulkheadError(
      'BENCHMARK_INVALID_OPTION',
      `${flag} takes a whole number of at least 1, not '${value}'.`,
      {
        fix: `${flag} 20`,
      },
    );
  }
  return number;
}

const FLAGS = {
  quick: { type: 'boolean' },
  only: { type: 'string' },
  tier: { type: 'string' },
  peers: { type: 'string' },
  runs: { type: 'string' },
  check: { type: 'boolean' },
  baseline: { type: 'string' },
  from: { type: 'string' },
  'write-baseline': { type: 'boolean' },
  'update-readme': { type: 'boolean' },
  output: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: FLAGS, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw new BulkheadError(
      'BENCHMARK_INVALID_OPTION',
      `${(error as Error).message}. Run with --help for the options.`,
      {
        fix: 'npm run bench -- --help',
      },
    );
  }
}

export function parseBenchOptions(argv: string[]): BenchOptions {
  const values = parseFlags(argv);
  const quick = values.quick === true;
  const measurements = (list(values.only) ?? [...MEASUREMENTS]) as Measurement[];
  for (const measurement of measurements) {
    if (!(MEASUREMENTS as readonly string[]).includes(measurement)) {
      throw new BulkheadError(
        'BENCHMARK_INVALID_OPTION',
        `--only: unknown measurement '${measurement}'. Known: ${MEASUREMENTS.join(', ')}.`,
        { fix: `--only ${MEASUREMENTS.slice(0, 2).join(',')}` },
      );
    }
  }
  const runs = values.runs === undefined ? (quick ? 8 : 30) : positiveInteger(values.runs, '--runs');
  const tiers = list(values.tier);
  const peers = list(values.peers);
  return {
    quick,
    measurements,
    ...(tiers === undefined ? {} : { tiers }),
    ...(peers === undefined ? {} : { peers }),
    runs,
    warmup: quick ? 1 : 3,
    coldRuns: values.runs === undefined ? (quick ? 3 : 10) : Math.max(3, Math.round(runs / 3)),
    cpuRuns: values.runs === undefined ? (quick ? 6 : 10) : Math.max(3, Math.round(runs / 3)),
    // The same in both modes: the per-sandbox figure spreads the launcher's growth over them.
    memorySandboxes: 4,
    concurrencyLevels: quick ? [10] : [10, 50, 100],
    cpuIterations: quick ? 50_000_000 : 200_000_000,
    syscallIterations: quick ? 30_000 : 100_000,
    check: values.check === true,
    ...(values.baseline === undefined ? {} : { baselinePath: values.baseline }),
    ...(values.from === undefined ? {} : { fromPath: values.from }),
    updateReadme: values['update-readme'] === true,
    writeBaseline: values['write-baseline'] === true,
    ...(values.output === undefined ? {} : { outputDirectory: values.output }),
    help: values.help === true,
  };
}
