import { constants } from 'node:os';
import { BulkheadError, UnenforceableCapabilityError } from '@bulkhead/core';

/** Exit status of the shim when it refused or failed before the exec (the payload never ran). */
export const SHIM_FAILURE_EXIT_CODE = 125;

export interface ShimStatusContext {
  /** The tier named in errors; defaults to `process`. */
  tier?: string;
}

const errnoNames = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/**
 * Parses what the shim wrote on its status fd. Empty: the payload was executed. Otherwise the
 * shim's own failure as a `BulkheadError`: `COMMAND_NOT_FOUND` (the payload's exit code is 127) and
 * `COMMAND_NOT_EXECUTABLE` (126) carry `details.exitCode`; `UNENFORCEABLE_CAPABILITY` when the
 * kernel's Landlock ABI is lower than the plan needs; `SHIM_PLAN_INVALID` for a malformed plan or
 * arguments; `LAUNCH_FAILED` for any other step.
 */
export function readShimStatus(data: Buffer, context: ShimStatusContext = {}): BulkheadError | undefined {
  const text = data.toString('utf8');
  if (text.length === 0) return undefined;
  const tier = context.tier ?? 'process';
  const match = /^error ([a-z-]+) (\d+) (.*)\n?$/s.exec(text);
  if (!match) {
    return new BulkheadError(
      'INTERNAL_ERROR',
      `The exec shim reported something unreadable: ${JSON.stringify(text)}.`,
      {
        tier,
      },
    );
  }
  const [, step = '', errnoText = '0', detail = ''] = match;
  const errno = Number(errnoText);
  const details = { step, errno, errnoName: errnoNames.get(errno), detail };
  switch (step) {
    case 'exec':
      return errno === constants.errno.ENOENT || errno === constants.errno.ENOTDIR
        ? new BulkheadError('COMMAND_NOT_FOUND', `The command was not found in the sandbox: ${detail}.`, {
            tier,
            fix: 'install the program, grant read access to its directory, or put it on the PATH given in env',
            details: { ...details, exitCode: 127 },
          })
        : new BulkheadError(
            'COMMAND_NOT_EXECUTABLE',
            `The command cannot be executed in the sandbox: ${detail}.`,
            {
              tier,
              fix: 'make the file executable (chmod +x) and grant read access to it and its interpreter',
              details: { ...details, exitCode: 126 },
            },
          );
    case 'landlock-abi': {
      const required = /required=(\d+)/.exec(detail)?.[1];
      const available = /available=(\d+)/.exec(detail)?.[1];
      return new UnenforceableCapabilityError(
        tier,
        'filesystem',
        `the kernel offers Landlock ABI ${available ?? '?'} but the plan needs ABI ${required ?? '?'} (it was planned for another kernel)`,
        'plan the sandbox on the kernel that runs it, or boot a kernel with a newer Landlock',
        { details },
      );
    }
    case 'plan':
    case 'usage':
      return new BulkheadError('SHIM_PLAN_INVALID', `The exec shim refused its plan: ${detail}.`, {
        tier,
        fix: 'this is a bug in the tier that built the plan: report it with this message',
        details,
      });
    case 'chdir':
      return new BulkheadError(
        'LAUNCH_FAILED',
        `The exec shim could not enter the working directory: ${detail}. The workdir must exist and be granted.`,
        { tier, fix: 'create the workdir and grant it in filesystem.read or filesystem.write', details },
      );
    default:
      return new BulkheadError(
        'LAUNCH_FAILED',
        `The exec shim failed at step '${step}' before the payload ran: ${detail}.`,
        {
          tier,
          details,
        },
      );
  }
}
