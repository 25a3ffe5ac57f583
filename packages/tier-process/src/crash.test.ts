import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSocketDirectory } from '@bulkhead/egress';
import { reapStaleCgroups, reapStaleStaging, runtimeDirectory } from '@bulkhead/linux';
import { expect, it } from 'vitest';
import { reapStaleSandboxFolders } from './launch-process-sandbox.js';
import { reapStaleEgressLinks } from './sandbox-egress.js';
import { leftovers, processesWithMarker, uniqueMarker, waitFor } from './test-support.js';

const packageDirectory = dirname(dirname(fileURLToPath(import.meta.url)));
const vitest = join(packageDirectory, '..', '..', 'node_modules', 'vitest', 'vitest.mjs');

it('leaves nothing for good after the caller crashes: its sandboxes die, their cgroups, mounts and folders go at the next start', async () => {
  const folder = await mkdtemp(join(tmpdir(), 'bulkhead-crash-'));
  const report = join(folder, 'report.json');
  const marker = uniqueMarker();
  const environment = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST')),
  );
  const caller = spawn(process.execPath, [vitest, 'run', 'src/crash-harness.test.ts'], {
    cwd: packageDirectory,
    env: { ...environment, BULKHEAD_CRASH_HARNESS_REPORT: report, BULKHEAD_CRASH_HARNESS_MARKER: marker },
    detached: true,
    stdio: 'ignore',
  });
  try {
    expect(
      await waitFor(() => existsSync(report), 6000),
      'the crashing caller never launched its sandboxes',
    ).toBe(true);
    const { launched, pid } = JSON.parse(await readFile(report, 'utf8')) as {
      launched: Record<'namespace' | 'shim-only' | 'allowlist', string>;
      pid: number;
    };
    expect(await leftovers(`${pid}-prepared`), 'the crashing caller prepared no sandbox').not.toEqual([]);
    expect(processesWithMarker(marker).length).toBeGreaterThanOrEqual(3);

    // The crash: the caller and its vitest worker die at once, with no chance to dispose.
    process.kill(-caller.pid!, 'SIGKILL');

    // The next start of any caller reaps what the dead one left.
    await waitFor(() => false, 20);
    await reapStaleCgroups();
    await reapStaleStaging();
    await reapStaleSandboxFolders(runtimeDirectory());
    await reapStaleEgressLinks(defaultSocketDirectory());
    expect(
      await waitFor(() => processesWithMarker(marker).length === 0),
      'a sandbox process outlived the reaping',
    ).toBe(true);
    expect(await leftovers(launched.namespace)).toEqual([]);
    expect(await leftovers(launched['shim-only'])).toEqual([]);
    expect(await leftovers(launched.allowlist)).toEqual([]);
    expect(await leftovers(`${pid}-prepared`)).toEqual([]);
  } finally {
    try {
      process.kill(-caller.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
    await rm(folder, { recursive: true, force: true });
  }
}, 120_000);
