import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namespaceProbeKey, probeNamespacesCached } from './probe-cache.js';

let root: string;
let bubblewrap: string;
const cacheFileIn = (directory: string) => join(directory, `process-tier-probe-${process.getuid?.()}.json`);

beforeAll(async () => {
  root = mkdtempSync('/tmp/bulkhead-probe-cache-');
  // A root caller's probe runs bubblewrap as nobody, who must reach the copies below.
  chmodSync(root, 0o755);
  const system = await findExecutable('bwrap');
  if (!system) throw new Error('bubblewrap is required for these tests: apt-get install bubblewrap');
  bubblewrap = join(root, 'bwrap');
  copyFileSync(system, bubblewrap);
  chmodSync(bubblewrap, 0o755);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Rewrites the cached bubblewrap version, keeping the key: a later answer with it came from the file. */
function markCached(directory: string): void {
  const entry = JSON.parse(readFileSync(cacheFileIn(directory), 'utf8'));
  entry.bubblewrap.version = 'from-the-cache';
  writeFileSync(cacheFileIn(directory), JSON.stringify(entry), { mode: 0o600 });
}

describe('the process tier’s probe cache', () => {
  it('keeps a usable answer in a file only the caller may read, and answers from it while the key matches', async () => {
    const directory = join(root, 'matching');
    const first = await probeNamespacesCached(bubblewrap, { directory });
    expect(first.userNamespaces.usable).toBe(true);
    expect(statSync(cacheFileIn(directory)).mode & 0o777).toBe(0o600);
    markCached(directory);
    const second = await probeNamespacesCached(bubblewrap, { directory });
    expect(second.bubblewrap.version).toBe('from-the-cache');
    expect(second.userNamespaces.usable).toBe(true);
  });

  it('is ignored once the bubblewrap binary changes (a new key), and rewritten', async () => {
    const directory = join(root, 'replaced');
    await probeNamespacesCached(bubblewrap, { directory });
    const before = await namespaceProbeKey(bubblewrap);
    markCached(directory);
    const later = new Date(Date.now() + 60_000);
    utimesSync(bubblewrap, later, later);
    const after = await namespaceProbeKey(bubblewrap);
    expect(after).not.toBe(before);
    const answer = await probeNamespacesCached(bubblewrap, { directory });
    expect(answer.bubblewrap.version).not.toBe('from-the-cache');
    expect(JSON.parse(readFileSync(cacheFileIn(directory), 'utf8')).key).toBe(after);
  });

  it('is ignored when others could have written it', async () => {
    const directory = join(root, 'writable');
    await probeNamespacesCached(bubblewrap, { directory });
    markCached(directory);
    chmodSync(cacheFileIn(directory), 0o666);
    const answer = await probeNamespacesCached(bubblewrap, { directory });
    expect(answer.bubblewrap.version).not.toBe('from-the-cache');
  });

  it('makes its folder and a missing parent, and only costs a probe where no folder can be made (never hangs)', async () => {
    const directory = join(root, 'fresh-parent', 'bulkhead');
    await probeNamespacesCached(bubblewrap, { directory });
    expect(statSync(cacheFileIn(directory)).mode & 0o777).toBe(0o600);
    // Node 20's recursive mkdir loops forever here: the kernel answers ENOENT under /proc/self.
    const answer = await probeNamespacesCached(bubblewrap, { directory: '/proc/self/missing/bulkhead' });
    expect(answer.userNamespaces.usable).toBe(true);
  });

  it('never keeps an unusable answer, which would hold later runs in the weaker mode', async () => {
    const directory = join(root, 'unusable');
    const failing = join(root, 'failing-bwrap');
    writeFileSync(failing, '#!/bin/sh\necho "bubblewrap 0.8.0"\nexit 1\n', { mode: 0o755 });
    const answer = await probeNamespacesCached(failing, { directory });
    expect(answer.userNamespaces.usable).toBe(false);
    expect(() => statSync(cacheFileIn(directory))).toThrow();
  });
});
