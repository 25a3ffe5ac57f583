import { loadInstalledTiers } from './tiers.js';

/**
 * A reason for a test to skip because something is not installed here, or undefined. On CI, which
 * installs everything (`scripts/setup.sh`), a missing install is a failure, never a skip.
 */
export function skipReasonOffCi(reason: string | undefined): string | undefined {
  if (reason !== undefined && process.env.CI) {
    throw new Error(
      `CI must run these tests, but ${reason}. Fix: bash scripts/setup.sh installs what they need.`,
    );
  }
  return reason;
}

/**
 * Why the process tier cannot run here (not installed, or its probe says unavailable), or undefined
 * when it can. Tests that need a real tier skip with this reason off CI; `doctor` says the same to users.
 */
export async function processTierUnavailable(): Promise<string | undefined> {
  const { registry, installations } = await loadInstalledTiers();
  const installation = installations.find((candidate) => candidate.tier === 'process');
  if (!installation?.installed)
    return skipReasonOffCi(`@bulkhead/tier-process is ${installation?.reason ?? 'not known to the CLI'}`);
  const probe = await registry.probe('process');
  return skipReasonOffCi(
    probe.available ? undefined : `the process tier is unavailable here: ${probe.reason}`,
  );
}
