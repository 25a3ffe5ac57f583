import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The part of vitest's JSON report a suite run as another user is judged by. */
export interface VitestJsonReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

export interface RunVitestAsUserOptions {
  /** The account to run as (`runuser -u`): a throwaway one the calling test made, usually. */
  user: string;
  /** Its home: HOME, and where the report is written (the account must be able to write there). */
  home: string;
  /** The package whose test files are run, the working directory of the run. */
  packageDirectory: string;
  files: string[];
  /** Added to the account's otherwise empty environment (HOME and PATH are set). */
  environment?: Record<string, string>;
  /** Default 540 s: a conformance suite of a slow tier as another user. */
  timeoutMs?: number;
}

/**
 * Runs vitest on some test files as another user and returns its JSON report, so a tier can prove
 * the conformance suite as an unprivileged caller too. Run by root: `runuser` needs it.
 * `--configLoader runner`: vitest cannot write its bundled config into a checkout the user does not own.
 */
export function runVitestAsUser(options: RunVitestAsUserOptions): Promise<VitestJsonReport> {
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const output = join(options.home, `report-${Math.random().toString(36).slice(2)}.json`);
  const variables = Object.entries({
    HOME: options.home,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    ...options.environment,
  }).map(([name, value]) => `${name}=${value}`);
  const argv = ['-u', options.user, '--', 'env', '-i', ...variables, process.execPath, vitest, 'run'];
  argv.push('--configLoader', 'runner', '--reporter=json', `--outputFile=${output}`, ...options.files);
  return new Promise((resolve, reject) => {
    execFile(
      'runuser',
      argv,
      { cwd: options.packageDirectory, timeout: options.timeoutMs ?? 540_000, maxBuffer: 64 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        readFile(output, 'utf8').then(
          (text) => resolve(JSON.parse(text) as VitestJsonReport),
          () =>
            reject(
              new Error(
                `vitest as ${options.user} wrote no report (${error?.message ?? 'no error'}): ${stderr.slice(-3000)}`,
              ),
            ),
        );
      },
    );
  });
}

/** Each failed test of a report as `full name: failure messages`, for an `expect(...).toEqual([])`. */
export function failedTests(report: VitestJsonReport, messageLength = 500): string[] {
  return report.testResults.flatMap((file) =>
    file.assertionResults
      .filter((test) => test.status === 'failed')
      .map((test) => `${test.fullName}: ${test.failureMessages.join(' ').slice(0, messageLength)}`),
  );
}
