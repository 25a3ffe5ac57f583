import { createRequire } from 'node:module';
import type { Span } from '@opentelemetry/api';
import type { SandboxResult } from './provider.js';

type OpenTelemetryApi = typeof import('@opentelemetry/api');

/** Where @opentelemetry/api 1.x keeps what an SDK registered (its `GLOBAL_OPENTELEMETRY_API_KEY`). */
const OPENTELEMETRY_GLOBAL = Symbol.for('opentelemetry.js.api.1');
const ERROR_STATUS = 2; // SpanStatusCode.ERROR

let openTelemetryApi: OpenTelemetryApi | undefined;

/**
 * The OpenTelemetry API, loaded on the first span after an SDK registered itself with it. Loading it
 * costs about 30 ms of every CLI start (dozens of modules), and without a registered SDK it hands out
 * only no-op spans, which `noopSpan` stands in for. Any copy of the API registers under the same
 * global key, so the check sees an SDK whichever copy the application set it up with.
 */
function openTelemetry(): OpenTelemetryApi | undefined {
  if (
    openTelemetryApi === undefined &&
    (globalThis as Record<symbol, unknown>)[OPENTELEMETRY_GLOBAL] === undefined
  )
    return undefined;
  openTelemetryApi ??= createRequire(import.meta.url)('@opentelemetry/api') as OpenTelemetryApi;
  return openTelemetryApi;
}

/** What the API's non-recording span does, without loading the API. */
const noopSpan: Span = {
  spanContext: () => ({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }),
  setAttribute: () => noopSpan,
  setAttributes: () => noopSpan,
  addEvent: () => noopSpan,
  addLink: () => noopSpan,
  addLinks: () => noopSpan,
  setStatus: () => noopSpan,
  updateName: () => noopSpan,
  end: () => {},
  isRecording: () => false,
  recordException: () => {},
};

/** One span per sandbox. A no-op unless the application installed an OpenTelemetry SDK. */
export function startSandboxSpan(attributes: {
  sandboxId: string;
  tier: string;
  manifestDigest: string;
  command: string;
}): Span {
  const api = openTelemetry();
  if (!api) return noopSpan;
  return api.trace.getTracer('@bulkhead/core').startSpan('bulkhead.sandbox', {
    attributes: {
      'bulkhead.sandbox.id': attributes.sandboxId,
      'bulkhead.tier': attributes.tier,
      'bulkhead.manifest.digest': attributes.manifestDigest,
      'bulkhead.command': attributes.command,
    },
  });
}

export function endSandboxSpan(span: Span, result: SandboxResult | undefined, error?: unknown): void {
  if (result) {
    span.setAttributes({
      'bulkhead.exit.code': result.exitCode ?? -1,
      'bulkhead.exit.signal': result.signal ?? '',
      'bulkhead.timed_out': result.timedOut,
      'bulkhead.oom_killed': result.oomKilled,
      'bulkhead.duration_ms': result.durationMs,
      'bulkhead.peak_memory_bytes': result.peakMemoryBytes ?? -1,
      'bulkhead.violations': result.violations.length,
    });
  }
  if (error) {
    span.recordException(error as Error);
    span.setStatus({ code: ERROR_STATUS, message: (error as Error).message });
  }
  span.end();
}
