import { appendFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import type { SandboxResult } from '@bulkhead/core';
import { type Span, trace } from '@opentelemetry/api';

/** One line of the audit log. `start` is written when the payload starts, `end` once it is gone. */
export interface IdentityRecord {
  event: 'start' | 'end';
  time: string;
  sandboxId: string;
  tier: 'session';
  /** `identity.name` of the capabilities, or null when none was given. */
  identity: string | null;
  uid: number;
  gid: number;
  account: 'transient' | 'account';
  manifestDigest: string | null;
  command: string[];
  start: string;
  end?: string;
  /** Why the sandbox never started, on an `end` record without a result. */
  error?: string;
  result?: {
    exitCode: number | null;
    signal: string | null;
    timedOut: boolean;
    canceled: boolean;
    oomKilled: boolean;
    durationMs: number;
    peakMemoryBytes?: number;
    violations: number;
  };
}

/**
 * The default audit log: `/var/lib/bulkhead/audit.jsonl` for root, else
 * `$XDG_STATE_HOME/bulkhead/audit.jsonl` (`~/.local/state/bulkhead/audit.jsonl`).
 */
export function defaultAuditLogPath(): string {
  if (process.getuid?.() === 0) return '/var/lib/bulkhead/audit.jsonl';
  const state = process.env.XDG_STATE_HOME?.startsWith('/')
    ? process.env.XDG_STATE_HOME
    : posix.join(homedir(), '.local', 'state');
  return posix.join(state, 'bulkhead', 'audit.jsonl');
}

/**
 * Appends one JSON line. A single `O_APPEND` write of a short line is atomic on a local filesystem,
 * so concurrent sandboxes and processes never interleave records.
 */
export async function appendIdentityRecord(path: string, record: IdentityRecord): Promise<void> {
  await mkdir(posix.dirname(path), { recursive: true, mode: 0o700 });
  await appendFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export function summariseResult(result: SandboxResult): NonNullable<IdentityRecord['result']> {
  return {
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    canceled: result.canceled,
    oomKilled: result.oomKilled,
    durationMs: Math.round(result.durationMs),
    ...(result.peakMemoryBytes === undefined ? {} : { peakMemoryBytes: result.peakMemoryBytes }),
    violations: result.violations.length,
  };
}

function identityAttributes(record: IdentityRecord): Record<string, string | number> {
  return {
    'bulkhead.sandbox.id': record.sandboxId,
    'bulkhead.tier': 'session',
    'bulkhead.identity.name': record.identity ?? '',
    'bulkhead.identity.uid': record.uid,
    'bulkhead.identity.gid': record.gid,
    'bulkhead.identity.account': record.account,
    'bulkhead.manifest.digest': record.manifestDigest ?? '',
  };
}

/**
 * The identity as attributes of a span of this tier's own (`bulkhead.session`) and of the caller's
 * active span, if any. Both are no-ops unless the application installed an OpenTelemetry SDK.
 */
export function startIdentitySpan(record: IdentityRecord): Span {
  const attributes = identityAttributes(record);
  trace.getActiveSpan()?.setAttributes(attributes);
  return trace.getTracer('@bulkhead/tier-session').startSpan('bulkhead.session', { attributes });
}

export function endIdentitySpan(span: Span, record: IdentityRecord): void {
  if (record.result) {
    span.setAttributes({
      'bulkhead.exit.code': record.result.exitCode ?? -1,
      'bulkhead.exit.signal': record.result.signal ?? '',
      'bulkhead.timed_out': record.result.timedOut,
      'bulkhead.violations': record.result.violations,
    });
  }
  span.end();
}
