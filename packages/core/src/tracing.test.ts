import { type Span, type Tracer, type TracerProvider, trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { endSandboxSpan, startSandboxSpan } from './tracing.js';

const attributes = { sandboxId: 'sandbox-1', tier: 'process', manifestDigest: 'sha256:00', command: 'true' };

/** A stand-in SDK: records what the core asks of it. */
function recordingProvider() {
  const started: { name: string; attributes: unknown; ended: boolean; status?: unknown }[] = [];
  const tracer = {
    startSpan(name: string, options?: { attributes?: unknown }) {
      const record: (typeof started)[number] = { name, attributes: options?.attributes, ended: false };
      started.push(record);
      const span = {
        setAttributes: () => span,
        setStatus: (status: unknown) => {
          record.status = status;
          return span;
        },
        recordException: () => {},
        end: () => {
          record.ended = true;
        },
        isRecording: () => true,
      } as unknown as Span;
      return span;
    },
  } as unknown as Tracer;
  const provider: TracerProvider = { getTracer: () => tracer };
  return { provider, started };
}

afterEach(() => {
  trace.disable();
});

describe('sandbox spans', () => {
  it('are no-ops that record nothing while no OpenTelemetry SDK is registered', () => {
    const span = startSandboxSpan(attributes);
    expect(span.isRecording()).toBe(false);
    expect(() => endSandboxSpan(span, undefined, new Error('failed'))).not.toThrow();
  });

  it('go to the SDK the application registered, with the sandbox attributes and an error status', () => {
    const { provider, started } = recordingProvider();
    trace.setGlobalTracerProvider(provider);
    const span = startSandboxSpan(attributes);
    endSandboxSpan(span, undefined, new Error('failed'));
    expect(started).toEqual([
      {
        name: 'bulkhead.sandbox',
        attributes: expect.objectContaining({
          'bulkhead.sandbox.id': 'sandbox-1',
          'bulkhead.tier': 'process',
        }),
        ended: true,
        status: { code: 2, message: 'failed' },
      },
    ]);
  });
});
