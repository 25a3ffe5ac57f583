import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type Capabilities, onProcessExit } from '@bulkhead/core';
import { sandboxLeftovers } from '@bulkhead/linux';
import { defaultCapabilities } from '@bulkhead/manifest';

const workspaces: string[] = [];
const removeWorkspaces = () => {
  for (const workspace of workspaces.splice(0)) rmSync(workspace, { recursive: true, force: true });
};
// A run of this package's tests made about 90 workspaces and left them all in /tmp. Vitest ends its
// workers without an exit event, so a test file removes its own after its last test; a fixture
// process run by vite-node (which inherits VITEST from the test that starts it), at its exit.
onProcessExit(removeWorkspaces);
try {
  (await import('vitest')).afterAll(removeWorkspaces);
} catch {
  // Not collected by vitest's runner: the exit listener above does it.
}

/** A fresh workspace every uid may enter (a root caller's shim-only sandbox runs as nobody). */
export async function makeWorkspace(): Promise<string> {
  const workspace = await mkdtemp(join(tmpdir(), 'bulkhead-tier-process-'));
  workspaces.push(workspace);
  await chmod(workspace, 0o777);
  return workspace;
}

/** The default manifest's capabilities for a workspace, without the caller's environment or policy. */
export function capabilitiesFor(
  workspace: string,
  adjust: (capabilities: Capabilities) => Capabilities = (value) => value,
): Capabilities {
  return adjust(
    defaultCapabilities({ cwd: workspace, workspace, home: '/nonexistent-home', env: {}, policy: null }),
  );
}

export function uniqueMarker(): string {
  return `bulkhead-tier-process-marker-${randomUUID()}`;
}

/** Host pids whose command line mentions `marker`. */
export function processesWithMarker(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

export async function waitFor(condition: () => boolean | Promise<boolean>, attempts = 300): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await condition()) return true;
    await delay(10);
  }
  return false;
}

/**
 * What a sandbox could leave behind on the host, by its id: cgroups under Bulkhead's bases, staging
 * mounts and folders under the runtime folder, mounts anywhere, and processes carrying `marker`.
 */
export async function leftovers(id: string, marker?: string): Promise<string[]> {
  const found: string[] = [];
  if (marker) {
    await waitFor(() => processesWithMarker(marker).length === 0, 100);
    for (const pid of processesWithMarker(marker)) found.push(`process ${pid}`);
  }
  found.push(...(await sandboxLeftovers(id)));
  return found;
}

/** Fields of /proc/PID/status as the host sees them. */
export function hostStatus(pid: number): Record<string, string> {
  if (!existsSync(`/proc/${pid}/status`)) return {};
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()];
      }),
  );
}

/** Pids of the processes whose real uid is `uid` (a throwaway account's, started by a test). */
export function processesOfUid(uid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(readFileSync(`/proc/${entry}/status`, 'utf8'));
      } catch {
        return false;
      }
    })
    .map(Number);
}
