import { readdirSync, readFileSync } from 'node:fs';
import { run } from '@bulkhead/core';
import { becomeChildSubreaper } from '@bulkhead/linux';
import { describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, makeWorkspace, waitFor } from './test-support.js';

/** This process's children that exited and were never reaped. */
function zombieChildren(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' && Number(parent) === process.pid) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe('process tier, namespace mode, under a caller that adopts orphans', () => {
  it('leaves no zombie: bubblewrap’s pid-namespace init, which its monitor does not wait for, is reaped', async () => {
    // What a container's PID 1 or a harness that made itself a child subreaper is: orphans of this
    // worker's children (bwrap's init, once its monitor exited) come to it, and libuv never reaps them.
    expect(becomeChildSubreaper()).toBe(true);
    const provider = createProcessProvider({ mode: 'namespace' });
    const workspace = await makeWorkspace();
    for (let launch = 0; launch < 3; launch++) {
      const result = await run({
        providers: [provider],
        tier: 'process',
        capabilities: capabilitiesFor(workspace),
        command: ['true'],
      });
      expect(result.exitCode, result.stderr).toBe(0);
    }
    expect(await waitFor(() => zombieChildren().length === 0), `zombies: ${zombieChildren()}`).toBe(true);
  });
});
