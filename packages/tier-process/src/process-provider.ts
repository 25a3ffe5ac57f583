import {
  assertEnforceable,
  type IsolationProvider,
  type ProbeReport,
  type Sandbox,
  TIER_STRENGTH,
} from '@bulkhead/core';
import { launchProcessSandbox } from './launch-process-sandbox.js';
import { type ProcessMode, type ProcessTierHost, probeProcessTier } from './probe-process-tier.js';

export interface ProcessProviderOptions {
  /**
   * `namespace`: bubblewrap (user, mount, pid, ipc, uts, net, cgroup namespaces) then the exec shim.
   * `shim-only`: the exec shim alone (Landlock, seccomp), for hosts without user namespaces.
   * `auto` (default): namespace when bubblewrap can make a user namespace here, else shim-only.
   */
  mode?: 'auto' | ProcessMode;
  /** The bubblewrap executable; default `bwrap` on PATH. */
  bubblewrapPath?: string;
}

/**
 * The process tier: a kernel-enforced sandbox around a process tree. The payload never runs as host
 * uid 0 (a root caller's sandbox runs as `nobody`), with only the granted paths, no network unless
 * asked, cgroup limits, and seccomp and Landlock applied by the exec shim.
 */
export function createProcessProvider(options: ProcessProviderOptions = {}): IsolationProvider {
  const requested = options.mode ?? 'auto';
  const bubblewrapPath = options.bubblewrapPath ?? 'bwrap';
  let host: Promise<ProcessTierHost> | undefined;
  const probeHost = () => {
    host ??= probeProcessTier({ mode: requested, bubblewrapPath });
    return host;
  };
  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier: 'process',
    strength: TIER_STRENGTH.process,
    async probe(): Promise<ProbeReport> {
      return (await probeHost()).report;
    },
    async launch(spec): Promise<Sandbox> {
      const resolved = await probeHost();
      assertEnforceable(spec.capabilities, resolved.report);
      return launchProcessSandbox(spec, resolved);
    },
  };
}
