import { existsSync } from 'node:fs';
import type { Capabilities } from '@bulkhead/core';

/** What a program needs to start: the system directories, read-only. */
const SYSTEM_READ_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'];

/** Secrets under /etc that no sandbox reads, even with /etc granted. */
const SYSTEM_SECRETS = [
  '/etc/shadow',
  '/etc/shadow-',
  '/etc/gshadow',
  '/etc/gshadow-',
  '/etc/ssh',
  '/etc/sudoers',
  '/etc/sudoers.d',
  '/etc/ssl/private',
];

export interface BaseCapabilitiesOptions {
  /** Read-write directory and working directory of the payload. */
  workspace: string;
  /** More read-only grants (the attack helper's directory, fixtures). */
  read?: string[];
  /** More read-write grants. */
  write?: string[];
  /** More denied paths. */
  deny?: string[];
}

/**
 * The capabilities every conformance launch starts from: the default-deny shape of
 * `@bulkhead/manifest`'s defaults (system directories readable minus secrets, one writable workspace,
 * no network, spawn allowed up to 256 processes, 1 GiB, 30 s, no devices, an empty environment).
 *
 * Written here rather than taken from `defaultCapabilities()` so that the suite does not depend on the
 * caller's cwd, home or environment: a conformance run must be reproducible.
 */
export function createBaseCapabilities(options: BaseCapabilitiesOptions): Capabilities {
  const existing = (paths: string[]) => paths.filter((path) => existsSync(path));
  return {
    filesystem: {
      read: [...existing(SYSTEM_READ_PATHS), ...(options.read ?? [])],
      write: [options.workspace, ...(options.write ?? [])],
      deny: [...existing(SYSTEM_SECRETS), ...(options.deny ?? [])],
    },
    network: { mode: 'none', allow: [] },
    process: { spawn: true, maxProcesses: 256 },
    resources: { memoryBytes: 1024 * 1024 * 1024, timeoutMs: 30_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: options.workspace,
  };
}
