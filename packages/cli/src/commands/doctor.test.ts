import { tmpdir } from 'node:os';
import { CAPABILITY_KEYS } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { capturedIo } from '../captured-io.js';
import { main } from '../main.js';
import type { DoctorReport } from './doctor.js';

async function doctor(...argv: string[]) {
  const io = capturedIo({ cwd: tmpdir() });
  const status = await main(['doctor', ...argv], io);
  return { status, stdout: io.output(), stderr: io.errors() };
}

describe('bulkhead doctor', () => {
  it('--json lists every known tier, installed or not, with why and the fix', async () => {
    const result = await doctor('--json');
    const report = JSON.parse(result.stdout) as DoctorReport;
    expect(report.tiers.map((tier) => tier.tier)).toEqual(['process', 'session', 'microvm', 'wsl', 'none']);
    expect(report.host.kernel).toEqual(expect.any(String));
    for (const tier of report.tiers.filter((candidate) => !candidate.installed)) {
      expect(tier.reason).toEqual(expect.any(String));
      if (tier.reason === 'not installed') expect(tier.fix).toBe(`npm i ${tier.packageName}`);
    }
    const none = report.tiers.find((tier) => tier.tier === 'none');
    expect(none).toMatchObject({ installed: true, available: true, strength: 0 });
    // `none` never counts: the exit status follows the real tiers alone.
    const realTierAvailable = report.tiers.some((tier) => tier.available && tier.tier !== 'none');
    expect(report.ok).toBe(realTierAvailable);
    expect(result.status).toBe(realTierAvailable ? 0 : 1);
  });

  it('--json gives each available tier an enforcement entry for every capability key', async () => {
    const report = JSON.parse((await doctor('--json')).stdout) as DoctorReport;
    for (const tier of report.tiers.filter((candidate) => candidate.available)) {
      expect(Object.keys(tier.enforcement).sort()).toEqual([...CAPABILITY_KEYS].sort());
      for (const enforcement of Object.values(tier.enforcement)) {
        // An enforced capability names its mechanisms (none for `network.open`, which restricts nothing).
        if (enforcement?.enforced) expect(enforcement.mechanisms).toEqual(expect.any(Array));
        else expect(enforcement?.reason).toEqual(expect.any(String));
      }
    }
  });

  it('exits 1 and says what to install when no isolating tier is installed', async () => {
    const io = capturedIo({ cwd: tmpdir() });
    const missing = (specifier: string) =>
      Promise.reject(
        Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' }),
      );
    const status = await main(['doctor'], io, { importModule: missing });
    expect(status).toBe(1);
    expect(io.output()).toContain('process  not installed: npm i @bulkhead/tier-process');
    expect(io.output()).toContain('No isolating tier is available here');
  });

  it('prints one line per tier a person can act on', async () => {
    const report = JSON.parse((await doctor('--json')).stdout) as DoctorReport;
    const result = await doctor();
    for (const tier of report.tiers) {
      if (!tier.installed && tier.reason === 'not installed') {
        expect(result.stdout).toMatch(
          new RegExp(`${tier.tier}\\s+not installed: npm i @bulkhead/tier-${tier.tier}`),
        );
      } else if (tier.available && tier.tier !== 'none') {
        expect(result.stdout).toMatch(new RegExp(`\\[available\\]\\s+${tier.tier}`));
      }
    }
    expect(result.stdout).toMatch(/none\s+always available, NO isolation/);
  });
});
