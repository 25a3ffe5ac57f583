import {
  CAPABILITY_KEYS,
  type CapabilityKey,
  type Enforcement,
  type EnforcementMechanism,
  type ProbeReport,
} from '@bulkhead/core';
import {
  type CgroupSupport,
  hostFacts,
  LANDLOCK_FIX,
  landlockAbi,
  probeCgroupSupport,
  probeShim,
  sandboxIdentity,
} from '@bulkhead/linux';
import { gpuDeviceNodes } from './host-paths.js';
import { type ProbeCacheOptions, probeNamespacesCached } from './probe-cache.js';

export type ProcessMode = 'namespace' | 'shim-only';

export interface ProcessTierHost {
  mode: ProcessMode | undefined;
  bubblewrapPath?: string;
  shimPath?: string;
  cgroups: CgroupSupport;
  landlockAbi: number;
  supportsDisableUserNamespaces: boolean;
  report: ProbeReport;
}

const ALLOWLIST_SHIM =
  'shim-only mode has no network namespace to confine the payload to the egress proxy, and Landlock filters TCP ports, not hosts';
const ALLOWLIST_SHIM_FIX =
  "use the namespace mode: install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04); or use network 'none' or 'open'";

function enforced(mechanisms: EnforcementMechanism[], note?: string): Enforcement {
  return note === undefined ? { enforced: true, mechanisms } : { enforced: true, mechanisms, note };
}

function refused(reason: string, fix?: string): Enforcement {
  return fix === undefined ? { enforced: false, reason } : { enforced: false, reason, fix };
}

/**
 * Finds out what the process tier can do here and how: the mode (`auto` resolves to namespace when
 * bubblewrap can make a user namespace, else shim-only), and per capability the mechanism or why not.
 */
export async function probeProcessTier(options: {
  mode: 'auto' | ProcessMode;
  bubblewrapPath: string;
  probeCache?: ProbeCacheOptions;
}): Promise<ProcessTierHost> {
  let abi = 0;
  try {
    abi = landlockAbi();
  } catch {
    abi = 0;
  }
  const [{ bubblewrap, userNamespaces }, cgroups, shim] = await Promise.all([
    probeNamespacesCached(options.bubblewrapPath, options.probeCache),
    probeCgroupSupport(),
    probeShim({ landlockAbi: abi }),
  ]);
  const shimPath = typeof shim.facts.shimPath === 'string' ? shim.facts.shimPath : undefined;
  const gpus = await gpuDeviceNodes('all');
  const host = hostFacts();
  const identity = sandboxIdentity();
  const namespaceReady = bubblewrap.found && userNamespaces.usable;
  const mode: ProcessMode =
    options.mode === 'auto' ? (namespaceReady ? 'namespace' : 'shim-only') : options.mode;

  const warnings: string[] = mode === 'shim-only' ? [...shim.warnings] : [];
  let available = true;
  let reason: string | undefined;
  let fix: string | undefined;
  if (!shim.available || !shimPath) {
    available = false;
    reason = `the exec shim is unavailable: ${shim.reason ?? 'it could not be built'}`;
    fix = shim.fix ?? 'apt-get install gcc libc6-dev';
  } else if (mode === 'namespace' && !namespaceReady) {
    available = false;
    reason = bubblewrap.found
      ? `user namespaces are unusable: ${userNamespaces.reason}`
      : (bubblewrap.reason ?? 'bubblewrap is missing');
    fix = (bubblewrap.found ? userNamespaces.fix : bubblewrap.fix) ?? 'apt-get install bubblewrap';
  } else if (mode === 'shim-only' && abi < 1) {
    available = false;
    reason = 'Landlock is unavailable, and in shim-only mode it is the only filesystem boundary';
    fix = LANDLOCK_FIX;
  }
  if (options.mode === 'auto' && mode === 'shim-only' && !namespaceReady) {
    warnings.push(
      `Namespace mode is unavailable (${bubblewrap.found ? userNamespaces.reason : bubblewrap.reason}); the shim alone (Landlock, seccomp, cgroups) isolates. Fix: ${(bubblewrap.found ? userNamespaces.fix : bubblewrap.fix) ?? ''}`,
    );
  }

  const namespace = mode === 'namespace';
  const enforcement: Partial<Record<CapabilityKey, Enforcement>> = {};
  const landlock: EnforcementMechanism[] = abi >= 1 ? ['landlock'] : [];
  const fromShim = (key: 'filesystem' | 'network.none' | 'process.spawn'): Enforcement =>
    shim.enforcement[key] ?? refused('the exec shim cannot enforce it here');
  enforcement.filesystem = namespace
    ? enforced(['mount-namespace', 'user-namespace', ...landlock])
    : fromShim('filesystem');
  enforcement['network.none'] = namespace
    ? enforced(['network-namespace', ...(abi >= 4 ? ['landlock'] : []), 'seccomp'])
    : fromShim('network.none');
  enforcement['network.open'] = enforced([], 'the host network, unrestricted');
  enforcement['network.allowlist'] = namespace
    ? enforced(
        ['network-namespace', 'egress-proxy'],
        "an empty network namespace whose only way out is the exec shim's relay on 127.0.0.1 to this process's egress proxy, which judges each connection by the allow-list",
      )
    : refused(ALLOWLIST_SHIM, ALLOWLIST_SHIM_FIX);
  enforcement['process.spawn'] = fromShim('process.spawn');
  enforcement['process.maxProcesses'] = cgroups.processes
    ? enforced([cgroups.processes.mechanism])
    : refused(cgroups.unavailable.processes?.reason ?? 'no pids cgroup', cgroups.unavailable.processes?.fix);
  enforcement['resources.memory'] = cgroups.memory
    ? enforced([cgroups.memory.mechanism])
    : enforced(
        ['rlimit'],
        `no writable memory cgroup (${cgroups.unavailable.memory?.reason}): RLIMIT_AS caps each process, not the sandbox. Fix: ${cgroups.unavailable.memory?.fix}`,
      );
  const killMechanism: EnforcementMechanism[] = cgroups.kill ? [cgroups.kill.mechanism] : [];
  enforcement['resources.timeout'] = namespace
    ? enforced(['supervisor', 'pid-namespace', ...killMechanism])
    : cgroups.kill
      ? enforced(['supervisor', ...killMechanism])
      : refused(
          `without a pid namespace or a writable cgroup, descendants that left the session (setsid, double fork) cannot be found at the timeout: ${cgroups.unavailable.kill?.reason}`,
          cgroups.unavailable.kill?.fix,
        );
  enforcement['resources.cpus'] = cgroups.cpus
    ? enforced([cgroups.cpus.mechanism])
    : refused(cgroups.unavailable.cpus?.reason ?? 'no cpu cgroup', cgroups.unavailable.cpus?.fix);
  enforcement['resources.gpus'] =
    gpus.length === 0
      ? refused(
          'no GPU device nodes (/dev/nvidia*, /dev/dri/renderD*) exist on this host',
          'install the GPU driver, or ask for gpus: none',
        )
      : namespace
        ? enforced(['device-nodes', 'mount-namespace'])
        : enforced(['landlock']);
  enforcement['devices.deny'] = namespace
    ? enforced(['mount-namespace'])
    : abi >= 1
      ? enforced(['landlock'])
      : refused('without Landlock or a mount namespace, /dev is the host’s', LANDLOCK_FIX);
  for (const device of ['clipboard', 'audio', 'webcam', 'display', 'input'] as const) {
    enforcement[`devices.${device}`] = refused(
      `the process tier grants no ${device} access: it would hand the sandbox the caller's desktop session`,
      'use the session tier, which gives a sandbox its own display and devices',
    );
  }
  enforcement.env = enforced(['environment']);
  enforcement.identity = refused(
    'the process tier runs every sandbox under one unprivileged uid; identities belong to the session tier',
    'use --tier session',
  );
  for (const key of CAPABILITY_KEYS) enforcement[key] ??= refused('not enforced by the process tier');

  const facts: Record<string, string | number | boolean> = {
    mode,
    requestedMode: options.mode,
    kernel: host.kernel,
    architecture: host.architecture,
    landlockAbi: abi,
    userNamespaces: userNamespaces.usable,
    bubblewrap: bubblewrap.found
      ? `${bubblewrap.version ?? 'unknown version'} (${bubblewrap.path})`
      : 'missing',
    callerUid: host.callerUid,
    sandboxUid: identity.uid,
    shim: shimPath ?? 'unavailable',
    ...cgroups.facts,
  };
  if (!userNamespaces.usable && userNamespaces.reason) facts.userNamespacesReason = userNamespaces.reason;

  const report: ProbeReport = {
    tier: 'process',
    available,
    ...(reason === undefined ? {} : { reason }),
    ...(fix === undefined ? {} : { fix }),
    enforcement,
    facts,
    warnings,
  };
  return {
    mode: available ? mode : undefined,
    ...(bubblewrap.path === undefined ? {} : { bubblewrapPath: bubblewrap.path }),
    ...(shimPath === undefined ? {} : { shimPath }),
    cgroups,
    landlockAbi: abi,
    supportsDisableUserNamespaces: bubblewrap.supportsDisableUserNamespaces,
    report,
  };
}
