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
    const session = report.tiers.find((tier) => tier.tier === 'session');
    expect(session).toMatchObject({
      installed: false,
      available: false,
      reason: 'not installed',
      fix: 'npm i @bulkhead/tier-session',
    });
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
        if (enforcement?.enforced) expect(enforcement.mechanisms.length).toBeGreaterThan(0);
        else expect(enforcement?.reason).toEqual(expect.any(String));
      }
    }
  });

  it('prints one line per tier a person can act on', async () => {
    const result = await doctor();
    expect(result.stdout).toContain('not installed: npm i @bulkhead/tier-microvm');
    expect(result.stdout).toContain('not installed: npm i @bulkhead/tier-wsl');
    expect(result.stdout).toMatch(/none\s+always available, NO isolation/);
  });
});
