import type { Capabilities, CapabilityKey, EnforcementMechanism } from '@bulkhead/core';
import { BulkheadError, UnenforceableCapabilityError } from '@bulkhead/core';
import { landlockAbi } from '../landlock/landlock-abi.js';
import { type LandlockPlan, normalizeAbsolutePath, planLandlock } from '../landlock/landlock-planner.js';
import { compileSeccompFilter, type SeccompArchitecture } from '../seccomp/compile-seccomp-filter.js';
import { UNIX_SOCKETS_REFUSED_WARNING } from './shim-warnings.js';

/** Resources the shim can limit with setrlimit, by their `RLIMIT_*` name in lower case. */
export const SHIM_RLIMIT_RESOURCES = [
  'as',
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
] as const;

export type ShimRlimitResource = (typeof SHIM_RLIMIT_RESOURCES)[number];

/** The variables a Linux tier sets itself; the payload sees these and the capabilities' `env`, nothing else. */
export const TIER_ENVIRONMENT_NAMES = ['PATH', 'HOME', 'TMPDIR', 'LANG'] as const;

export interface ShimPlanOptions {
  capabilities: Capabilities;
  /** The tier's own paths (private tmp/home, the shim, /dev nodes), as the payload sees them. */
  extraReadPaths?: string[];
  extraWritePaths?: string[];
  /** The egress relay: 127.0.0.1:`port` inside the sandbox, spliced to the unix socket at `socketPath`. */
  relay?: { port: number; socketPath: string };
  /** The payload's working directory, as it sees it. */
  workdir: string;
  /** `[soft, hard]` per resource; `Infinity` for unlimited. */
  rlimits?: { [resource: string]: [soft: number, hard: number] };
  /**
   * `host` (default): Landlock and seccomp are the only boundary (shim-only mode), so anything they
   * cannot enforce is an error. `namespace`: paths are already restricted by a mount namespace and the
   * network by a network namespace; Landlock still applies as defence in depth, and leaves the denied
   * paths bubblewrap masks inside a grant to their masks rather than splitting the grant around them.
   */
  pathView?: 'host' | 'namespace';
  /** Namespace view: the path kinds its mount namespace was made from (see `planLandlock`). */
  pathKinds?: Readonly<Record<string, string>>;
  /** Namespace view: the folder that shows the capabilities' paths (see `planLandlock`'s `viewRoot`). */
  viewRoot?: string;
  /** The tier named in errors; defaults to `process`. */
  tier?: string;
  /** The Landlock ABI to plan for; defaults to the running kernel's (`landlockAbi()`). */
  landlockAbi?: number;
  /** The architecture of the seccomp filter; defaults to Node's. */
  architecture?: SeccompArchitecture;
  /**
   * The names of the variables the payload keeps from the environment the shim is started with;
   * every other one (bubblewrap's PWD, say) is removed before the exec. Defaults to the
   * capabilities' `env` plus `TIER_ENVIRONMENT_NAMES`.
   */
  environmentNames?: string[];
  /**
   * May the payload create unix sockets it could connect by path (see `compileSeccompFilter`)?
   * Defaults to true in the namespace view and false in the host view, where Landlock does not
   * filter connect() on path-named sockets and no mount namespace hides the host's.
   */
  unixSockets?: boolean;
  /**
   * The payload dies (SIGKILL) with the process that spawned the shim, so a crashed caller leaves no
   * payload running. The pid the shim's parent must have: defaults to this process in the host view
   * (the tier spawns the shim itself) and to 0, the parent the shim started with, in the namespace
   * view (bubblewrap's, in a pid namespace). Linux sends the signal when the spawning thread exits.
   */
  parentPid?: number;
  /**
   * The program and its arguments, carried in the plan rather than after `--`: for a shim started
   * before its payload was known (a prepared launcher). Then run it with `plan.args` alone.
   */
  command?: readonly string[];
}

export interface ShimPlan {
  /** Shim arguments before `--`. */
  args: string[];
  /** Data for fds 3, 4, ...: the plan text, then the seccomp filter. Write each, then end it. */
  fds: Buffer[];
  /** The fd on which the shim reports its own failures: the pipe right after `fds`. */
  statusFd: number;
  enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
  warnings: string[];
  /** What the plan relies on, for a probe or `doctor`. */
  facts: {
    landlockAbi: number;
    landlockMinimumAbi: number;
    landlockHandledFilesystem: number;
    landlockHandledNetwork: number;
    landlockScoped: number;
    landlockPathRules: number;
    seccompInstructions: number;
  };
  /** The Landlock part of the plan, for inspection. */
  landlock: LandlockPlan;
}

/** The first fd the plan data goes to; 0-2 are the payload's stdio. */
const FIRST_PLAN_FD = 3;

function formatLimit(value: number, resource: string): string {
  if (value === Number.POSITIVE_INFINITY) return 'infinity';
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      `The rlimit ${resource} value ${value} is not a non-negative integer or Infinity. Fix: pass whole numbers.`,
    );
  }
  return String(value);
}

/**
 * Decides everything the exec shim applies. A tier runs it as
 * `spawn(await ensureShim(), [...plan.args, '--', ...command], { stdio: ['pipe', 'pipe', 'pipe',
 * ...plan.fds.map(() => 'pipe'), 'pipe'], env })`, writes each `plan.fds[i]` to `child.stdio[3 + i]`
 * and ends it, and reads `child.stdio[plan.statusFd]` to its end: empty means the payload was
 * executed; otherwise `readShimStatus()` turns it into an error.
 *
 * Throws `UnenforceableCapabilityError` when this host cannot enforce what the capabilities ask.
 */
export function planShim(options: ShimPlanOptions): ShimPlan {
  const tier = options.tier ?? 'process';
  const pathView = options.pathView ?? 'host';
  const { capabilities } = options;
  const network = capabilities.network.mode;
  if (network === 'allowlist' && !options.relay) {
    throw new UnenforceableCapabilityError(
      tier,
      'network.allowlist',
      'an allow-list needs the egress relay and proxy, and Landlock alone filters TCP ports, not hosts',
      "use network 'none' or 'open', or a tier that runs @bulkhead/egress",
    );
  }
  if (options.relay) {
    const { port, socketPath } = options.relay;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new BulkheadError('INVALID_LAUNCH_SPEC', `The relay port ${port} is not 1-65535.`);
    }
    normalizeAbsolutePath(socketPath, 'relay socket');
  }

  const landlock = planLandlock({
    abi: options.landlockAbi ?? landlockAbi(),
    read: capabilities.filesystem.read,
    write: capabilities.filesystem.write,
    deny: capabilities.filesystem.deny,
    extraRead: options.extraReadPaths ?? [],
    extraWrite: options.extraWritePaths ?? [],
    network,
    ...(options.relay ? { relayPort: options.relay.port } : {}),
    pathView,
    ...(options.pathKinds ? { pathKinds: options.pathKinds } : {}),
    ...(options.viewRoot === undefined ? {} : { viewRoot: options.viewRoot }),
    tier,
  });
  const unixSockets = options.unixSockets ?? pathView === 'namespace';
  const filter = compileSeccompFilter({
    spawn: capabilities.process.spawn,
    network,
    unixSockets,
    ...(options.architecture ? { architecture: options.architecture } : {}),
  });
  const parentPid = options.parentPid ?? (pathView === 'host' ? process.pid : 0);
  if (!Number.isSafeInteger(parentPid) || parentPid < 0 || parentPid > 0x7fffffff) {
    throw new BulkheadError('INVALID_LAUNCH_SPEC', `The parent pid ${parentPid} is not a pid (or 0).`);
  }
  const environmentNames = [
    ...new Set(options.environmentNames ?? [...TIER_ENVIRONMENT_NAMES, ...Object.keys(capabilities.env)]),
  ];
  for (const name of environmentNames) {
    if (!name || /[=\0\n]/.test(name)) {
      throw new BulkheadError(
        'INVALID_LAUNCH_SPEC',
        `The environment variable name ${JSON.stringify(name)} cannot be passed: names must be non-empty, without '=', NUL or newline. Fix: rename the variable.`,
      );
    }
  }

  const lines = ['bulkhead-plan 1', `parent ${parentPid}`];
  if (landlock.enabled) {
    lines.push(
      `landlock ${landlock.minimumAbi} ${landlock.handledFilesystem} ${landlock.handledNetwork} ${landlock.scoped}`,
    );
    // Optional: a path that vanished since planning grants nothing, and denies nothing either.
    for (const rule of landlock.paths) {
      lines.push(`${rule.followSymlinks ? 'path-optional' : 'entry'} ${rule.access} ${rule.path}`);
    }
    for (const rule of landlock.ports) lines.push(`port ${rule.access} ${rule.port}`);
  }
  for (const [resource, [soft, hard]] of Object.entries(options.rlimits ?? {})) {
    if (!(SHIM_RLIMIT_RESOURCES as readonly string[]).includes(resource)) {
      throw new BulkheadError(
        'INVALID_LAUNCH_SPEC',
        `Unknown rlimit resource '${resource}'. Fix: use one of ${SHIM_RLIMIT_RESOURCES.join(', ')}.`,
      );
    }
    if (soft > hard) {
      throw new BulkheadError(
        'INVALID_LAUNCH_SPEC',
        `The rlimit ${resource} soft value ${soft} exceeds its hard value ${hard}.`,
      );
    }
    lines.push(`rlimit ${resource} ${formatLimit(soft, resource)} ${formatLimit(hard, resource)}`);
  }
  lines.push(`chdir ${normalizeAbsolutePath(options.workdir, 'workdir')}`);
  const seccompFd = FIRST_PLAN_FD + 1;
  lines.push(`seccomp-fd ${seccompFd}`);
  if (options.relay) lines.push(`relay ${options.relay.port} ${options.relay.socketPath}`);
  for (const name of environmentNames) lines.push(`env-keep ${name}`);
  if (options.command !== undefined) {
    if (
      options.command.length === 0 ||
      !options.command[0] ||
      options.command.some((word) => word.includes('\0'))
    ) {
      throw new BulkheadError(
        'INVALID_LAUNCH_SPEC',
        'The command is empty or holds a NUL byte, which no program can receive. Fix: pass the program and its arguments.',
      );
    }
    for (const word of options.command) lines.push(`argument ${Buffer.from(word).toString('hex')}`);
  }
  const fds = [Buffer.from(`${lines.join('\n')}\n`), filter];
  const statusFd = FIRST_PLAN_FD + fds.length;

  const enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>> = {
    env: ['environment'],
  };
  if (landlock.enabled) enforcement.filesystem = unixSockets ? ['landlock'] : ['landlock', 'seccomp'];
  if (network !== 'open') {
    enforcement[`network.${network}`] = [...(landlock.handledNetwork ? ['landlock'] : []), 'seccomp'];
  }
  if (!capabilities.process.spawn) enforcement['process.spawn'] = ['seccomp'];

  const warnings = [...landlock.degraded];
  if (pathView === 'host') {
    warnings.push(
      unixSockets
        ? 'without a mount namespace, unix sockets reachable by path (such as /run/docker.sock) can still be connected to: Landlock does not filter connect() on them, and unix sockets were allowed'
        : UNIX_SOCKETS_REFUSED_WARNING,
    );
  }
  return {
    args: ['--config-fd', String(FIRST_PLAN_FD), '--status-fd', String(statusFd)],
    fds,
    statusFd,
    enforcement,
    warnings,
    facts: {
      landlockAbi: landlock.abi,
      landlockMinimumAbi: landlock.minimumAbi,
      landlockHandledFilesystem: landlock.handledFilesystem,
      landlockHandledNetwork: landlock.handledNetwork,
      landlockScoped: landlock.scoped,
      landlockPathRules: landlock.paths.length,
      seccompInstructions: filter.length / 8,
    },
    landlock,
  };
}
