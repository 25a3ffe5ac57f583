import type { Readable, Writable } from 'node:stream';
import { BulkheadError } from '@bulkhead/core';
import picocolors from 'picocolors';

/** Where the CLI reads and writes: the process's own streams, or test doubles. */
export interface CliIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
}

export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function colorsFor(stream: { isTTY?: boolean }, env: CliIo['env']): Colors {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return picocolors.createColors(Boolean(stream.isTTY) && !noColor && env.TERM !== 'dumb');
}

export function writeLine(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}

/** `file:line:column` of a located error, or only as much of it as is known. */
export function formatLocation(location: {
  path?: string;
  line?: number;
  column?: number;
}): string | undefined {
  if (!location.path) return undefined;
  if (location.line === undefined) return location.path;
  return `${location.path}:${location.line}${location.column === undefined ? '' : `:${location.column}`}`;
}

interface ErrorIssue {
  message: string;
  path?: string;
  line?: number;
  column?: number;
  fix?: string;
}

function issuesOf(error: BulkheadError): ErrorIssue[] {
  const issues = error.details?.issues;
  if (!Array.isArray(issues)) return [];
  return issues.filter(
    (issue): issue is ErrorIssue =>
      typeof issue === 'object' && issue !== null && typeof issue.message === 'string',
  );
}

/**
 * Prints an error the way every command does: `bulkhead: <what happened>` located at
 * `file:line:column` when it concerns a file, each further issue on its own line, then `fix: ...`.
 */
export function printError(io: CliIo, error: unknown): void {
  const colors = colorsFor(io.stderr, io.env);
  const prefix = colors.red(colors.bold('bulkhead:'));
  if (!BulkheadError.isInstance(error)) {
    const message = error instanceof Error ? error.message : String(error);
    writeLine(io.stderr, `${prefix} internal error: ${message}`);
    if (io.env.BULKHEAD_DEBUG && error instanceof Error && error.stack) writeLine(io.stderr, error.stack);
    writeLine(
      io.stderr,
      `${colors.yellow('fix:')} this is a bug in Bulkhead; please report it with the output of BULKHEAD_DEBUG=1 and the command you ran`,
    );
    return;
  }
  const issues = issuesOf(error);
  const location = formatLocation(error);
  let message = error.message;
  // Messages end in "Fix: ..." so that they read whole on their own; here the fix gets its own line.
  const fixAt = message.lastIndexOf('Fix: ');
  if (error.fix && fixAt >= 0 && sameFix(message.slice(fixAt + 'Fix: '.length), error.fix)) {
    message = message.slice(0, fixAt).trimEnd();
  }
  const alreadyLocated = location !== undefined && message.includes(location);
  writeLine(io.stderr, `${prefix} ${location && !alreadyLocated ? `${location}: ` : ''}${message}`);
  // Print the issues the message does not already list, so that one run shows every problem.
  for (const issue of issues) {
    if (message.includes(issue.message)) continue;
    const issueLocation = formatLocation({
      path: issue.path ?? error.path,
      line: issue.line,
      column: issue.column,
    });
    writeLine(io.stderr, `  ${issueLocation ? `${issueLocation}: ` : ''}${issue.message}`);
    if (issue.fix) writeLine(io.stderr, `    ${colors.yellow('fix:')} ${issue.fix}`);
  }
  if (error.fix && !message.includes(error.fix))
    writeLine(io.stderr, `${colors.yellow('fix:')} ${error.fix}`);
  if (io.env.BULKHEAD_DEBUG && error.stack) writeLine(io.stderr, error.stack);
}

function sameFix(written: string, fix: string): boolean {
  const normalise = (text: string) => text.trim().replace(/\.$/, '');
  return normalise(written) === normalise(fix);
}

/** A warning the user must not miss, on stderr. */
export function printWarning(io: CliIo, message: string): void {
  const colors = colorsFor(io.stderr, io.env);
  writeLine(io.stderr, `${colors.yellow(colors.bold('bulkhead: warning:'))} ${message}`);
}
