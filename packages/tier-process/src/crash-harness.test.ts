import { writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, makeWorkspace } from './test-support.js';

const report = process.env.BULKHEAD_CRASH_HARNESS_REPORT;

// crash.test.ts runs this file in a vitest it then kills with SIGKILL, to prove that a caller's crash
// leaves nothing behind for good. On its own it has nothing to prove.
describe.skipIf(!report)('a caller that crashes with sandboxes running', () => {
  it('launches one sandbox per mode and one allow-listed, reports them, and waits to be killed', async () => {
    const workspace = await makeWorkspace();
    const marker = process.env.BULKHEAD_CRASH_HARNESS_MARKER ?? 'bulkhead-crash-harness';
    const launched: Record<string, string> = {};
    for (const mode of ['namespace', 'shim-only'] as const) {
      const sandbox = await createProcessProvider({ mode }).launch({
        command: ['sh', '-c', 'echo ready; sleep 300; :', marker],
        capabilities: capabilitiesFor(workspace),
        id: `${marker}-${mode}`,
      });
      sandbox.stdout.resume();
      launched[mode] = sandbox.id;
    }
    // And one on an allow-list: its egress channel and socket link must not outlive the crash either.
    const allowListed = await createProcessProvider({ mode: 'namespace' }).launch({
      command: ['sh', '-c', 'echo ready; sleep 300; :', marker],
      capabilities: capabilitiesFor(workspace, (base) => ({
        ...base,
        network: { mode: 'allowlist', allow: [{ host: '192.0.2.1', port: 443 }] },
      })),
      id: `${marker}-allowlist`,
    });
    allowListed.stdout.resume();
    launched.allowlist = allowListed.id;
    // The namespace launch prepares the next sandbox in the background: let it be there for the crash.
    await delay(500);
    await writeFile(report!, JSON.stringify({ pid: process.pid, launched }));
    await delay(600_000);
  }, 700_000);
});
