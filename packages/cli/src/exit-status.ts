import { constants } from 'node:os';
import type { SandboxResult } from '@bulkhead/core';

/**
 * The CLI's exit statuses. `run` passes the command's own status through and keeps the band that
 * `timeout(1)`, `env(1)` and POSIX shells use for their own failures, so a caller can tell the two
 * apart.
 */
export const EXIT_STATUS = {
  ok: 0,
  /** A check failed (`manifest check`, `doctor` with no tier available, `init` refused). */
  failure: 1,
  /** The command line itself was wrong (outside `run`). */
  usage: 2,
  /** The sandbox's timeout ended the command. */
  timeout: 124,
  /** Bulkhead refused or failed before or around the command: bad manifest, unenforceable capability, tier unavailable. */
  bulkheadFailure: 125,
  /** The command was found but could not be executed. */
  notExecutable: 126,
  /** The command was not found. */
  notFound: 127,
  /** Added to the number of the signal that ended the command. */
  signalBase: 128,
} as const;

export function signalExitStatus(signal: NodeJS.Signals): number {
  return EXIT_STATUS.signalBase + (constants.signals[signal] ?? 0);
}

/** The status a shell would report for this result, with 124 for a timeout. */
export function exitStatusOf(result: SandboxResult): number {
  if (result.timedOut) return EXIT_STATUS.timeout;
  if (result.exitCode !== null) return result.exitCode;
  if (result.signal !== null) return signalExitStatus(result.signal);
  return EXIT_STATUS.bulkheadFailure;
}
