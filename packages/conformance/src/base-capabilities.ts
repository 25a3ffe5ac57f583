import type { Capabilities } from '@bulkhead/core';
import { defaultCapabilities } from '@bulkhead/manifest';

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

/** Shorter than the manifest's default of 10 minutes: a hung conformance test should fail soon. */
const CONFORMANCE_TIMEOUT_MS = 30_000;

/**
 * The capabilities every conformance launch starts from: `@bulkhead/manifest`'s defaults (system
 * directories readable minus secrets, the workspace writable, no network, spawn up to 256 processes,
 * 1 GiB, no devices) with an empty environment, no organisation policy and a 30 s timeout.
 *
 * The caller's cwd, home, environment and policy are kept out so that a conformance run is reproducible.
 */
export function createBaseCapabilities(options: BaseCapabilitiesOptions): Capabilities {
  const defaults = defaultCapabilities({
    cwd: options.workspace,
    workspace: options.workspace,
    // Not the workspace: the manifest never makes a home folder writable by default.
    home: '/nonexistent',
    env: {},
    policy: null,
  });
  return {
    ...defaults,
    filesystem: {
      read: [...defaults.filesystem.read, ...(options.read ?? [])],
      // The workspace is the one writable place every test relies on, whatever the defaults decide.
      write: [...new Set([options.workspace, ...defaults.filesystem.write, ...(options.write ?? [])])],
      deny: [...defaults.filesystem.deny, ...(options.deny ?? [])],
    },
    resources: { ...defaults.resources, timeoutMs: CONFORMANCE_TIMEOUT_MS },
    env: {},
    workdir: options.workspace,
  };
}
