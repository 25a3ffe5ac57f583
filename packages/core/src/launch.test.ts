import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Capabilities } from './capabilities.js';
import { BulkheadError } from './errors.js';
import { bulkheadEvents } from './events.js';
import { launch, run } from './launch.js';
import { createNoneProvider } from './none-provider.js';
import type { IsolationProvider } from './provider.js';

const workdir = mkdtempSync(join(tmpdir(), 'bulkhead-core-'));
afterAll(() => rmSync(workdir, { recursive: true, force: true }));
const capabilities: Capabilities = {
  filesystem: { read: ['/usr', '/bin', '/lib', '/lib64', '/etc'], write: [workdir], deny: [] },
  network: { mode: 'none', allow: [] },
  process: { spawn: true, maxProcesses: 64 },
  resources: { memoryBytes: 2 ** 30, timeoutMs: 10_000, gpus: 'none' },
  devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
  env: { GREETING: 'hello' },
  workdir,
};
const providers = [createNoneProvider()];

describe('run() on the none tier', () => {
  it('collects output, exit code, and warns that nothing is isolated', async () => {
    const result = await run({
      command: ['sh', '-c', 'echo "$GREETING"; echo oops >&2; exit 3'],
      capabilities,
      providers,
      tier: 'none',
    });
    expect(result).toMatchObject({
      exitCode: 3,
      stdout: 'hello\n',
      stderr: 'oops\n',
      tier: 'none',
      timedOut: false,
    });
    expect(result.warnings.join('\n')).toMatch(/NO isolation/);
  });

  it('feeds input to stdin', async () => {
    const result = await run({ command: ['cat'], capabilities, providers, tier: 'none', input: 'piped' });
    expect(result.stdout).toBe('piped');
  });

  it('ends the process group at the timeout', async () => {
    const result = await run({
      command: ['sh', '-c', 'sleep 30'],
      capabilities: { ...capabilities, resources: { ...capabilities.resources, timeoutMs: 200 } },
      providers,
      tier: 'none',
    });
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
  });

  it('marks an aborted sandbox as canceled', async () => {
    const controller = new AbortController();
    const pending = run({
      command: ['sleep', '30'],
      capabilities,
      providers,
      tier: 'none',
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    const result = await pending;
    expect(result.canceled).toBe(true);
    expect(result.timedOut).toBe(false);
  });

  it('emits lifecycle events with the manifest digest', async () => {
    const seen: string[] = [];
    const onLaunch = (event: { manifestDigest: string }) =>
      seen.push(`launched ${event.manifestDigest.slice(0, 7)}`);
    const onExit = () => seen.push('exited');
    bulkheadEvents.on('sandbox:launched', onLaunch);
    bulkheadEvents.on('sandbox:exited', onExit);
    try {
      await run({ command: ['true'], capabilities, providers, tier: 'none' });
    } finally {
      bulkheadEvents.off('sandbox:launched', onLaunch);
      bulkheadEvents.off('sandbox:exited', onExit);
    }
    expect(seen).toEqual(['launched sha256:', 'exited']);
  });
});

describe('launch() fails closed', () => {
  it('refuses a capability the chosen provider cannot enforce, naming it and the fix', async () => {
    let launched = false;
    const partial: IsolationProvider = {
      specificationVersion: 'bulkhead-isolation-v1',
      tier: 'partial',
      strength: 10,
      probe: async () => ({
        tier: 'partial',
        available: true,
        enforcement: {
          filesystem: { enforced: true, mechanisms: ['landlock'] },
          'network.none': { enforced: true, mechanisms: ['network-namespace'] },
          env: { enforced: true, mechanisms: ['environment'] },
          'process.maxProcesses': { enforced: true, mechanisms: ['cgroup-v1'] },
          'resources.timeout': { enforced: true, mechanisms: ['supervisor'] },
          'devices.deny': { enforced: true, mechanisms: ['device-nodes'] },
          'resources.memory': {
            enforced: false,
            reason: 'no writable memory cgroup',
            fix: 'delegate a cgroup',
          },
        },
        facts: {},
        warnings: [],
      }),
      launch: async () => {
        launched = true;
        throw new Error('must not be reached');
      },
    };
    const error = await launch({
      command: ['true'],
      capabilities,
      providers: [partial],
      tier: 'partial',
    }).catch((caught: unknown) => caught);
    expect(BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY')).toBe(true);
    expect((error as BulkheadError).capability).toBe('resources.memory');
    expect((error as Error).message).toContain('Fix: delegate a cgroup');
    expect(launched).toBe(false);
  });

  it('refuses an empty command before choosing a tier', async () => {
    await expect(launch({ command: [], capabilities, providers, tier: 'none' })).rejects.toMatchObject({
      code: 'INVALID_LAUNCH_SPEC',
    });
  });
});
