import type { Readable } from 'node:stream';
import { BulkheadError } from '@bulkhead/core';
import type { RunOutcome, SubjectHandle, SubjectSession } from './subject.js';

/** No single launch may hang the benchmark: past this, it counts as failed and is killed. */
export const LAUNCH_DEADLINE_MS = 60_000;

export async function withDeadline<T>(
  promise: Promise<T>,
  milliseconds: number,
  what: string,
  onExpiry?: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onExpiry?.();
      reject(new BulkheadError('BENCHMARK_DEADLINE', `${what} did not finish within ${milliseconds} ms.`));
    }, milliseconds);
  });
  try {
    return await Promise.race([promise, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves at the first chunk on the stream; rejects if it ends without one. */
export function firstChunk(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      cleanup();
      // Keep the rest flowing so the payload never blocks on a full pipe.
      stream.resume();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      reject(new BulkheadError('BENCHMARK_NO_OUTPUT', 'The payload ended without writing to stdout.'));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

async function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs a command to completion through whichever API the subject has. */
export async function runToCompletion(
  session: SubjectSession,
  command: string[],
  /** Kill the payload and fail once this much time has passed: a hung payload must not outlive its caller. */
  deadlineMs?: number,
): Promise<RunOutcome> {
  if (session.run) return session.run(command);
  const handle = await startOrThrow(session, command);
  handle.stdin?.end();
  let timer: NodeJS.Timeout | undefined;
  const deadline =
    deadlineMs === undefined
      ? new Promise<never>(() => {})
      : new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            void handle
              .kill()
              .finally(() =>
                reject(
                  new BulkheadError(
                    'BENCHMARK_PAYLOAD_FAILED',
                    `${command.join(' ')} did not exit within ${deadlineMs} ms; it was killed`,
                  ),
                ),
              );
          }, deadlineMs);
        });
  try {
    const [stdout, exitCode] = await Promise.race([
      Promise.all([collect(handle.stdout), handle.exited]),
      deadline,
    ]);
    return { exitCode, stdout };
  } finally {
    clearTimeout(timer);
  }
}

export function startOrThrow(session: SubjectSession, command: string[]): Promise<SubjectHandle> {
  if (!session.start) {
    throw new BulkheadError(
      'BENCHMARK_NOT_MEASURABLE',
      session.streamingUnavailable ?? 'The subject has no streaming API.',
    );
  }
  return session.start(command);
}

function assertSuccess(exitCode: number | null, command: string[], stdout = ''): void {
  if (exitCode !== 0) {
    throw new BulkheadError(
      'BENCHMARK_PAYLOAD_FAILED',
      `${command.join(' ')} exited with ${exitCode === null ? 'a signal' : exitCode}${stdout ? `: ${stdout.slice(0, 200)}` : ''}`,
    );
  }
}

/** Milliseconds from the launch call to the payload's exit (the subject's run() when it has one). */
export async function timeToExit(session: SubjectSession, command: string[]): Promise<number> {
  const started = performance.now();
  if (session.run) {
    const outcome = await withDeadline(session.run(command), LAUNCH_DEADLINE_MS, 'run()');
    const elapsed = performance.now() - started;
    assertSuccess(outcome.exitCode, command, outcome.stdout);
    return elapsed;
  }
  const handle = await withDeadline(startOrThrow(session, command), LAUNCH_DEADLINE_MS, 'launch');
  handle.stdin?.end();
  handle.stdout.resume();
  const exitCode = await withDeadline(
    handle.exited,
    LAUNCH_DEADLINE_MS,
    'the payload',
    () => void handle.kill(),
  );
  const elapsed = performance.now() - started;
  assertSuccess(exitCode, command);
  return elapsed;
}

/** Milliseconds from the launch call to the first byte the payload writes to stdout. */
export async function timeToFirstByte(session: SubjectSession, command: string[]): Promise<number> {
  const started = performance.now();
  const handle = await withDeadline(startOrThrow(session, command), LAUNCH_DEADLINE_MS, 'launch');
  handle.stdin?.end();
  try {
    await withDeadline(
      firstChunk(handle.stdout),
      LAUNCH_DEADLINE_MS,
      'the first byte',
      () => void handle.kill(),
    );
  } catch (error) {
    await handle.kill();
    throw error;
  }
  const elapsed = performance.now() - started;
  const exitCode = await withDeadline(
    handle.exited,
    LAUNCH_DEADLINE_MS,
    'the payload',
    () => void handle.kill(),
  );
  assertSuccess(exitCode, command);
  return elapsed;
}

/** Runs the workload and returns the nanoseconds it measured itself, as milliseconds. */
export async function selfTimedRun(session: SubjectSession, command: string[]): Promise<number> {
  const outcome = await withDeadline(
    runToCompletion(session, command),
    LAUNCH_DEADLINE_MS * 2,
    command.join(' '),
  );
  assertSuccess(outcome.exitCode, command, outcome.stdout);
  const nanoseconds = Number.parseInt(outcome.stdout.trim().split(/\s+/)[0] ?? '', 10);
  if (!Number.isFinite(nanoseconds)) {
    throw new BulkheadError(
      'BENCHMARK_PAYLOAD_FAILED',
      `The workload printed no timing: '${outcome.stdout.slice(0, 200)}'`,
    );
  }
  return nanoseconds / 1e6;
}

/**
 * The pause before each interleaved or alternating sample: what the previous sample left working in
 * the background (a tier preparing its next sandbox) must land in no other sample, as between an
 * agent's tool calls, which are seconds apart.
 */
export const SETTLE_MS = 25;
