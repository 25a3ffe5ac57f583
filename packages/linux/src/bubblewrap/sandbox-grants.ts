import { AsyncLocalStorage } from 'node:async_hooks';
import type { BubblewrapBind } from './bubblewrap-arguments.js';

/**
 * What a tier built on the process tier adds to one sandbox's view beyond its capabilities: device
 * nodes (the session tier's sound and video nodes) and read-only binds (a sound server's socket in
 * the sandbox's own runtime folder). Sources must be reachable by the sandbox's uid.
 */
export interface SandboxGrants {
  devices: readonly BubblewrapBind[];
  binds: readonly BubblewrapBind[];
}

const NO_GRANTS: SandboxGrants = { devices: [], binds: [] };

const grantsOverride = new AsyncLocalStorage<SandboxGrants>();

/**
 * Runs `launch` with sandboxes started inside it given `grants` as well, like `withSandboxIdentity`:
 * the session tier passes what it granted through the process tier unchanged, whose spec (core's
 * capabilities) has no place for a host path bound elsewhere.
 */
export function withSandboxGrants<T>(grants: SandboxGrants, launch: () => T): T {
  return grantsOverride.run(grants, launch);
}

/** The grants of an enclosing `withSandboxGrants`, else none. */
export function sandboxGrants(): SandboxGrants {
  return grantsOverride.getStore() ?? NO_GRANTS;
}
