import { PassThrough, Readable } from 'node:stream';
import type { CliIo } from './io.js';

export interface CapturedIo extends CliIo {
  /** Everything written to stdout so far. */
  output(): string;
  /** Everything written to stderr so far. */
  errors(): string;
}

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * An in-memory `CliIo` for tests of `main()`: stdin holds `input` (and is not a terminal), stdout and
 * stderr are captured, and the environment is the test process's unless given.
 */
export function capturedIo(options: { cwd: string; input?: string; env?: CliIo['env'] }): CapturedIo {
  const stdout = capture();
  const stderr = capture();
  return {
    stdin: Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]),
    stdout: stdout.stream,
    stderr: stderr.stream,
    env: options.env ?? { ...process.env, NO_COLOR: '1' },
    cwd: options.cwd,
    output: stdout.text,
    errors: stderr.text,
  };
}

/** Runs the CLI in-process on a captured `CliIo`: the exit status and everything it printed. */
export async function runCaptured(
  argv: string[],
  options: { cwd: string; input?: string },
): Promise<{ status: number; stdout: string; stderr: string }> {
  const { main } = await import('./main.js');
  const io = capturedIo(options);
  const status = await main(argv, io);
  return { status, stdout: io.output(), stderr: io.errors() };
}
