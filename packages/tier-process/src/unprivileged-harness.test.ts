import { BulkheadError, run } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, makeWorkspace } from './test-support.js';

const harness = process.env.BULKHEAD_UNPRIVILEGED_HARNESS === 'no-cgroups';

// unprivileged.test.ts runs this file as a throwaway account with no delegated cgroup; in any other
// run the caller has cgroups (or is root), and these expectations do not describe it.
describe.skipIf(!harness)('an unprivileged caller without a delegated cgroup', () => {
  it('probes memory as RLIMIT_AS and refuses processes.max and cpus with the delegation fix', async () => {
    const report = await createProcessProvider({ mode: 'namespace' }).probe();
    expect(report.available).toBe(true);
    expect(report.enforcement['resources.memory']).toMatchObject({ enforced: true, mechanisms: ['rlimit'] });
    expect(report.enforcement['process.maxProcesses']).toMatchObject({
      enforced: false,
      fix: expect.stringContaining('chown'),
    });
    expect(report.enforcement['resources.cpus']).toMatchObject({
      enforced: false,
      fix: expect.stringContaining('bulkhead-'),
    });
    // The pid namespace still ends the whole tree at the timeout.
    expect(report.enforcement['resources.timeout']).toMatchObject({
      enforced: true,
      mechanisms: expect.arrayContaining(['pid-namespace']),
    });
  });

  it('fails closed on the default manifest (processes.max), naming the fix', async () => {
    const workspace = await makeWorkspace();
    const attempt = run({
      providers: [createProcessProvider({ mode: 'namespace' })],
      tier: 'process',
      capabilities: capabilitiesFor(workspace),
      command: ['true'],
    });
    await expect(attempt).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY') &&
        error.capability === 'process.maxProcesses' &&
        /sudo mkdir/.test(error.fix ?? ''),
    );
  });

  it('caps each process with RLIMIT_AS when processes are unlimited, and says so', async () => {
    const workspace = await makeWorkspace();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      process: { ...base.process, maxProcesses: Number.POSITIVE_INFINITY },
      resources: { ...base.resources, memoryBytes: 256 * 1024 * 1024 },
    }));
    const result = await run({
      providers: [createProcessProvider({ mode: 'namespace' })],
      tier: 'process',
      capabilities,
      command: ['/usr/bin/python3', '-c', 'b = bytearray(512 * 1024 * 1024); print("survived")'],
    });
    expect(result.stdout).not.toContain('survived');
    expect(result.stderr).toContain('MemoryError');
    expect(result.enforcement['resources.memory']).toEqual(['rlimit']);
    expect(result.warnings.join('\n')).toContain('RLIMIT_AS');
  });

  it('refuses a timeout in shim-only mode: nothing could find descendants that left the session', async () => {
    const report = await createProcessProvider({ mode: 'shim-only' }).probe();
    expect(report.enforcement['resources.timeout']).toMatchObject({
      enforced: false,
      fix: expect.stringContaining('bulkhead-'),
    });
  });
});
