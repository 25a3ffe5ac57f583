import { describe, expect, it } from 'vitest';
import { landlockAbi } from '../landlock/landlock-abi.js';
import { probeShim } from './probe-shim.js';

describe('probeShim', () => {
  it('reports the mechanisms of this host and where the shim is', async () => {
    const probe = await probeShim();
    expect(probe.available).toBe(true);
    expect(probe.facts.landlockAbi).toBe(landlockAbi());
    expect(String(probe.facts.shimPath)).toMatch(/\/dist\/native\/bulkhead-shim$/);
    // This host has Landlock ABI 7 (the CI kernel); the expectations follow from the ABI either way.
    expect(probe.enforcement.filesystem?.enforced).toBe(landlockAbi() >= 1);
    expect(probe.enforcement['network.none']?.enforced).toBe(landlockAbi() >= 4);
    expect(probe.enforcement['process.spawn']).toEqual({ enforced: true, mechanisms: ['seccomp'] });
    expect(probe.warnings.join('\n')).toContain('cannot create unix sockets');
  });

  it('says what is missing on a kernel without Landlock, and how to get it', async () => {
    const probe = await probeShim({ landlockAbi: 0 });
    const filesystem = probe.enforcement.filesystem;
    expect(filesystem?.enforced).toBe(false);
    expect(filesystem?.enforced === false && filesystem.fix).toContain('lsm=');
    expect(probe.enforcement['network.none']?.enforced).toBe(false);
  });

  it('warns that scoping is missing below ABI 6', async () => {
    const probe = await probeShim({ landlockAbi: 5 });
    expect(probe.enforcement['network.none']).toEqual({
      enforced: true,
      mechanisms: ['landlock', 'seccomp'],
    });
    expect(probe.warnings.join('\n')).toContain('ABI 6');
  });
});
