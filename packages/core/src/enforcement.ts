import { type Capabilities, type CapabilityKey, requiredCapabilityKeys } from './capabilities.js';
import { BulkheadError, UnenforceableCapabilityError } from './errors.js';
import type { IsolationProvider, ProbeReport } from './provider.js';

export interface UnenforceableCapability {
  capability: CapabilityKey;
  reason: string;
  fix?: string;
}

/** Which of the capabilities' required keys this probe cannot enforce. Empty means launchable. */
export function findUnenforceable(capabilities: Capabilities, probe: ProbeReport): UnenforceableCapability[] {
  const missing: UnenforceableCapability[] = [];
  for (const capability of requiredCapabilityKeys(capabilities)) {
    const enforcement = probe.enforcement[capability];
    if (enforcement?.enforced) continue;
    missing.push({
      capability,
      reason: enforcement?.reason ?? `the ${probe.tier} tier has no mechanism for it`,
      ...(enforcement?.fix === undefined ? {} : { fix: enforcement.fix }),
    });
  }
  return missing;
}

/**
 * Fail closed: throws for the first capability this provider cannot enforce here (the error's
 * `details.unenforceable` lists all of them). Providers call this at the top of `launch()`.
 */
export function assertEnforceable(capabilities: Capabilities, probe: ProbeReport): void {
  if (!probe.available) {
    throw new BulkheadError(
      'TIER_UNAVAILABLE',
      `Tier '${probe.tier}' is not available on this host: ${probe.reason ?? 'its probe failed'}.${probe.fix ? ` Fix: ${probe.fix}` : ''}`,
      { tier: probe.tier, ...(probe.fix === undefined ? {} : { fix: probe.fix }) },
    );
  }
  const missing = findUnenforceable(capabilities, probe);
  const first = missing[0];
  if (first) {
    throw new UnenforceableCapabilityError(probe.tier, first.capability, first.reason, first.fix, {
      details: { unenforceable: missing },
    });
  }
}

/** Refuses a provider written against another version of the spec. */
export function assertProviderCompatible(provider: IsolationProvider): void {
  if (provider.specificationVersion !== 'bulkhead-isolation-v1') {
    throw new BulkheadError(
      'SPECIFICATION_VERSION_MISMATCH',
      `Provider for tier '${String(provider.tier)}' implements '${String(provider.specificationVersion)}', but this @bulkhead/core speaks 'bulkhead-isolation-v1'. Fix: install versions of the tier and @bulkhead/core that agree.`,
      { tier: String(provider.tier) },
    );
  }
}
