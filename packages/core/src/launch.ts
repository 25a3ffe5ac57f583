import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Capabilities, TierName } from './capabilities.js';
import { capabilitiesDigest } from './digest.js';
import { assertEnforceable, assertProviderCompatible } from './enforcement.js';
import { BulkheadError } from './errors.js';
import { bulkheadEvents } from './events.js';
import type { IsolationProvider, Sandbox, SandboxResult, Violation } from './provider.js';
import { ProviderRegistry } from './registry.js';
import { endSandboxSpan, startSandboxSpan } from './tracing.js';

export interface LaunchOptions {
  /** argv of the payload. */
  command: string[];
  capabilities: Capabilities;
  /** Where tiers are looked up: a registry, or providers to build one from. */
  providers: ProviderRegistry | IsolationProvider[];
  /** Use exactly this tier. Naming `none` is the only way to run without isolation. */
  tier?: TierName;
  /** The weakest acceptable tier (default `process`). */
  minimumTier?: TierName;
  id?: string;
  manifestDigest?: string;
  /** Aborting kills the sandbox; its result then says `canceled: true`. */
  signal?: AbortSignal;
  onViolation?: (violation: Violation) => void;
}

export interface LaunchedSandbox extends Sandbox {
  readonly manifestDigest: string;
}

function toRegistry(providers: LaunchOptions['providers']): ProviderRegistry {
  return providers instanceof ProviderRegistry ? providers : new ProviderRegistry(providers);
}

/**
 * Chooses a tier, checks that it enforces every capability here (fail closed), starts the payload,
 * and reports lifecycle and violation events and an OpenTelemetry span.
 */
export async function launch(options: LaunchOptions): Promise<LaunchedSandbox> {
  if (!Array.isArray(options.command) || options.command.length === 0 || !options.command[0]) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      'Nothing to run: the command is empty. Fix: pass the program and its arguments, e.g. ["sh", "-c", "echo hi"].',
    );
  }
  options.signal?.throwIfAborted();
  const registry = toRegistry(options.providers);
  const { provider, probe } = await registry.select(options.capabilities, {
    ...(options.tier === undefined ? {} : { tier: options.tier }),
    ...(options.minimumTier === undefined ? {} : { minimumTier: options.minimumTier }),
  });
  assertProviderCompatible(provider);
  const warnings: string[] = [];
  if (provider.strength <= 0) {
    const message = `Tier '${provider.tier}' gives NO isolation: the payload runs with your full rights. Use it for debugging only.`;
    warnings.push(message);
    process.emitWarning(message, { code: 'BULKHEAD_NO_ISOLATION' });
  } else {
    assertEnforceable(options.capabilities, probe);
  }

  const id = options.id ?? randomUUID();
  const manifestDigest = options.manifestDigest ?? capabilitiesDigest(options.capabilities);
  const span = startSandboxSpan({
    sandboxId: id,
    tier: provider.tier,
    manifestDigest,
    command: options.command.join(' '),
  });
  let sandbox: Sandbox;
  try {
    sandbox = await provider.launch({
      command: options.command,
      capabilities: options.capabilities,
      id,
      manifestDigest,
      onViolation: (violation) => {
        bulkheadEvents.emit('violation', violation);
        options.onViolation?.(violation);
      },
    });
  } catch (error) {
    endSandboxSpan(span, undefined, error);
    throw error;
  }
  bulkheadEvents.emit('sandbox:launched', {
    sandboxId: id,
    tier: provider.tier,
    command: options.command,
    manifestDigest,
  });

  let canceled = false;
  const onAbort = () => {
    canceled = true;
    void sandbox.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const exited = sandbox.exited.then(
    (result) => {
      options.signal?.removeEventListener('abort', onAbort);
      const final: SandboxResult = {
        ...result,
        canceled: result.canceled || canceled,
        warnings: [...warnings, ...result.warnings],
      };
      endSandboxSpan(span, final);
      bulkheadEvents.emit('sandbox:exited', { sandboxId: id, tier: provider.tier, result: final });
      return final;
    },
    (error: unknown) => {
      options.signal?.removeEventListener('abort', onAbort);
      endSandboxSpan(span, undefined, error);
      throw error;
    },
  );

  return {
    id,
    tier: provider.tier,
    manifestDigest,
    stdin: sandbox.stdin,
    stdout: sandbox.stdout,
    stderr: sandbox.stderr,
    exited,
    kill: (signal) => {
      canceled = true;
      return sandbox.kill(signal);
    },
    [Symbol.asyncDispose]: () => sandbox[Symbol.asyncDispose](),
  };
}

export interface RunOptions extends LaunchOptions {
  /** Written to the payload's stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Uint8Array | Readable;
  /** Stop collecting output past this many bytes per stream (default 64 MiB); the rest is drained. */
  maxBuffer?: number;
}

export interface RunResult extends SandboxResult {
  id: string;
  tier: TierName;
  command: string[];
  stdout: string;
  stderr: string;
}

async function collect(stream: Readable, maxBuffer: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    if (size < maxBuffer) chunks.push(buffer.subarray(0, maxBuffer - size));
    size += buffer.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Launches, feeds `input`, collects output, disposes; like execa with the sandbox's extra facts. */
export async function run(options: RunOptions): Promise<RunResult> {
  const sandbox = await launch(options);
  try {
    const maxBuffer = options.maxBuffer ?? 64 * 1024 * 1024;
    const stdout = collect(sandbox.stdout, maxBuffer);
    const stderr = collect(sandbox.stderr, maxBuffer);
    sandbox.stdin.on('error', () => {
      // The payload may exit without reading its input; that is its right, not our error.
    });
    if (options.input === undefined) sandbox.stdin.end();
    else if (options.input instanceof Readable) options.input.pipe(sandbox.stdin);
    else sandbox.stdin.end(options.input);
    const [result, out, err] = await Promise.all([sandbox.exited, stdout, stderr]);
    return {
      ...result,
      id: sandbox.id,
      tier: sandbox.tier,
      command: options.command,
      stdout: out,
      stderr: err,
    };
  } finally {
    await sandbox[Symbol.asyncDispose]();
  }
}
