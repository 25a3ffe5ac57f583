import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Capabilities, launch, run } from '@bulkhead/core';
import { createEgressProxy, createStaticResolver } from '@bulkhead/egress';
import { runtimeDirectory } from '@bulkhead/linux';
import { afterAll, describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, leftovers, makeWorkspace, uniqueMarker } from './test-support.js';

const modes = ['namespace', 'shim-only'] as const;
const callerIsRoot = process.getuid?.() === 0;

function reading(grant: string) {
  return (base: Capabilities): Capabilities => ({
    ...base,
    filesystem: { ...base.filesystem, read: [...base.filesystem.read, grant] },
  });
}

describe.each(modes)('process tier, %s mode: a read grant of / or /run with the default denies', (mode) => {
  for (const grant of ['/', '/run']) {
    it(`launches with ${grant} granted: secrets still refused, HOME and TMPDIR writable, only the tier's own files in /run/bulkhead`, async () => {
      const workspace = await makeWorkspace();
      const id = `broad-${mode}-${uniqueMarker().slice(-12)}`;
      const result = await run({
        providers: [createProcessProvider({ mode })],
        tier: 'process',
        capabilities: capabilitiesFor(workspace, reading(grant)),
        command: [
          'sh',
          '-c',
          'cat /etc/shadow >/dev/null 2>&1 && echo shadow-leaked; touch "$HOME/h" "$TMPDIR/t" && echo writable; ls -A /run/bulkhead 2>/dev/null | tr "\\n" " "; echo',
        ],
        id,
      });
      expect(result.exitCode, result.stderr).toBe(0);
      const [written, tierFiles] = result.stdout.trim().split('\n');
      expect(written).toBe('writable');
      // Namespace mode: the tier folder holds the shim alone. Shim-only: nothing there is listable.
      if (mode === 'namespace') expect(tierFiles?.trim()).toBe('shim');
      else expect(tierFiles?.trim() ?? '').toBe('');
      expect(await leftovers(id)).toEqual([]);
    });
  }

  it('shows the tier’s own /proc and /dev through a grant of /, not the host’s', async () => {
    if (mode === 'shim-only') return; // Without a mount namespace, / is the host's by definition.
    const workspace = await makeWorkspace();
    const result = await run({
      providers: [createProcessProvider({ mode })],
      tier: 'process',
      capabilities: capabilitiesFor(workspace, reading('/')),
      command: ['sh', '-c', 'test -e /dev/kvm && echo "host devices"; cat /proc/1/comm'],
    });
    expect(result.exitCode, result.stderr).toBe(0);
    // No host device node, and pid 1 is bubblewrap's init, not the host's.
    expect(result.stdout.trim()).toBe('bwrap');
  });
});

describe('process tier: Bulkhead’s own state is hidden from a sandbox granted /', () => {
  // On the runtime folder's filesystem for a root caller, so that the socket's link for the sandbox
  // uid sits in the runtime folder too.
  const socketDirectory = callerIsRoot
    ? `/run/bulkhead-test-egress-${process.pid}`
    : join(tmpdir(), `bulkhead-test-egress-${process.pid}`);
  const proxy = createEgressProxy({
    resolver: createStaticResolver({ 'api.test': ['127.0.0.1'] }),
    socketDirectory,
  });
  afterAll(() => proxy.close());

  it.each(modes)(
    '%s mode: cannot list another sandbox’s staging mount or reach its egress socket',
    async (mode) => {
      const workspace = await makeWorkspace();
      const other = await launch({
        providers: [createProcessProvider({ mode: 'namespace', egress: { proxy } })],
        tier: 'process',
        capabilities: capabilitiesFor(workspace, (base) => ({
          ...base,
          network: { mode: 'allowlist', allow: [{ host: 'api.test', port: 443 }] },
        })),
        command: ['sleep', '60'],
      });
      try {
        // What the other sandbox holds on the host: staging mounts (root callers), channel sockets and
        // their links.
        const runtime = runtimeDirectory();
        const secrets = [
          ...['mounts', 'sandboxes'].flatMap((folder) =>
            existsSync(join(runtime, folder))
              ? readdirSync(join(runtime, folder)).map((entry) => join(runtime, folder, entry))
              : [],
          ),
          ...readdirSync(socketDirectory).map((entry) => join(socketDirectory, entry)),
        ];
        expect(secrets.some((path) => path.endsWith('.sock'))).toBe(true);
        if (callerIsRoot) expect(secrets.some((path) => path.includes(`${runtime}/mounts/`))).toBe(true);
        const probe = await run({
          providers: [createProcessProvider({ mode })],
          tier: 'process',
          capabilities: capabilitiesFor(await makeWorkspace(), reading('/')),
          command: [
            'sh',
            '-c',
            'mode=$1; shift; for path in "$@"; do [ -d "$path" ] && ls -A "$path" >/dev/null 2>&1 && echo "listed $path"; [ "$mode" = namespace ] && [ -e "$path" ] && echo "visible $path"; done; ls -A "$0/mounts" "$0/sandboxes" 2>/dev/null; true',
            runtime,
            ...secrets,
          ],
        });
        expect(probe.exitCode, probe.stderr).toBe(0);
        expect(probe.stdout).toBe('');
      } finally {
        await other[Symbol.asyncDispose]();
      }
    },
  );
});
