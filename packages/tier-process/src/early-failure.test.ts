import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkheadError, run } from '@bulkhead/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import {
  capabilitiesFor,
  leftovers,
  makeWorkspace,
  processesWithMarker,
  uniqueMarker,
} from './test-support.js';

/**
 * The real bubblewrap, made to fail every launch (not the probe) with a bind whose source does not
 * exist: its sandbox process dies setting up the mounts before the tier could place it in its
 * cgroups, and bwrap exits with the reason on stderr.
 */
const folders: string[] = [];
afterAll(() => Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true }))));

async function failingBubblewrap(marker: string): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'bulkhead-failing-bwrap-'));
  folders.push(folder);
  // A root caller starts bubblewrap as the sandbox uid, which must reach the script.
  await chmod(folder, 0o755);
  const script = join(folder, 'bwrap');
  await writeFile(
    script,
    [
      '#!/bin/sh',
      'case " $* " in',
      // A source that does not exist: bwrap's sandbox process fails setting up its mounts. The
      // info fd stays open a little longer than bwrap lives (as under load, when the tier reads it
      // late), so that bwrap's exit is seen before its child's pid.
      '  *" --block-fd "*)',
      '    (sleep 0.3) >/dev/null 2>&1 &',
      `    /usr/bin/bwrap --ro-bind /${marker} /${marker} "$@"`,
      '    exit $?;;',
      'esac',
      'exec /usr/bin/bwrap "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return script;
}

describe('process tier, namespace mode: bubblewrap failing before the payload', () => {
  it('rejects the launch with LAUNCH_FAILED carrying bubblewrap’s message, and leaves nothing behind', async () => {
    const marker = uniqueMarker();
    const provider = createProcessProvider({
      mode: 'namespace',
      bubblewrapPath: await failingBubblewrap(marker),
    });
    const workspace = await makeWorkspace();
    const id = `early-failure-${marker.slice(-8)}`;
    const attempt = run({
      providers: [provider],
      tier: 'process',
      capabilities: capabilitiesFor(workspace),
      command: ['true'],
      id,
    });
    await expect(attempt).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'LAUNCH_FAILED') &&
        error.message.includes(`Can't find source path /${marker}`) &&
        (error.fix ?? '') !== '',
    );
    expect(processesWithMarker(marker)).toEqual([]);
    expect(await leftovers(id)).toEqual([]);
  });
});
