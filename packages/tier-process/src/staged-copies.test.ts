import { readFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runtimeDirectory } from '@bulkhead/linux';
import { afterAll, describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, makeWorkspace, waitFor } from './test-support.js';

/** This process's staged id-mapped copies mounted on the host (see stageIdMappedMounts). */
function stagedCopiesOfThisProcess(): string[] {
  const staging = join(runtimeDirectory(), 'mounts', `${process.pid}-`);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(staging));
}

// A root caller's write grants come from id-mapped copies staged on the host; running sandboxes
// must not keep them there, or every launch pays for every live sandbox in its mount namespace.
// Skipped for an unprivileged caller: it stages no copies (its grants are bound as they are), so
// there is nothing to check. Nothing needs installing; the root run here and in CI covers it.
describe.skipIf(process.getuid?.() !== 0)('process tier: staged copies of the grants (root caller)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('leaves no staged copy on the host while its sandboxes run, and they still write their grant as the caller', async () => {
    const workspace = await makeWorkspace();
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const provider = createProcessProvider({ mode: 'namespace', preparedSandboxes: 0 });
    const capabilities = capabilitiesFor(workspace);
    const sandboxes = await Promise.all(
      [0, 1, 2].map(() =>
        provider.launch({
          command: ['sh', '-c', 'echo ready; read line; echo "$line" > "$PWD/$line"'],
          capabilities,
        }),
      ),
    );
    cleanups.push(() => Promise.all(sandboxes.map((sandbox) => sandbox[Symbol.asyncDispose]())));
    for (const sandbox of sandboxes) {
      sandbox.stderr.resume();
      await new Promise((resolve) => sandbox.stdout.once('data', resolve));
    }
    // All three run; their copies were given back once bubblewrap had bound them.
    expect(await waitFor(() => stagedCopiesOfThisProcess().length === 0)).toBe(true);
    for (const [index, sandbox] of sandboxes.entries()) sandbox.stdin.end(`written-${index}\n`);
    const results = await Promise.all(sandboxes.map((sandbox) => sandbox.exited));
    expect(results.map((result) => result.exitCode)).toEqual([0, 0, 0]);
    for (const index of [0, 1, 2]) {
      const file = join(workspace, `written-${index}`);
      expect(await readFile(file, 'utf8')).toBe(`written-${index}\n`);
      // Written through the id-mapped view: on disk it is the caller's (root's), not the sandbox uid's.
      expect((await stat(file)).uid).toBe(0);
    }
  });
});
