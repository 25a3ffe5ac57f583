import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  BulkheadError,
  type CapabilityKey,
  createChildProcessSandbox,
  type EnforcementMechanism,
  type LaunchSpec,
  type Sandbox,
  type SandboxResult,
  type Violation,
} from '@bulkhead/core';
import type { EgressProxy } from '@bulkhead/egress';
import {
  buildBubblewrapArguments,
  createSandboxCgroup,
  type HostPathKind,
  ownerProcessAlive,
  type PreparedSandboxCgroup,
  parentPidOf,
  planShim,
  prepareRuntimeDirectory,
  readShimStatus,
  reapAdoptedProcess,
  type SandboxCgroup,
  SHIM_SANDBOX_PATH,
  sandboxCgroupName,
  sandboxGrants,
  sandboxIdentity,
  sandboxTierDirectory,
  spawnPiped,
  stageIdMappedMounts,
} from '@bulkhead/linux';
import { gpuDeviceNodes, inspectPaths, readableByOthers, stateDirectories } from './host-paths.js';
import type { PreparedSandbox, PreparedSandboxPool } from './prepared-sandboxes.js';
import type { ProcessTierHost } from './probe-process-tier.js';
import {
  EGRESS_RELAY_PORT,
  EGRESS_SANDBOX_SOCKET,
  egressProxySource,
  egressSocketDirectories,
  openSandboxEgress,
  type SandboxEgress,
} from './sandbox-egress.js';

export type Cleanup = () => Promise<unknown> | unknown;

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

/**
 * bubblewrap's init reports a payload killed by signal N as exit status 128+N (like a shell): turn it
 * back into the signal. An exit status in 129-192 chosen by the payload itself reads the same.
 */
function translateBubblewrapExit(exitCode: number | null, signal: NodeJS.Signals | null) {
  if (signal !== null || exitCode === null || exitCode <= 128) return { exitCode, signal };
  const name = SIGNAL_NAMES.get(exitCode - 128);
  return name ? { exitCode: null, signal: name } : { exitCode, signal };
}

function allGrants(capabilities: LaunchSpec['capabilities']): string[] {
  return [...capabilities.filesystem.read, ...capabilities.filesystem.write];
}

function readToEnd(stream: Readable): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** A pipe of the child beyond the three Node types (the tier spawns with up to eight). */
function stdioAt(child: ChildProcess, fd: number): Readable | Writable | null | undefined {
  return (child.stdio as unknown as (Readable | Writable | null)[])[fd];
}

function spawned(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
}

export async function runCleanups(cleanups: Cleanup[]): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      // Keep releasing the rest.
    }
  }
}

function endPipe(stream: unknown, data?: Buffer): void {
  const writable = stream as Writable | null;
  if (!writable) return;
  writable.on('error', () => {});
  writable.end(data);
}

interface Resources {
  cgroup: SandboxCgroup;
  enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
  warnings: string[];
  rlimits: { [resource: string]: [number, number] };
}

/**
 * The sandbox's cgroups (made now, or prepared before the launch), and the per-process rlimit that
 * stands in for a memory cgroup when none is writable.
 */
async function prepareResources(
  spec: LaunchSpec,
  id: string,
  host: ProcessTierHost,
  prepared?: PreparedSandboxCgroup,
): Promise<Resources> {
  const { resources, process: processes } = spec.capabilities;
  const limits = {
    memoryBytes: resources.memoryBytes,
    maxProcesses: processes.maxProcesses,
    ...(resources.cpus === undefined ? {} : { cpus: resources.cpus }),
  };
  const cgroup = prepared ? prepared.limit(limits) : await createSandboxCgroup({ sandboxId: id, limits });
  const enforcement: Resources['enforcement'] = {};
  const warnings = [...cgroup.warnings];
  const rlimits: Resources['rlimits'] = {};
  if (Number.isFinite(resources.memoryBytes)) {
    if (cgroup.enforcement.memory) enforcement['resources.memory'] = [cgroup.enforcement.memory];
    else {
      const bytes = Math.floor(resources.memoryBytes);
      rlimits.as = [bytes, bytes];
      enforcement['resources.memory'] = ['rlimit'];
      warnings.push(
        `No writable memory cgroup: RLIMIT_AS (${bytes} bytes) caps each process's address space, not the sandbox's total. ${host.report.enforcement['resources.memory']?.enforced ? ((host.report.enforcement['resources.memory'] as { note?: string }).note ?? '') : ''}`.trim(),
      );
    }
  }
  if (Number.isFinite(processes.maxProcesses) && cgroup.enforcement.processes) {
    enforcement['process.maxProcesses'] = [cgroup.enforcement.processes];
  }
  if (resources.cpus !== undefined && cgroup.enforcement.cpus)
    enforcement['resources.cpus'] = [cgroup.enforcement.cpus];
  return { cgroup, enforcement, warnings, rlimits };
}

/** Turns what the shim reported into the result: a missing or non-executable command is an exit status. */
function shimOutcome(status: Buffer): { error?: BulkheadError; warning?: string } {
  const error = readShimStatus(status, { tier: 'process' });
  if (!error) return {};
  if (error.code === 'COMMAND_NOT_FOUND' || error.code === 'COMMAND_NOT_EXECUTABLE')
    return { warning: error.message };
  return { error };
}

interface StartedChild {
  child: ChildProcess;
  /** Pids the supervisor itself owns (bwrap's monitor and init): not signalled with a soft signal. */
  supervisors: number[];
  enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
  warnings: string[];
  status: Promise<Buffer>;
  translateExit?: (
    exitCode: number | null,
    signal: NodeJS.Signals | null,
  ) => { exitCode: number | null; signal: NodeJS.Signals | null };
  /** Kills the tree without the cgroup (its last resort). */
  fallbackKill: () => void;
  /** Runs once the supervised child exited. */
  afterExit?: () => void;
  /**
   * Resolves once the shim exec'd the payload (undefined) or failed before it (the error). Awaited
   * only after the sandbox listens for the exit: a quick payload may exit before it resolves.
   */
  startupError?: () => Promise<BulkheadError | undefined>;
}

async function assertWorkdir(spec: LaunchSpec): Promise<void> {
  const { workdir, filesystem } = spec.capabilities;
  const granted = [...filesystem.read, ...filesystem.write].some(
    (grant) => workdir === grant || grant === '/' || workdir.startsWith(`${grant}/`),
  );
  // Synchronous on purpose: a stat takes microseconds, a round trip through the thread pool more,
  // and 100 launches at once must not queue behind each other there.
  const isDirectory = statSync(workdir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  if (!granted || !isDirectory) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      `The working directory ${workdir} ${isDirectory ? 'is not inside any read or write grant' : 'does not exist'}. Fix: create it and grant it in filesystem.read or filesystem.write.`,
      { path: workdir, tier: 'process' },
    );
  }
}

/** What launches need beyond the spec: the egress proxy, and where its refusals go. */
export interface LaunchContext {
  egressProxy?: () => Promise<EgressProxy>;
  reportViolation: (violation: Violation) => void;
  /** Opened ahead of its launch: id-mapped copies of its own (see stageIdMappedMounts' `share`). */
  prepared?: boolean;
}

/**
 * A namespace sandbox half started: bubblewrap made the namespaces and mounts, its sandbox is in the
 * cgroups, and the shim waits for its plan (which names the program). Opened at the launch, or ahead
 * of it for a prepared sandbox, and then released by `releaseNamespace()`.
 */
export interface OpenedNamespace {
  mode: 'namespace';
  child: ChildProcess;
  bubblewrapPid: number;
  /** bubblewrap's sandbox process: the init of the pid namespace. */
  childPid: number;
  /** The capabilities it was opened for, with the egress proxy's environment. */
  capabilities: LaunchSpec['capabilities'];
  extraReadPaths: string[];
  extraWritePaths: string[];
  relay?: { port: number; socketPath: string };
  egressSocket?: string;
  gpuDevices: string[];
  warnings: string[];
  /** The host facts the view was built from; a prepared sandbox is used only while they still hold. */
  hostView: string;
  /** What each granted and denied path was when its mounts were made (see planLandlock's `pathKinds`). */
  pathKinds: Record<string, HostPathKind>;
  /** Stops holding bubblewrap's messages on stderr (the payload's from then on). */
  releaseMessages: () => void;
  /**
   * Gives back the host's staged id-mapped copies of the grants: once bubblewrap has bound them into
   * the sandbox (its own mounts stay), so that live sandboxes add no mounts to the host's namespace,
   * which every new sandbox copies and bubblewrap re-reads after each bind. Idempotent.
   */
  releaseStaging: () => Promise<void>;
  /** An allow-list's egress channel, opened with the sandbox (see `SandboxEgress.assign`). */
  egress?: SandboxEgress;
}

/**
 * The shim's command line in both modes, before its plan is known: the plan on fd 3, the seccomp
 * filter on 4, status on 5. The program comes in the plan.
 */
const SHIM_ARGUMENTS = ['--config-fd', '3', '--status-fd', '5'];
const SHIM_STATUS_FD = 5;

/** A shim started with `SHIM_ARGUMENTS` can take this plan (planShim lays its fds out the same way). */
function assertStartedFor(plan: { args: string[]; statusFd: number }): void {
  if (plan.statusFd !== SHIM_STATUS_FD || plan.args.join(' ') !== SHIM_ARGUMENTS.join(' ')) {
    throw new BulkheadError(
      'INTERNAL_ERROR',
      `The shim was started with ${SHIM_ARGUMENTS.join(' ')}, but its plan needs ${plan.args.join(' ')}.`,
      { tier: 'process' },
    );
  }
}

const NAMESPACE_INFO_FD = 6;
const NAMESPACE_BLOCK_FD = 7;

/** What a namespace sandbox's view depends on in the host, besides its capabilities. */
export async function namespaceHostView(capabilities: LaunchSpec['capabilities']) {
  const [pathKinds, egressDirectories] = await Promise.all([
    inspectPaths(capabilities),
    egressSocketDirectories(allGrants(capabilities)),
  ]);
  return { pathKinds, egressDirectories, fingerprint: JSON.stringify([pathKinds, egressDirectories]) };
}

export async function openNamespace(
  spec: Pick<LaunchSpec, 'capabilities'>,
  id: string,
  host: ProcessTierHost,
  placement: Pick<SandboxCgroup, 'addProcess'>,
  cleanups: Cleanup[],
  context: LaunchContext,
): Promise<OpenedNamespace> {
  const identity = sandboxIdentity();
  const [runtime, { pathKinds, egressDirectories, fingerprint }] = await Promise.all([
    prepareRuntimeDirectory(),
    namespaceHostView(spec.capabilities),
  ]);
  let { capabilities } = spec;
  let egressSocket: string | undefined;
  let sandboxEgress: SandboxEgress | undefined;
  if (capabilities.network.mode === 'allowlist') {
    // A root caller's socket links live beside the shim-only folders: a crashed owner's go with them.
    if (identity.switchFromRoot) {
      staleFoldersReaped ??= reapStaleSandboxFolders(runtime.directory).catch(() => 0);
      await staleFoldersReaped;
    }
    const egress = await openSandboxEgress({
      proxy: await (context.egressProxy ?? egressProxySource())(),
      sandboxId: id,
      allow: capabilities.network.allow,
      environment: capabilities.env,
      onViolation: context.reportViolation,
      ...(identity.switchFromRoot ? { sandboxOwner: { uid: identity.uid, gid: identity.gid } } : {}),
      runtimeDirectory: runtime.directory,
    });
    cleanups.push(egress.release);
    sandboxEgress = egress;
    egressSocket = egress.hostSocketPath;
    // Every inherited proxy variable is replaced: all of them point at the relay.
    capabilities = { ...capabilities, env: egress.environment };
  }
  const gpuDevices =
    capabilities.resources.gpus === 'none' ? [] : await gpuDeviceNodes(capabilities.resources.gpus);
  // A tier built on this one (the session tier's sound and video) adds nodes and binds of its own.
  const granted = sandboxGrants();
  const devices = [...gpuDevices, ...granted.devices];

  let sources: Record<string, string> = {};
  let releaseStaging = async () => {};
  if (identity.switchFromRoot) {
    // The sandbox uid owns nothing: root-owned grants it must write, or cannot read, come id-mapped.
    const { read, write, deny } = capabilities.filesystem;
    const staged: { path: string; kind: 'directory' | 'file' }[] = [];
    for (const path of new Set([...write, ...read])) {
      const kind = pathKinds[path];
      if (deny.includes(path) || (kind !== 'directory' && kind !== 'file')) continue;
      const writable = write.includes(path) && !read.includes(path);
      if (writable || !(await readableByOthers(path))) staged.push({ path, kind });
    }
    const mounts = await stageIdMappedMounts({
      sandboxName: sandboxCgroupName(id),
      share: context.prepared !== true,
      paths: staged,
      uid: identity.uid,
      gid: identity.gid,
    });
    cleanups.push(mounts.release);
    releaseStaging = mounts.release;
    sources = mounts.sources;
  }

  // Other sandboxes' staging mounts, folders and egress sockets never show through a broad grant.
  const hiddenDirectories = stateDirectories([runtime.directory, ...egressDirectories]);
  const tierDirectory = sandboxTierDirectory({ capabilities, pathKinds, hiddenDirectories });
  const shimPath = posix.join(tierDirectory, posix.basename(SHIM_SANDBOX_PATH));
  const egressSandboxSocket = posix.join(tierDirectory, posix.basename(EGRESS_SANDBOX_SOCKET));
  const common = {
    capabilities,
    pathKinds,
    sandboxUid: identity.uid,
    sandboxGid: identity.gid,
    sources,
    shim: { hostPath: host.shimPath!, sandboxPath: shimPath },
    deniedFile: runtime.deniedFile,
    devices,
    disableUserNamespaces: host.supportsDisableUserNamespaces,
    hiddenDirectories,
    binds: [
      ...(egressSocket ? [{ hostPath: egressSocket, sandboxPath: egressSandboxSocket }] : []),
      ...granted.binds,
    ],
  };
  const view = buildBubblewrapArguments({ ...common, command: [] });
  const bubblewrap = buildBubblewrapArguments({
    ...common,
    // The program comes in the shim's plan, written once the sandbox is released.
    command: [shimPath, ...SHIM_ARGUMENTS],
    infoFd: NAMESPACE_INFO_FD,
    blockFd: NAMESPACE_BLOCK_FD,
  });

  const child = spawnPiped({
    file: host.bubblewrapPath!,
    args: bubblewrap.args,
    cwd: '/',
    env: {},
    stdioCount: NAMESPACE_BLOCK_FD + 1,
    ...(identity.switchFromRoot ? { uid: identity.uid, gid: identity.gid } : {}),
  });
  child.once('error', () => {});
  const bubblewrapExited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Until the payload is released, stderr holds only bubblewrap's own messages. Node drains the
  // pipes nobody listens to once a child exits, so without a listener an early failure's reason
  // would be gone (and its end missed) by the time it is read.
  const holdMessages = () => {};
  child.stderr!.on('readable', holdMessages);
  await spawned(child);
  const bubblewrapPid = child.pid!;
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const failed = async (what: string, childPid: number | undefined, cause?: unknown) => {
    await stopBubblewrap(child, bubblewrapExited, childPid);
    const message = await bubblewrapMessage(child.stderr!);
    for (const stream of child.stdio) stream?.destroy();
    return new BulkheadError(
      'LAUNCH_FAILED',
      `bubblewrap ${what}: ${message || (cause as Error | undefined)?.message || 'no reason given'}.`,
      {
        tier: 'process',
        fix: 'check that every granted path and bind source exists on the host and the sandbox uid may reach it; `bulkhead doctor` says what this host lacks',
        ...(cause === undefined ? {} : { cause }),
      },
    );
  };
  const info = await readToEnd(stdioAt(child, NAMESPACE_INFO_FD) as Readable);
  const childPid = Number(/"child-pid"\s*:\s*(\d+)/.exec(info.toString())?.[1]);
  if (!Number.isInteger(childPid) || childPid <= 0)
    throw await failed('did not start the sandbox', undefined);
  // bwrap's sandbox process waits on the block fd: nothing of the payload runs yet, so whatever it
  // starts is born inside the cgroups.
  try {
    // bwrap's own monitor stays outside: it is the supervisor, not the sandbox, and exits with it.
    await placement.addProcess(childPid);
  } catch (error) {
    // Gone before it was placed: bubblewrap failed while setting up, and said why on stderr.
    throw await failed('stopped before the payload ran', childPid, error);
  }
  // From here the shim runs, and waits for its plan.
  endPipe(stdioAt(child, NAMESPACE_BLOCK_FD), Buffer.from([1]));
  return {
    mode: 'namespace',
    child,
    bubblewrapPid,
    childPid,
    capabilities,
    extraReadPaths: view.extraReadPaths,
    extraWritePaths: view.extraWritePaths,
    ...(egressSocket ? { relay: { port: EGRESS_RELAY_PORT, socketPath: egressSandboxSocket } } : {}),
    ...(egressSocket ? { egressSocket } : {}),
    gpuDevices,
    warnings: bubblewrap.warnings,
    hostView: fingerprint,
    pathKinds,
    releaseMessages: () => child.stderr!.off('readable', holdMessages),
    releaseStaging,
    ...(sandboxEgress ? { egress: sandboxEgress } : {}),
  };
}

/** Hands an opened namespace sandbox its plan: from here the payload runs. */
function releaseNamespace(opened: OpenedNamespace, spec: LaunchSpec, resources: Resources): StartedChild {
  const { child, childPid } = opened;
  // The spec's own capabilities (its process and resource settings may differ from a prepared
  // sandbox's), with the environment the sandbox was opened with.
  const capabilities = { ...spec.capabilities, env: opened.capabilities.env };
  const plan = planShim({
    capabilities,
    extraReadPaths: opened.extraReadPaths,
    extraWritePaths: opened.extraWritePaths,
    workdir: capabilities.workdir,
    pathView: 'namespace',
    // Denies are left to the mount namespace only where it masked them.
    pathKinds: opened.pathKinds,
    rlimits: resources.rlimits,
    ...(opened.relay ? { relay: opened.relay } : {}),
    command: spec.command,
  });
  assertStartedFor(plan);
  opened.releaseMessages();
  for (const [index, data] of plan.fds.entries()) endPipe(stdioAt(child, 3 + index), data);
  const status = readToEnd(stdioAt(child, plan.statusFd) as Readable);
  // The status fd ends when the shim runs the payload or fails: either way bubblewrap, which starts
  // the shim only after its last mount, no longer needs the staged copies.
  void status.then(opened.releaseStaging, opened.releaseStaging).catch(() => {});

  return {
    child,
    supervisors: [opened.bubblewrapPid, childPid],
    // bwrap's monitor does not wait for its pid-namespace init: reap it if it came to this process.
    afterExit: () => reapAdoptedProcess(childPid),
    enforcement: {
      ...plan.enforcement,
      filesystem: ['mount-namespace', 'user-namespace', ...(plan.enforcement.filesystem ?? [])],
      [`network.${capabilities.network.mode}`]:
        capabilities.network.mode === 'open'
          ? []
          : [
              'network-namespace',
              ...(opened.egressSocket ? ['egress-proxy'] : []),
              ...(plan.enforcement[`network.${capabilities.network.mode}`] ?? []),
            ],
      'devices.deny': ['mount-namespace'],
      env: ['environment'],
      'resources.timeout': [
        'supervisor',
        'pid-namespace',
        ...(resources.cgroup.enforcement.kill ? [resources.cgroup.enforcement.kill] : []),
      ],
      ...(opened.gpuDevices.length > 0 ? { 'resources.gpus': ['device-nodes', 'mount-namespace'] } : {}),
    },
    warnings: [...opened.warnings, ...plan.warnings],
    status,
    translateExit: translateBubblewrapExit,
    // Killing the pid namespace's init kills every process in it.
    fallbackKill: () => {
      try {
        process.kill(childPid, 'SIGKILL');
      } catch {
        // Gone.
      }
    },
  };
}

/**
 * Stops a bubblewrap that failed to start its sandbox, and waits until it is gone. Its sandbox
 * process is killed first, while bwrap still runs to reap it (killed after bwrap, it would be left
 * to the host's init); bwrap then exits on its own, or is killed.
 */
async function stopBubblewrap(
  child: ChildProcess,
  exited: Promise<void>,
  sandboxPid: number | undefined,
): Promise<void> {
  const running = () => child.exitCode === null && child.signalCode === null;
  if (running() && sandboxPid !== undefined && parentOf(sandboxPid) === child.pid) {
    try {
      process.kill(sandboxPid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  if (running()) {
    const settled = await Promise.race([
      exited.then(() => true),
      delay(STARTUP_GRACE_MS, false, { ref: false }),
    ]);
    if (!settled) child.kill('SIGKILL');
  }
  await exited;
}

/** The parent pid of a live process, from /proc (undefined when it is gone). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** How long a failed bubblewrap gets to exit, and its stderr to end, before either is forced. */
const STARTUP_GRACE_MS = 1000;

/**
 * What bubblewrap wrote on stderr before it failed. Bounded: a process it left behind could hold the
 * pipe open, and a launch must fail, never hang.
 */
async function bubblewrapMessage(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  const drain = () => {
    for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null)
      chunks.push(chunk);
  };
  await new Promise<void>((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      stream.off('readable', drain);
      resolve();
    };
    const timer = setTimeout(finish, STARTUP_GRACE_MS);
    stream.on('readable', drain);
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
    drain();
    if (stream.readableEnded || stream.destroyed) finish();
  });
  drain();
  return Buffer.concat(chunks).toString().trim();
}

let staleFoldersReaped: Promise<unknown> | undefined;

/**
 * Removes the private /tmp and HOME folders of shim-only sandboxes whose owner process died before
 * disposing them. They hold no mount (shim-only mode makes none), so removing them is safe.
 */
export async function reapStaleSandboxFolders(runtimeDirectory: string): Promise<number> {
  const folder = posix.join(runtimeDirectory, 'sandboxes');
  const entries = await readdir(folder).catch(() => [] as string[]);
  let removed = 0;
  for (const entry of entries) {
    const owner = /^(\d+)-/.exec(entry)?.[1];
    if (owner === undefined || ownerProcessAlive(Number(owner))) continue;
    await rm(posix.join(folder, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/**
 * A shim-only sandbox half started: its private folders made, the shim spawned with its environment
 * and placed in the cgroups, waiting for its plan (which names the program). Opened at the launch,
 * or ahead of it for a prepared sandbox, and then released by `releaseShimOnly()`.
 */
export interface OpenedShimOnly {
  mode: 'shim-only';
  child: ChildProcess;
  home: string;
  temporary: string;
  devices: string[];
}

export async function openShimOnly(
  spec: Pick<LaunchSpec, 'capabilities'>,
  id: string,
  host: ProcessTierHost,
  placement: Pick<SandboxCgroup, 'addProcess'>,
  cleanups: Cleanup[],
): Promise<OpenedShimOnly> {
  const { capabilities } = spec;
  const identity = sandboxIdentity();
  const runtime = await prepareRuntimeDirectory();
  staleFoldersReaped ??= reapStaleSandboxFolders(runtime.directory).catch(() => 0);
  await staleFoldersReaped;
  // No mount namespace: the private /tmp and HOME are folders of the host, removed at dispose.
  const privateRoot = posix.join(runtime.directory, 'sandboxes', sandboxCgroupName(id));
  const home = posix.join(privateRoot, 'home');
  const temporary = posix.join(privateRoot, 'tmp');
  // Synchronous for the same reason as the cgroups: each call is microseconds of kernel work that a
  // thread-pool round trip would multiply (measured: shim-only launch 6.6 -> 5.9 ms).
  mkdirSync(posix.dirname(privateRoot), { recursive: true, mode: 0o711 });
  mkdirSync(privateRoot, { mode: 0o711 });
  cleanups.push(async () => rmSync(privateRoot, { recursive: true, force: true }));
  mkdirSync(home, { mode: 0o700 });
  mkdirSync(temporary, { mode: 0o700 });
  if (identity.switchFromRoot) {
    chownSync(home, identity.uid, identity.gid);
    chownSync(temporary, identity.uid, identity.gid);
  }
  const granted = sandboxGrants();
  if (granted.devices.length + granted.binds.length > 0) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      'The process tier runs in shim-only mode here, without a mount namespace to bind device nodes or sockets into, so the grants of withSandboxGrants() cannot be given. Fix: make unprivileged user namespaces available to bubblewrap (namespace mode).',
      { tier: 'process' },
    );
  }
  const devices =
    capabilities.resources.gpus === 'none' ? [] : await gpuDeviceNodes(capabilities.resources.gpus);
  const environment = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    TMPDIR: temporary,
    LANG: 'C.UTF-8',
    ...capabilities.env,
  };
  // The program comes in the shim's plan, written once the sandbox is released.
  const child = spawnPiped({
    file: host.shimPath!,
    args: SHIM_ARGUMENTS,
    cwd: '/',
    env: environment,
    stdioCount: SHIM_STATUS_FD + 1,
    ...(identity.switchFromRoot ? { uid: identity.uid, gid: identity.gid } : {}),
  });
  child.once('error', () => {});
  await spawned(child);
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  // The shim waits for its plan on the config fd: placed in the cgroups first, it cannot fork outside.
  await placement.addProcess(child.pid!);
  return { mode: 'shim-only', child, home, temporary, devices };
}

/** Hands an opened shim-only sandbox its plan: from here the payload runs. */
async function releaseShimOnly(
  opened: OpenedShimOnly,
  spec: LaunchSpec,
  resources: Resources,
): Promise<StartedChild> {
  const { capabilities } = spec;
  const { child, home, temporary, devices } = opened;
  const identity = sandboxIdentity();
  const runtime = await prepareRuntimeDirectory();
  // No mount namespace to hide Bulkhead's own folders: Landlock keeps a broad grant out of them.
  const hidden = stateDirectories([
    runtime.directory,
    ...(await egressSocketDirectories(allGrants(capabilities))),
  ]);
  const plan = planShim({
    capabilities: {
      ...capabilities,
      filesystem: {
        ...capabilities.filesystem,
        deny: [...new Set([...capabilities.filesystem.deny, ...hidden])],
      },
    },
    extraReadPaths: ['/dev/urandom', '/dev/random', '/proc/self', ...devices],
    extraWritePaths: [home, temporary, '/dev/null', '/dev/zero', '/dev/full', ...devices],
    workdir: capabilities.workdir,
    pathView: 'host',
    // The shim dies with its parent: this process, or the spawner that started it.
    parentPid: parentPidOf(child),
    rlimits: resources.rlimits,
    command: spec.command,
  });
  assertStartedFor(plan);
  const status = readToEnd(stdioAt(child, plan.statusFd) as Readable);
  for (const [index, data] of plan.fds.entries()) endPipe(stdioAt(child, 3 + index), data);
  // The status fd is close-on-exec: its end means the payload runs (or the shim failed).
  const pid = child.pid!;
  return {
    child,
    supervisors: [],
    enforcement: {
      ...plan.enforcement,
      'devices.deny': ['landlock'],
      env: ['environment'],
      ...(resources.cgroup.enforcement.kill
        ? { 'resources.timeout': ['supervisor', resources.cgroup.enforcement.kill] }
        : {}),
      ...(devices.length > 0 ? { 'resources.gpus': ['landlock'] } : {}),
    },
    warnings: [...plan.warnings],
    status,
    // The status fd is close-on-exec: its end means the payload runs, or the shim failed first.
    startupError: async () => {
      const reported = shimOutcome(await status);
      if (
        reported.error &&
        identity.switchFromRoot &&
        (reported.error.details as { step?: string } | undefined)?.step === 'chdir'
      ) {
        return new BulkheadError(
          'LAUNCH_FAILED',
          `${reported.error.message} In shim-only mode a root caller's sandbox runs as uid ${identity.uid} (nobody) without a mount namespace, so it reaches only what that uid may reach on the host.`,
          {
            tier: 'process',
            path: capabilities.workdir,
            fix: `make ${capabilities.workdir} and its parents reachable by uid ${identity.uid} (chmod o+x on the parents, or setfacl -m u:${identity.uid}:rwx), or use the namespace mode, which id-maps root-owned grants`,
            cause: reported.error,
          },
        );
      }
      return reported.error;
    },
    fallbackKill: () => {
      try {
        // The shim made a new session: its process group holds what did not leave it.
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    },
  };
}

/** A sandbox of this tier: it says whether it was prepared before the launch (see `preparedSandboxes`). */
export interface ProcessSandbox extends Sandbox {
  readonly startup: 'cold' | 'warm';
}

/** Launches one process-tier sandbox in the mode the probe chose. */
export async function launchProcessSandbox(
  spec: LaunchSpec,
  host: ProcessTierHost,
  options: {
    egressProxy?: () => Promise<EgressProxy>;
    preparedSandboxes?: PreparedSandboxPool;
    /**
     * A sandbox the caller prepared (a tier built on this one), taken once the launch is known
     * valid; undefined where it no longer fits. The pool is then not asked.
     */
    claimPrepared?: () => Promise<PreparedSandbox | undefined>;
  } = {},
): Promise<ProcessSandbox> {
  if (!Array.isArray(spec.command) || spec.command.length === 0 || !spec.command[0]) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      'Nothing to run: the command is empty. Fix: pass the program and its arguments.',
      { tier: 'process' },
    );
  }
  await assertWorkdir(spec);
  const id = spec.id ?? randomUUID();
  const cleanups: Cleanup[] = [];
  const violations: Violation[] = [];
  const reportViolation = (violation: Violation) => {
    violations.push(violation);
    spec.onViolation?.(violation);
  };
  let resources: Resources | undefined;
  let started: StartedChild;
  const pool = options.preparedSandboxes;
  const shape = options.claimPrepared ? undefined : pool?.shapeOf(spec, host);
  const prepared = options.claimPrepared
    ? await options.claimPrepared()
    : shape
      ? await pool?.take(shape, spec, host)
      : undefined;
  try {
    if (prepared) cleanups.push(...prepared.cleanups);
    resources = await prepareResources(spec, id, host, prepared?.cgroup);
    if (!prepared) cleanups.push(resources.cgroup.remove);
    if (host.mode === 'namespace') {
      if (prepared?.opened.mode === 'namespace') prepared.opened.egress?.assign(id, reportViolation);
      const opened =
        prepared?.opened.mode === 'namespace'
          ? prepared.opened
          : await openNamespace(spec, id, host, resources.cgroup, cleanups, {
              ...(options.egressProxy ? { egressProxy: options.egressProxy } : {}),
              reportViolation,
            });
      started = releaseNamespace(opened, spec, resources);
    } else {
      const opened =
        prepared?.opened.mode === 'shim-only'
          ? prepared.opened
          : await openShimOnly(spec, id, host, resources.cgroup, cleanups);
      started = await releaseShimOnly(opened, spec, resources);
    }
  } catch (error) {
    await runCleanups(cleanups);
    throw error;
  }
  // Without a prepared sandbox, the next launch should find one. With one, the next is prepared once
  // this sandbox is gone: preparing holds the kernel's cgroup lock while it waits for an RCU grace
  // period, and this sandbox's own cgroup removal would wait behind it.
  if (shape && !prepared) pool?.refill(shape, spec, host, options.egressProxy);
  const { cgroup } = resources;
  const warnings = [...resources.warnings, ...started.warnings];
  const enforcement = { ...started.enforcement, ...resources.enforcement };

  const sandbox = createChildProcessSandbox({
    id,
    tier: 'process',
    child: started.child,
    timeoutMs: spec.capabilities.resources.timeoutMs,
    killTree: async (signal) => {
      if (signal !== 'SIGKILL') {
        await cgroup.signal(signal, started.supervisors);
        return;
      }
      if (cgroup.enforcement.kill) await cgroup.kill();
      else started.fallbackKill();
    },
    finish: async () => {
      const result: Partial<SandboxResult> = {};
      try {
        const statistics = await cgroup.statistics();
        if (statistics.peakMemoryBytes !== undefined) result.peakMemoryBytes = statistics.peakMemoryBytes;
        if (statistics.cpuMs !== undefined) result.cpuMs = statistics.cpuMs;
        result.oomKilled = statistics.oomKilled;
        if (statistics.oomKilled) {
          const violation: Violation = {
            time: new Date().toISOString(),
            sandboxId: id,
            kind: 'resource',
            message: `a process was killed at the memory cap of ${spec.capabilities.resources.memoryBytes} bytes`,
            rule: 'resources.memory',
          };
          reportViolation(violation);
        }
        if (statistics.processLimitHits > 0) {
          const violation: Violation = {
            time: new Date().toISOString(),
            sandboxId: id,
            kind: 'process',
            message: `${statistics.processLimitHits} process creation(s) refused at processes.max = ${spec.capabilities.process.maxProcesses}`,
            rule: 'process.maxProcesses',
          };
          reportViolation(violation);
        }
        // Every holder of the status fd is dead by now (the tree was killed), so it ends at once.
        const reported = shimOutcome(await started.status);
        if (reported.warning) warnings.push(reported.warning);
        if (reported.error)
          warnings.push(`The exec shim failed before the payload ran: ${reported.error.message}`);
      } finally {
        started.afterExit?.();
        await runCleanups(cleanups);
        if (shape && prepared) pool?.refill(shape, spec, host, options.egressProxy);
      }
      return result;
    },
    violations,
    warnings,
    enforcement,
    ...(started.translateExit ? { translateExit: started.translateExit } : {}),
  });
  const startupError = await started.startupError?.();
  if (startupError) {
    await sandbox[Symbol.asyncDispose]();
    throw startupError;
  }
  return Object.assign(sandbox, { startup: prepared ? ('warm' as const) : ('cold' as const) });
}
