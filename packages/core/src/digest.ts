import { createHash } from 'node:crypto';
import type { Capabilities } from './capabilities.js';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/** `sha256:<hex>` of the capabilities in canonical JSON: equal policies, equal digests. */
export function capabilitiesDigest(capabilities: Capabilities): string {
  return `sha256:${createHash('sha256')
    .update(JSON.stringify(canonical(capabilities)))
    .digest('hex')}`;
}
