import { type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import type { SandboxResult } from './provider.js';

const tracer = () => trace.getTracer('@bulkhead/core');

/** One span per sandbox. A no-op unless the application installed an OpenTelemetry SDK. */
export function startSandboxSpan(attributes: {
  sandboxId: string;
  tier: string;
  manifestDigest: string;
  command: string;
}): Span {
  return tracer().startSpan('bulkhead.sandbox', {
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
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
  }
  span.end();
}
