import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { createWarmPool, type LaunchSpec } from '@bulkhead/core';
import type { EgressProxy } from '@bulkhead/egress';
import {
  hasSandboxIdentityOverride,
  type PreparedSandboxCgroup,
  prepareSandboxCgroup,
  sandboxGrants,
  sandboxIdentity,
} from '@bulkhead/linux';
import {
  type Cleanup,
  namespaceHostView,
  type OpenedNamespace,
  type OpenedShimOnly,
  openNamespace,
  openShimOnly,
  runCleanups,
} from './launch-process-sandbox.js';
import type { ProcessTierHost } from './probe-process-tier.js';

/*
 * Why launches keep a sandbox prepared: most of a namespace launch is work that does not depend on
 * the program it runs: spawning bubblewrap (about 2 ms of this thread), making the namespaces and
 * mounts, and placing the sandbox in its cgroups, which takes the kernel's cgroup_threadgroup_rwsem
 * for writing and so waits for an RCU grace period whenever no other migration happened in the last
 * one (measured here: 0.6 ms back to back, 5 ms median and 13 ms p90 with launches spaced out, the
 * usual pace of an agent). An agent runs one manifest all day, so the next launch's sandbox can be
 * opened while the machine is idle: its shim then waits for the plan that names the program, and the
 * launch only writes the limits and that plan.
 *
 * A prepared sandbox is used once, only for a launch with the same view (grants, network, devices,
 * environment, working directory, identity), and only if the host facts its view was built from
 * (which granted paths exist and what they are) still hold; otherwise it is discarded and the launch
 * opens its own. An allow-list's egress channel is opened with the prepared sandbox (the allow-list is
 * part of the view) and assigned to the launch that takes it. Tiers built on this one (an identity per
 * sandbox) never use one.
 */

export interface PreparedSandbox {
  /** What a launch must ask for to use it (see `preparedView`). */
  view: string;
  opened: OpenedNamespace | OpenedShimOnly;
  cgroup: PreparedSandboxCgroup;
  /** What releases it: the launch that takes it runs these at its end. */
  cleanups: Cleanup[];
}

export interface PreparedSandboxPool {
  /** The key of the prepared sandboxes a launch could use, or undefined where it must open its own. */
  shapeOf(spec: LaunchSpec, host: ProcessTierHost): string | undefined;
  /** A prepared sandbox of this shape whose view still holds, or undefined. */
  take(shape: string, spec: LaunchSpec, host: ProcessTierHost): Promise<PreparedSandbox | undefined>;
  /** Prepares sandboxes of this shape up to the pool's size, in the background. */
  refill(
    shape: string,
    spec: LaunchSpec,
    host: ProcessTierHost,
    egressProxy?: () => Promise<EgressProxy>,
  ): void;
  /** Ends every prepared sandbox. */
  drain(): Promise<void>;
}

/**
 * Everything a prepared sandbox was opened with that a launch must ask for the same: the mode, the
 * identity and extra grants of a tier built on this one, grants, network, environment, working
 * directory, devices, and whether it has a CPU bandwidth cgroup at all (see prepareSandboxCgroup).
 */
export function preparedView(capabilities: LaunchSpec['capabilities'], host: ProcessTierHost): string {
  return JSON.stringify({
    mode: host.mode,
    identity: sandboxIdentity(),
    grants: sandboxGrants(),
    filesystem: capabilities.filesystem,
    network: capabilities.network,
    env: capabilities.env,
    workdir: capabilities.workdir,
    devices: capabilities.devices,
    gpus: capabilities.resources.gpus,
    cpuLimited: capabilities.resources.cpus !== undefined,
  });
}

/** Whether a waiting prepared sandbox keeps the caller's process alive (it must not). */
export function setReferenced(prepared: PreparedSandbox, referenced: boolean): void {
  const { child } = prepared.opened;
  for (const stream of child.stdio) {
    const socket = stream as Socket | null;
    if (referenced) socket?.ref?.();
    else socket?.unref?.();
  }
  if (referenced) child.ref();
  else child.unref();
}

export async function prepareSandbox(
  spec: LaunchSpec,
  host: ProcessTierHost,
  egressProxy?: () => Promise<EgressProxy>,
): Promise<PreparedSandbox> {
  const name = `prepared-${randomUUID()}`;
  const cgroup = await prepareSandboxCgroup({ name, cpus: spec.capabilities.resources.cpus !== undefined });
  const cleanups: Cleanup[] = [cgroup.remove];
  try {
    const view = { capabilities: spec.capabilities };
    const opened =
      host.mode === 'namespace'
        ? await openNamespace(view, name, host, cgroup, cleanups, {
            ...(egressProxy ? { egressProxy } : {}),
            // Nothing runs in it until a launch takes it and assigns its egress channel.
            reportViolation: () => {},
            prepared: true,
          })
        : await openShimOnly(view, name, host, cgroup, cleanups);
    return { view: preparedView(spec.capabilities, host), opened, cgroup, cleanups };
  } catch (error) {
    await runCleanups(cleanups);
    throw error;
  }
}

function alive(prepared: PreparedSandbox): boolean {
  const { child } = prepared.opened;
  return child.exitCode === null && child.signalCode === null;
}

/** Ends a prepared sandbox. */
export function discardPreparedSandbox(prepared: PreparedSandbox): Promise<void> {
  return runCleanups([...prepared.cleanups]);
}

/** Ends a prepared sandbox without waiting (at process exit): its processes, its cgroups, what releases synchronously. */
export function discardPreparedSandboxSync(prepared: PreparedSandbox): void {
  const { opened } = prepared;
  const pids = opened.mode === 'namespace' ? [opened.childPid, opened.bubblewrapPid] : [opened.child.pid];
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  prepared.cgroup.removeSync();
  // What is left (id-mapped staging mounts) releases synchronously; the reaper gets the rest.
  for (const cleanup of [...prepared.cleanups].reverse()) {
    try {
      Promise.resolve(cleanup()).catch(() => {});
    } catch {
      // Keep releasing the rest.
    }
  }
}

/**
 * Takes a prepared sandbox for this launch if it is still alive and its view still holds (no
 * granted path created, removed or replaced since: the view would not be what the launch asks);
 * otherwise ends it and answers false. A shim-only sandbox's Landlock rules are made from the host
 * as it is at the launch.
 */
export async function claimPreparedSandbox(
  prepared: PreparedSandbox,
  spec: LaunchSpec,
  host: ProcessTierHost,
): Promise<boolean> {
  const { opened } = prepared;
  const stale =
    prepared.view !== preparedView(spec.capabilities, host) ||
    (opened.mode === 'namespace' &&
      (await namespaceHostView(spec.capabilities)).fingerprint !== opened.hostView);
  if (stale || !alive(prepared)) {
    await discardPreparedSandbox(prepared);
    return false;
  }
  setReferenced(prepared, true);
  return true;
}

/** Keeps `size` prepared namespace sandboxes per shape (0: none), each used once. */
export function createPreparedSandboxPool(size: number): PreparedSandboxPool {
  const pool = createWarmPool<PreparedSandbox>({
    size,
    // Waiting, it must not keep the caller's process alive.
    idle: (prepared) => setReferenced(prepared, false),
    usable: alive,
    discard: discardPreparedSandbox,
    discardSync: discardPreparedSandboxSync,
  });
  return {
    shapeOf(spec, host) {
      const { capabilities } = spec;
      // Shim-only mode refuses allow-lists before anything is prepared.
      if (size <= 0 || host.mode === undefined) return undefined;
      const grants = sandboxGrants();
      if (hasSandboxIdentityOverride() || grants.devices.length > 0 || grants.binds.length > 0)
        return undefined;
      return preparedView(capabilities, host);
    },
    async take(shape, spec, host) {
      const prepared = await pool.take(shape, () => Promise.reject(new Error('not refilled here')), {
        refill: false,
      });
      if (!prepared) return undefined;
      return (await claimPreparedSandbox(prepared, spec, host)) ? prepared : undefined;
    },
    refill(shape, spec, host, egressProxy) {
      // Queued now, so that a launch right after this one waits for it rather than starting cold;
      // begun on a later turn of the event loop, because its spawn blocks this thread for a few
      // milliseconds, which must not come between a sandbox's result and its caller (measured:
      // shim-only /bin/true 4.9 -> 3.2 ms).
      pool.refill(shape, async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return prepareSandbox(spec, host, egressProxy);
      });
    },
    drain: () => pool.drain(),
  };
}
