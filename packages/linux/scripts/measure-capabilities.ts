// What the measure-* scripts launch with: system folders to read, one fresh workspace to write, no
// network; the same for every script, so that their figures compare.
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Capabilities } from '@bulkhead/core';

export async function measureCapabilities(name: string): Promise<Capabilities> {
  const workspace = await mkdtemp(join(tmpdir(), `bulkhead-${name}-`));
  // A root caller's shim-only sandbox runs as nobody, with no mount namespace to id-map the folder.
  await chmod(workspace, 0o777);
  return {
    filesystem: { read: ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'], write: [workspace], deny: [] },
    network: { mode: 'none', allow: [] },
    process: { spawn: true, maxProcesses: 64 },
    resources: { memoryBytes: 512 * 1024 * 1024, timeoutMs: 30_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: workspace,
  };
}
