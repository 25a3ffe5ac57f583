import { describe, expect, it } from 'vitest';
import type { Capabilities } from './capabilities.js';
import { BulkheadError } from './errors.js';
import { createNoneProvider } from './none-provider.js';
import type { IsolationProvider, ProbeReport } from './provider.js';
import { ProviderRegistry } from './registry.js';

const capabilities: Capabilities = {
  filesystem: { read: ['/usr'], write: [], deny: [] },
  network: { mode: 'none', allow: [] },
  process: { spawn: true, maxProcesses: 64 },
  resources: { memoryBytes: 2 ** 30, timeoutMs: 10_000, gpus: 'none' },
  devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
  env: {},
  workdir: '/tmp',
};

const enforced = { enforced: true as const, mechanisms: ['seccomp'] };

function fakeProvider(tier: string, strength: number, probe: Partial<ProbeReport>): IsolationProvider {
  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier,
    strength,
    probe: async () => ({ tier, available: true, enforcement: {}, facts: {}, warnings: [], ...probe }),
    launch: async () => {
      throw new Error('not used');
    },
  };
}

const everything = Object.fromEntries(
  [
    'filesystem',
    'network.none',
    'network.allowlist',
    'process.maxProcesses',
    'resources.memory',
    'resources.timeout',
    'devices.deny',
    'env',
  ].map((key) => [key, enforced]),
);

describe('ProviderRegistry.select', () => {
  it('chooses the weakest available tier at or above the minimum that enforces everything', async () => {
    const registry = new ProviderRegistry([
      fakeProvider('microvm', 30, { enforcement: everything }),
      fakeProvider('process', 10, { enforcement: everything }),
      fakeProvider('session', 20, { enforcement: everything }),
    ]);
    expect((await registry.select(capabilities)).provider.tier).toBe('process');
    expect((await registry.select(capabilities, { minimumTier: 'session' })).provider.tier).toBe('session');
  });

  it('skips a tier that cannot enforce a capability and says why when none can', async () => {
    const { 'network.allowlist': _, ...withoutAllowlist } = everything;
    const registry = new ProviderRegistry([
      fakeProvider('process', 10, { enforcement: withoutAllowlist }),
      fakeProvider('microvm', 30, { available: false, reason: 'no KVM', fix: 'modprobe kvm' }),
    ]);
    const allowlisted = {
      ...capabilities,
      network: { mode: 'allowlist' as const, allow: [{ host: 'example.com', port: 443 }] },
    };
    const error = await registry.select(allowlisted).catch((caught: unknown) => caught);
    expect(BulkheadError.hasCode(error, 'NO_SUITABLE_TIER')).toBe(true);
    expect((error as Error).message).toContain('process: cannot enforce network.allowlist');
    expect((error as Error).message).toContain('microvm: unavailable: no KVM (fix: modprobe kvm)');
  });

  it('never picks the none tier unless it is named', async () => {
    const registry = new ProviderRegistry([createNoneProvider()]);
    await expect(registry.select(capabilities)).rejects.toThrow(/no tier is registered/);
    expect((await registry.select(capabilities, { tier: 'none' })).provider.tier).toBe('none');
  });

  it('names the registered tiers when an unknown one is asked for', async () => {
    const registry = new ProviderRegistry([createNoneProvider()]);
    await expect(registry.select(capabilities, { tier: 'microvm' })).rejects.toThrow(
      "Tier 'microvm' is not registered. Available tiers: none.",
    );
  });

  it('refuses a provider of another specification version', () => {
    const provider = {
      ...fakeProvider('odd', 5, {}),
      specificationVersion: 'bulkhead-isolation-v2',
    } as unknown as IsolationProvider;
    expect(() => new ProviderRegistry([provider])).toThrow(
      /SPECIFICATION|implements 'bulkhead-isolation-v2'/,
    );
  });
});

describe('BulkheadError', () => {
  it('is recognised across copies by its brand, not by instanceof', () => {
    const foreign = Object.assign(new Error('x'), { code: 'X', [Symbol.for('bulkhead.error')]: true });
    expect(BulkheadError.isInstance(foreign)).toBe(true);
    expect(BulkheadError.isInstance(new Error('plain'))).toBe(false);
  });
});
