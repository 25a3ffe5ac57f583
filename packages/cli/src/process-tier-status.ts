import { loadInstalledTiers } from './tiers.js';

/**
 * Why the process tier cannot run here (not installed, or its probe says unavailable), or undefined
 * when it can. Tests that need a real tier skip with this reason; `doctor` says the same to users.
 */
export async function processTierUnavailable(): Promise<string | undefined> {
  const { registry, installations } = await loadInstalledTiers();
  const installation = installations.find((candidate) => candidate.tier === 'process');
  if (!installation?.installed)
    return `@bulkhead/tier-process is ${installation?.reason ?? 'not known to the CLI'}`;
  const probe = await registry.probe('process');
  return probe.available ? undefined : `the process tier is unavailable here: ${probe.reason}`;
}
