import {
  assertEnforceable,
  BulkheadError,
  type IsolationProvider,
  type LaunchSpec,
  type ProbeReport,
  TIER_STRENGTH,
} from '@bulkhead/core';
import { startProcessSpawner } from '@bulkhead/linux';
import { launchProcessSandbox, type ProcessSandbox } from './launch-process-sandbox.js';
import {
  claimPreparedSandbox,
  createPreparedSandboxPool,
  discardPreparedSandbox,
  discardPreparedSandboxSync,
  type PreparedSandbox,
  prepareSandbox,
  setReferenced,
} from './prepared-sandboxes.js';
import type { ProbeCacheOptions } from './probe-cache.js';
import { type ProcessMode, type ProcessTierHost, probeProcessTier } from './probe-process-tier.js';
import { egressProxySource, type ProcessEgressOptions } from './sandbox-egress.js';

export interface ProcessProviderOptions {
  /**
   * `namespace`: bubblewrap (user, mount, pid, ipc, uts, net, cgroup namespaces) then the exec shim.
   * `shim-only`: the exec shim alone (Landlock, seccomp), for hosts without user namespaces.
   * `auto` (default): namespace when bubblewrap can make a user namespace here, else shim-only.
   */
  mode?: 'auto' | ProcessMode;
  /** The bubblewrap executable; default `bwrap` on PATH. */
  bubblewrapPath?: string;
  /**
   * The egress proxy behind network allow-lists (namespace mode): by default the process-wide
   * `getEgressProxy()` of @bulkhead/egress; `{ resolver }` gives this provider a proxy of its own that
   * resolves names with it (e.g. `createStaticResolver(['api.test:127.0.0.1'])`), `{ proxy }` a given one.
   */
  egress?: ProcessEgressOptions;
  /**
   * Keep what the probe learnt about bubblewrap and user namespaces (two bubblewrap runs) in this
   * folder for the next process, keyed by the boot, the kernel, the user-namespace sysctls, the
   * sandbox identity and the bubblewrap binary itself; only a usable answer is kept. For short-lived
   * callers such as the CLI. Default: no cache, every process probes.
   */
  probeCache?: ProbeCacheOptions;
  /**
   * Namespace mode: how many sandboxes to keep prepared per view (grants, network, devices,
   * environment, working directory), from the first launch of that view on: bubblewrap started, its
   * namespaces and mounts made, placed in fresh cgroups, the shim waiting for the program. A launch
   * with the same view then only writes its limits and its program (a process spawn and a cgroup
   * migration, which waits for an RCU grace period, cost 5-15 ms here otherwise). Each is used once,
   * only while the granted paths are as they were, and ends with this process; about 1.5 MiB each.
   * Default 1; 0 for callers that launch once, such as the CLI. Tiers built on this one (an identity
   * per sandbox) never use them.
   */
  preparedSandboxes?: number;
  /**
   * Start bubblewrap and the shim through a small spawner process (started with the first launch,
   * one per process) instead of forking this process for each: Node's fork copies the page tables of
   * its whole heap on the thread every launch shares (1.5 ms at 60 MB, 4 ms and more under load),
   * the spawner's costs next to nothing on another core. Until it is up, and where it cannot run,
   * launches spawn with Node. Default true; false for callers that launch once, such as the CLI.
   */
  spawner?: boolean;
}

/**
 * The process tier: a kernel-enforced sandbox around a process tree. The payload never runs as host
 * uid 0 (a root caller's sandbox runs as `nobody`), with only the granted paths, no network unless
 * asked, cgroup limits, and seccomp and Landlock applied by the exec shim.
 */
export interface ProcessProvider extends IsolationProvider {
  /**
   * `prepared`: a sandbox from `prepare()` to run this launch in. It is used when it is alive and
   * was prepared for the same view (everything but the process and resource settings, under the same
   * `withSandboxIdentity`/`withSandboxGrants`) and the granted paths are as they were; otherwise it
   * is ended and the launch opens its own (`startup: 'cold'`). Either way it is used up.
   */
  launch(spec: LaunchSpec, options?: { prepared?: PreparedProcessSandbox }): Promise<ProcessSandbox>;
  /**
   * Opens a sandbox for `spec` now, for one later launch (see `launch`): for tiers built on this one,
   * which prepare under an identity of their own, where the provider's own prepared sandboxes are
   * never used. Namespace mode only; its command is ignored. It does not keep the process alive, and
   * ends with it if never used.
   */
  prepare(spec: LaunchSpec): Promise<PreparedProcessSandbox>;
  /** Ends every prepared sandbox; later launches prepare again. */
  drainPreparedSandboxes(): Promise<void>;
}

/** A sandbox opened ahead of its launch by `ProcessProvider.prepare()`. */
export interface PreparedProcessSandbox {
  /** Ends it, when no launch will take it; a no-op once a launch took it. */
  discard(): Promise<void>;
  /** The same without waiting, for process exit: kills its processes and removes its cgroups. */
  discardSync(): void;
}

const preparedHandles = new WeakMap<PreparedProcessSandbox, { prepared: PreparedSandbox; used: boolean }>();

function preparedHandle(prepared: PreparedSandbox): PreparedProcessSandbox {
  const handle: PreparedProcessSandbox = {
    async discard() {
      const entry = preparedHandles.get(handle);
      if (!entry || entry.used) return;
      entry.used = true;
      await discardPreparedSandbox(entry.prepared);
    },
    discardSync() {
      const entry = preparedHandles.get(handle);
      if (!entry || entry.used) return;
      entry.used = true;
      discardPreparedSandboxSync(entry.prepared);
    },
  };
  preparedHandles.set(handle, { prepared, used: false });
  return handle;
}

/** The prepared sandbox behind a handle, if it is still there and fits this launch; used up either way. */
async function claimHandle(
  handle: PreparedProcessSandbox,
  spec: LaunchSpec,
  host: ProcessTierHost,
): Promise<PreparedSandbox | undefined> {
  const entry = preparedHandles.get(handle);
  if (!entry || entry.used) return undefined;
  entry.used = true;
  return (await claimPreparedSandbox(entry.prepared, spec, host)) ? entry.prepared : undefined;
}

export function createProcessProvider(options: ProcessProviderOptions = {}): ProcessProvider {
  const requested = options.mode ?? 'auto';
  const bubblewrapPath = options.bubblewrapPath ?? 'bwrap';
  const egressProxy = egressProxySource(options.egress);
  const preparedSandboxes = createPreparedSandboxPool(options.preparedSandboxes ?? 1);
  const useSpawner = options.spawner ?? true;
  let host: Promise<ProcessTierHost> | undefined;
  const probeHost = () => {
    host ??= probeProcessTier({
      mode: requested,
      bubblewrapPath,
      ...(options.probeCache ? { probeCache: options.probeCache } : {}),
    });
    return host;
  };
  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier: 'process',
    strength: TIER_STRENGTH.process,
    async probe(): Promise<ProbeReport> {
      return (await probeHost()).report;
    },
    async launch(spec, launchOptions = {}): Promise<ProcessSandbox> {
      if (useSpawner) startProcessSpawner();
      const handle = launchOptions.prepared;
      try {
        const resolved = await probeHost();
        assertEnforceable(spec.capabilities, resolved.report);
        return await launchProcessSandbox(spec, resolved, {
          egressProxy,
          preparedSandboxes,
          // Claimed once the launch is known valid; a launch refused before that ends it below.
          ...(handle ? { claimPrepared: () => claimHandle(handle, spec, resolved) } : {}),
        });
      } finally {
        // A no-op once claimed: the launch's own cleanups end it.
        await handle?.discard();
      }
    },
    async prepare(spec): Promise<PreparedProcessSandbox> {
      if (useSpawner) startProcessSpawner();
      const resolved = await probeHost();
      assertEnforceable(spec.capabilities, resolved.report);
      if (resolved.mode !== 'namespace') {
        throw new BulkheadError(
          'INVALID_LAUNCH_SPEC',
          `prepare() opens namespace-mode sandboxes, and this provider runs in ${resolved.mode ?? 'no'} mode here.`,
          { tier: 'process', fix: 'launch without a prepared sandbox in shim-only mode' },
        );
      }
      const prepared = await prepareSandbox(spec, resolved, egressProxy);
      setReferenced(prepared, false);
      return preparedHandle(prepared);
    },
    drainPreparedSandboxes: () => preparedSandboxes.drain(),
  };
}
