import type { Capabilities, IsolationProvider, Sandbox, SandboxResult } from '@bulkhead/core';

export interface SandboxOutcome {
  result: SandboxResult;
  stdout: Buffer;
  stderr: Buffer;
}

/** Collects a stream to the end, as buffers. */
export async function collectStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/** Waits until `stream` has produced `text` (and returns everything seen so far). */
export function waitForOutput(stream: NodeJS.ReadableStream, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        resolve(seen);
      }
    };
    const onEnd = () =>
      reject(new Error(`the stream ended before "${text}" appeared; it said: ${seen.slice(0, 2000)}`));
    stream.on('data', onData);
    stream.once('end', onEnd);
  });
}

export interface RunInSandboxOptions {
  provider: IsolationProvider;
  command: string[];
  capabilities: Capabilities;
  id?: string;
  /** Written to stdin, which is then closed. Default: stdin closed at once. */
  input?: string | Buffer;
  /** Runs once the sandbox started, before its output is awaited. */
  started?: (sandbox: Sandbox) => Promise<void> | void;
}

/**
 * Launches through the provider itself (not core's `launch()`, so that the provider alone is proven),
 * collects both streams while waiting for the exit, and always disposes.
 */
export async function runInSandbox(options: RunInSandboxOptions): Promise<SandboxOutcome> {
  const sandbox = await options.provider.launch({
    command: options.command,
    capabilities: options.capabilities,
    ...(options.id === undefined ? {} : { id: options.id }),
  });
  try {
    const stdout = collectStream(sandbox.stdout);
    const stderr = collectStream(sandbox.stderr);
    sandbox.stdin.on('error', () => {
      // The payload may exit without reading its input.
    });
    sandbox.stdin.end(options.input);
    await options.started?.(sandbox);
    const [result, out, err] = await Promise.all([sandbox.exited, stdout, stderr]);
    return { result, stdout: out, stderr: err };
  } finally {
    await sandbox[Symbol.asyncDispose]();
  }
}

/** One line of what a run said, for assertion messages. */
export function describeOutcome(outcome: SandboxOutcome): string {
  const { result } = outcome;
  const clip = (buffer: Buffer) => buffer.toString('utf8').slice(-1500).trim();
  return `exitCode=${result.exitCode} signal=${result.signal} timedOut=${result.timedOut} oomKilled=${result.oomKilled}\nstdout: ${clip(outcome.stdout)}\nstderr: ${clip(outcome.stderr)}`;
}
