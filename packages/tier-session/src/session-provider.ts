import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { chmod, lstat, mkdir, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import {
  assertEnforceable,
  BulkheadError,
  type Capabilities,
  createWarmPool,
  type IsolationProvider,
  type LaunchSpec,
  onProcessExit,
  type ProbeReport,
  type Sandbox,
  type SandboxResult,
  TIER_STRENGTH,
  UnenforceableCapabilityError,
} from '@bulkhead/core';
import {
  runtimeDirectory,
  type SandboxGrants,
  withSandboxGrants,
  withSandboxIdentity,
} from '@bulkhead/linux';
import {
  createProcessProvider,
  type PreparedProcessSandbox,
  type ProcessProvider,
  type ProcessSandbox,
} from '@bulkhead/tier-process';
import { desktopDenies } from './desktop-paths.js';
import { callerRuntimeDirectory, grantDevices } from './device-grants.js';
import { findAccount } from './host-accounts.js';
import {
  type IdentityLease,
  type IdRange,
  leaseAccountIdentity,
  leaseTransientIdentity,
} from './identity-pool.js';
import {
  appendIdentityRecord,
  defaultAuditLogPath,
  endIdentitySpan,
  type IdentityRecord,
  startIdentitySpan,
  summariseResult,
} from './identity-record.js';
import { type PrivateDisplay, startPrivateDisplay, X11_SOCKET_DIRECTORY } from './private-display.js';
import { type DisplayMode, probeSessionTier, type SessionTierHost } from './probe-session-tier.js';
import { reapStaleSessions, recordLeftovers, sessionFolderName } from './stale-sessions.js';
import { returnOwnership, runOverSandboxIds } from './subordinate-account.js';
import { callerCookies, writeSandboxAuthority } from './x-authority.js';

export interface SessionProviderOptions {
  /**
   * What a sandbox that asks for `devices.display` gets (core's capability is a yes/no; the mode is
   * the provider's):
   * - `none` (default): no display; asking for one is refused as unenforceable.
   * - `private`: its own headless X server (Xvfb), started and reaped by the tier, with its own
   *   clipboard; DISPLAY and XAUTHORITY point at it.
   * - `host`: the caller's own display ($DISPLAY): an explicit, warned opt-in, since a sandbox on the
   *   person's display can read the screen and inject input.
   */
  display?: DisplayMode;
  /**
   * The private display's screen (`WIDTHxHEIGHTxDEPTH`, default `1280x800x24`) and whether its X
   * server loads GLX (OpenGL over X, default false: it brings Mesa, about 50 MB more per display).
   */
  privateDisplay?: { screen?: string; glx?: boolean };
  /**
   * Host ids a root caller hands out, one per sandbox (default 2000000000+65536). The probe refuses a
   * range that overlaps an account, a group or a subordinate range of /etc.
   */
  transientIds?: IdRange;
  /** JSON-lines audit log of every sandbox's identity and result; `false` turns it off. */
  auditLog?: string | false;
  /** The bubblewrap executable; default `bwrap` on PATH. */
  bubblewrapPath?: string;
  /**
   * Where the host's device nodes are, default `/dev`: the sound (`snd/*`) and video (`video*`,
   * `media*`) nodes `devices.audio` and `devices.webcam` grant are looked up here and appear at
   * /dev in the sandbox. A seam for tests, which make real nodes in a folder of their own.
   */
  deviceDirectory?: string;
  /**
   * How many sessions to keep prepared per view (grants, network, environment, working directory),
   * from the first launch of that view on: the account leased, its folders made, and the process
   * tier's sandbox opened under it (see the process tier's `preparedSandboxes`), so that a launch
   * only writes its audit record, its limits and its program. Never for a display, sound, a camera
   * or a named account. Each holds one transient id until it is used or this process ends. Default
   * 1; 0 for callers that launch once, such as the CLI.
   */
  preparedSandboxes?: number;
}

type Cleanup = () => Promise<unknown> | unknown;

async function runCleanups(cleanups: Cleanup[]): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      // Keep releasing the rest.
    }
  }
}

/** The caller's own X display and its socket, from $DISPLAY (`:0`, `unix:0.0`). */
function hostDisplaySocket(): { display: string; socketPath: string } {
  const match = /^(?:unix)?:(\d+)(?:\.\d+)?$/.exec(process.env.DISPLAY ?? '');
  if (!match) {
    throw new UnenforceableCapabilityError(
      'session',
      'devices.display',
      `display: 'host' needs the caller's local X display in $DISPLAY, and it is ${process.env.DISPLAY ? `'${process.env.DISPLAY}'` : 'unset'}`,
      "run from a desktop session, or use display: 'private'",
    );
  }
  return { display: `:${match[1]}`, socketPath: posix.join(X11_SOCKET_DIRECTORY, `X${match[1]}`) };
}

function refuseClipboardWithoutDisplay(capabilities: Capabilities): void {
  if (capabilities.devices.clipboard && !capabilities.devices.display) {
    throw new UnenforceableCapabilityError(
      'session',
      'devices.clipboard',
      'a clipboard belongs to a display, and devices.display is false, so there is no clipboard to give',
      'ask for devices.display: true as well (with a provider created with display: private)',
    );
  }
}

/**
 * The session tier: the process tier plus an account boundary. Each sandbox runs under its own
 * transient uid/gid (or the account `identity.name` names), switched to before any namespace is made,
 * with a private HOME, /tmp, /dev/shm and XDG_RUNTIME_DIR, no controlling terminal, no desktop
 * sockets or input devices, and, when asked, a display of its own, the host's sound devices and
 * sound server socket, or its cameras. Every sandbox's
 * identity and result are appended to an audit log and set on its trace span.
 */
export function createSessionProvider(options: SessionProviderOptions = {}): SessionProvider {
  const display = options.display ?? 'none';
  const bubblewrapPath = options.bubblewrapPath ?? 'bwrap';
  const auditLog = options.auditLog === undefined ? defaultAuditLogPath() : options.auditLog;
  const deviceDirectory = options.deviceDirectory ?? '/dev';
  const preparedSandboxes = options.preparedSandboxes ?? 1;
  const pool = createWarmPool<PreparedSession>({
    size: preparedSandboxes,
    // The process tier's prepared sandbox already keeps nothing alive.
    idle: () => {},
    // Whether its sandbox still fits is asked by the launch that takes it (see ProcessProvider.launch).
    usable: () => true,
    discard: discardPreparedSession,
    discardSync: discardPreparedSessionSync,
  });
  let host: Promise<SessionTierHost> | undefined;
  const probeHost = () => {
    host ??= probeSessionTier({
      createInner: (path) => createProcessProvider({ mode: 'namespace', bubblewrapPath: path }),
      display,
      bubblewrapPath,
      deviceDirectory,
      ...(options.transientIds === undefined ? {} : { transientIds: options.transientIds }),
    });
    return host;
  };

  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier: 'session',
    strength: TIER_STRENGTH.session,
    async probe(): Promise<ProbeReport> {
      return (await probeHost()).report;
    },
    async launch(spec: LaunchSpec): Promise<SessionSandbox> {
      const resolved = await probeHost();
      refuseClipboardWithoutDisplay(spec.capabilities);
      assertEnforceable(spec.capabilities, resolved.report);
      if (spec.capabilities.devices.display && display === 'host') {
        process.emitWarning(
          "A session sandbox gets the caller's own X display (display: 'host'): it can read the screen and the clipboard and inject input.",
          { code: 'BULKHEAD_HOST_DISPLAY' },
        );
      }
      const settings: SessionSettings = {
        display,
        auditLog,
        privateDisplay: options.privateDisplay,
        deviceDirectory,
      };
      const launched = { ...spec, id: spec.id ?? randomUUID() };
      const shape = preparedShape(spec.capabilities, preparedSandboxes);
      const boot = async () => {
        // Begun on a later turn: its spawn must not come between a sandbox's result and its caller.
        await new Promise((resolve) => setImmediate(resolve));
        return prepareSession(spec.capabilities, resolved, settings);
      };
      const prepared = shape ? await pool.take(shape, boot, { refill: false }) : undefined;
      const opened =
        prepared?.opened ?? (await openSession(spec.capabilities, resolved, settings, launched.id));
      // Like the process tier: after a cold launch the next is prepared at once; after a warm one,
      // once this sandbox is gone, so that preparing does not wait on the kernel's cgroup lock
      // while this sandbox's own cgroups are placed or removed.
      const sandbox = await startSession(launched, opened, resolved, settings, prepared?.inner, () => {
        if (shape && prepared) pool.refill(shape, boot);
      });
      if (shape && !prepared) pool.refill(shape, boot);
      return sandbox;
    },
    drainPreparedSandboxes: () => pool.drain(),
  };
}

/** A session sandbox: it says whether it ran in a session prepared before the launch. */
export interface SessionSandbox extends Sandbox {
  readonly startup: 'cold' | 'warm';
}

/** The session tier's provider: `drainPreparedSandboxes` ends the sessions prepared ahead. */
export interface SessionProvider extends IsolationProvider {
  launch(spec: LaunchSpec): Promise<SessionSandbox>;
  /** Ends every prepared session (its account, folders and sandbox); later launches prepare again. */
  drainPreparedSandboxes(): Promise<void>;
}

/** A session opened ahead of its launch: its account and folders, and its process-tier sandbox. */
interface PreparedSession {
  opened: OpenedSession;
  inner: PreparedProcessSandbox;
}

/**
 * The key of the sessions a launch could use, or undefined where it must open its own: sessions
 * with a display, sound, a camera or a named account are never prepared (a display is a server of
 * its own; a device or an account is the host's, not to be held by a sandbox that may never run).
 */
function preparedShape(capabilities: Capabilities, size: number): string | undefined {
  const { devices } = capabilities;
  if (size <= 0 || capabilities.identity?.name !== undefined) return undefined;
  if (devices.display || devices.clipboard || devices.audio || devices.webcam || devices.input)
    return undefined;
  return JSON.stringify({
    filesystem: capabilities.filesystem,
    network: capabilities.network,
    env: capabilities.env,
    workdir: capabilities.workdir,
    gpus: capabilities.resources.gpus,
    cpuLimited: capabilities.resources.cpus !== undefined,
  });
}

async function prepareSession(
  capabilities: Capabilities,
  host: SessionTierHost,
  settings: SessionSettings,
): Promise<PreparedSession> {
  const { processTier, subordinate } = availableHost(host);
  const opened = await openSession(capabilities, host, settings, 'prepared');
  try {
    const inner = await withSandboxIdentity(
      { uid: opened.lease.uid, gid: opened.lease.gid, switchFromRoot: !subordinate },
      () =>
        withSandboxGrants(opened.devices, () =>
          processTier.prepare({ command: ['true'], capabilities: opened.innerCapabilities }),
        ),
    );
    return { opened, inner };
  } catch (error) {
    await runCleanups(opened.cleanups);
    throw error;
  }
}

async function discardPreparedSession(prepared: PreparedSession): Promise<void> {
  await prepared.inner.discard();
  await runCleanups(prepared.opened.cleanups);
}

/**
 * At process exit: the sandbox's processes and cgroups go now, its folder where this process may
 * remove it (else the next start's reaper does), and the account's lock file (the lock itself ends
 * with this process).
 */
function discardPreparedSessionSync(prepared: PreparedSession): void {
  prepared.inner.discardSync();
  try {
    rmSync(prepared.opened.directory, { recursive: true, force: true });
  } catch {
    // Left for the reaper (a subordinate uid's files).
  }
  prepared.opened.lease.releaseSync();
}

/**
 * The leftovers of sessions whose caller died (see stale-sessions.ts). Checked at every launch: a
 * readdir and a signal 0 per live session, so that a crash is cleaned up by the next session
 * started anywhere, not only by a new process.
 */
async function reapStaleSessionsOf(sessions: string): Promise<void> {
  const root = process.getuid?.() === 0;
  await reapStaleSessions(sessions, {
    remove: (ids, path) =>
      root
        ? rm(path, { recursive: true, force: true })
        : runOverSandboxIds(ids.uid, ids.gid, ['rm', '-rf', path]),
    returnOwnership: (ids, paths) => returnOwnership(paths, ids.uid, ids.gid),
  });
}

/**
 * Where the tier keeps its locks and sessions: the process tier's runtime folder for root
 * (/run/bulkhead); for an unprivileged caller /tmp/bulkhead-session-<uid>, since its own
 * $XDG_RUNTIME_DIR or $TMPDIR is closed to its subordinate uids. A folder there that is not the
 * caller's own, or that others may write, is refused: another user could have planted it.
 */
async function sessionStateDirectory(subordinate: boolean): Promise<string> {
  if (!subordinate) return runtimeDirectory();
  const uid = process.getuid?.() ?? -1;
  const directory = `/tmp/bulkhead-session-${uid}`;
  await mkdir(directory, { mode: 0o711 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const status = await lstat(directory);
  if (!status.isDirectory() || status.uid !== uid || (status.mode & 0o022) !== 0) {
    throw new BulkheadError(
      'LAUNCH_FAILED',
      `${directory} is not a folder of this user's that only it may write (owner ${status.uid}, mode ${(status.mode & 0o7777).toString(8)}), so the session tier will not keep its locks and sessions there. Fix: remove it (another user may have made it) and launch again.`,
      { tier: 'session', path: directory },
    );
  }
  await chmod(directory, 0o711);
  return directory;
}

async function leaseIdentity(capabilities: Capabilities, host: SessionTierHost, stateDirectory: string) {
  const name = capabilities.identity?.name;
  // Only root can switch to an account of /etc/passwd; an unprivileged caller's ids are its subordinates.
  const account = name === undefined || host.switching !== 'root' ? undefined : await findAccount(name);
  if (account) {
    return leaseAccountIdentity({ name: account.name, uid: account.uid, gid: account.gid, stateDirectory });
  }
  if (!host.range) {
    throw new BulkheadError('TIER_UNAVAILABLE', 'The session tier has no ids to hand out on this host.', {
      tier: 'session',
    });
  }
  return leaseTransientIdentity({ range: host.range, stateDirectory });
}

interface SessionSettings {
  display: DisplayMode;
  auditLog: string | false;
  privateDisplay: SessionProviderOptions['privateDisplay'];
  deviceDirectory: string;
}

/** Everything a session sandbox has before its program runs: its account, folders, grants and devices. */
interface OpenedSession {
  lease: IdentityLease;
  /** Its folder under the tier's state directory (runtime folder, leftovers record). */
  directory: string;
  subordinate: boolean;
  /** What the process tier is asked for (its process and resource settings come from each launch). */
  innerCapabilities: Capabilities;
  devices: SandboxGrants;
  deviceEnforcement: Awaited<ReturnType<typeof grantDevices>>['enforcement'];
  privateDisplay: PrivateDisplay | undefined;
  warnings: string[];
  /** What ends it, last first. */
  cleanups: Cleanup[];
}

function availableHost(host: SessionTierHost): {
  processTier: ProcessProvider;
  subordinate: boolean;
  switching: 'root' | 'subordinate';
} {
  if (!host.inner || !host.switching) {
    throw new BulkheadError(
      'TIER_UNAVAILABLE',
      `Tier 'session' is not available on this host: ${host.report.reason}.`,
      {
        tier: 'session',
      },
    );
  }
  return {
    processTier: host.inner,
    subordinate: host.switching === 'subordinate',
    switching: host.switching,
  };
}

/**
 * Leases the sandbox's account and makes its folders, grants and devices. `label` names its folder
 * (the start of the sandbox id, or `prepared` for one opened ahead of its launch).
 */
async function openSession(
  capabilities: Capabilities,
  host: SessionTierHost,
  settings: SessionSettings,
  label: string,
): Promise<OpenedSession> {
  const { subordinate, switching } = availableHost(host);
  const cleanups: Cleanup[] = [];
  const state = await sessionStateDirectory(subordinate);
  let lease: IdentityLease;
  let privateDisplay: PrivateDisplay | undefined;
  const warnings: string[] = [];
  try {
    lease = await leaseIdentity(capabilities, host, posix.join(state, 'session-ids'));
    cleanups.push(lease.release);
    // Owned by the caller, closed to everyone else: the sandbox reaches its part only by grant.
    const sessions = posix.join(state, 'sessions');
    // Synchronous, here and below (microseconds on the state folder), so that a caller that
    // exits leaves no folder that a thread-pool mkdir made after its exit clean-up ran.
    mkdirSync(sessions, { recursive: true, mode: 0o711 });
    // The random part keeps the path unguessable for other local users (the id is in logs).
    await reapStaleSessionsOf(sessions);
    const directory = posix.join(sessions, sessionFolderName(label, randomBytes(8).toString('hex')));
    // A caller that exits while the session runs or is being prepared removes the folder then, unless
    // the reaper needs its note: a subordinate uid's files to give back, a display's socket to remove.
    // From before it is made: an exit while mkdir is on its way must not leave it.
    const forgetFolderAtExit = onProcessExit(() => {
      if (!subordinate && !privateDisplay) rmSync(directory, { recursive: true, force: true });
    });
    cleanups.push(() => {
      forgetFolderAtExit();
      return rm(directory, { recursive: true, force: true });
    });
    mkdirSync(directory, { mode: 0o711 });
    // XDG_RUNTIME_DIR: a write grant. A root caller's is id-mapped, so the sandbox sees a 0700 folder
    // of its own while what it leaves there is the caller's; a subordinate uid is given its own.
    const runtimeFolder = posix.join(directory, 'runtime');
    if (subordinate) {
      await runOverSandboxIds(lease.uid, lease.gid, [
        'sh',
        '-c',
        'mkdir -m 700 "$1" && chown 1:1 "$1"',
        'sh',
        runtimeFolder,
      ]);
    } else {
      mkdirSync(runtimeFolder, { mode: 0o700 });
    }
    const writeGrants = [...capabilities.filesystem.write, runtimeFolder];
    const leftovers = {
      uid: lease.uid,
      gid: lease.gid,
      paths: subordinate ? [runtimeFolder] : [],
      ...(subordinate ? { writeGrants } : {}),
    };
    await recordLeftovers(directory, leftovers);
    if (subordinate) {
      // Runs first at the end: what the sandbox wrote becomes the caller's before anything is removed.
      cleanups.push(() => returnOwnership(writeGrants, lease.uid, lease.gid));
      for (const path of capabilities.filesystem.write) {
        const status = await stat(path).catch(() => undefined);
        if (status && (status.mode & 0o002) === 0) {
          warnings.push(
            `${path} is a write grant, but the sandbox's subordinate uid ${lease.uid} may write only where others may (mode ${(status.mode & 0o777).toString(8)}): make it writable for others or add an ACL for the caller's subordinate ids, or run the caller as root (id-mapped grants).`,
          );
        }
      }
    }

    const environment: Record<string, string> = { ...capabilities.env, XDG_RUNTIME_DIR: runtimeFolder };
    const read = [...capabilities.filesystem.read];
    if (capabilities.devices.display) {
      if (settings.display === 'private') {
        privateDisplay = await startPrivateDisplay({
          sandboxId: label,
          memoryBytes: capabilities.resources.memoryBytes,
          directory,
          uid: lease.uid,
          gid: lease.gid,
          switching,
          bubblewrapPath: host.bubblewrapPath ?? 'bwrap',
          xvfbPath: host.xvfbPath ?? 'Xvfb',
          ...settings.privateDisplay,
        });
        cleanups.push(privateDisplay.stop);
        leftovers.paths.push(privateDisplay.socketPath, privateDisplay.lockPath);
        await recordLeftovers(directory, leftovers);
        read.push(privateDisplay.socketPath, privateDisplay.authorityPath);
        environment.DISPLAY = privateDisplay.display;
        environment.XAUTHORITY = privateDisplay.authorityPath;
      } else if (settings.display === 'host') {
        const hostDisplay = hostDisplaySocket();
        if (
          !(await lstat(hostDisplay.socketPath).then(
            (status) => status.isSocket(),
            () => false,
          ))
        ) {
          throw new UnenforceableCapabilityError(
            'session',
            'devices.display',
            `display: 'host' found no X socket at ${hostDisplay.socketPath} for DISPLAY=${process.env.DISPLAY}`,
            "start the X server, or use display: 'private'",
          );
        }
        read.push(hostDisplay.socketPath);
        environment.DISPLAY = hostDisplay.display;
        // Only the cookie of this display, never the caller's whole Xauthority.
        const source = process.env.XAUTHORITY?.startsWith('/')
          ? process.env.XAUTHORITY
          : posix.join(homedir(), '.Xauthority');
        const cookies = await callerCookies(source, hostDisplay.display.slice(1));
        if (cookies.length > 0) {
          const authorityPath = posix.join(directory, 'Xauthority');
          await writeSandboxAuthority(authorityPath, cookies, { gid: lease.gid, subordinate });
          read.push(authorityPath);
          environment.XAUTHORITY = authorityPath;
        } else {
          warnings.push(
            `No cookie for display ${hostDisplay.display} in ${source}: the X server's own access control decides whether the sandbox may connect.`,
          );
        }
        warnings.push(
          `The sandbox has the caller's own display ${hostDisplay.display} (display: 'host'): it can read the screen and inject input there.`,
        );
      }
    }

    // Sound and video: only when asked, checked for this sandbox's uid, else the launch fails here.
    const devices = await grantDevices(capabilities, {
      deviceDirectory: settings.deviceDirectory,
      callerRuntimeDirectory: callerRuntimeDirectory(),
      ids: { uid: lease.uid, gid: lease.gid },
      idMappedSockets: !subordinate,
      sandboxId: label,
      sandboxRuntimeFolder: runtimeFolder,
    });
    cleanups.push(devices.release);
    Object.assign(environment, devices.environment);
    warnings.push(...devices.warnings);

    const grants = [...read, ...writeGrants];
    const deny = [
      ...capabilities.filesystem.deny,
      ...(await desktopDenies(grants, [
        ...read.filter((path) => !capabilities.filesystem.read.includes(path)),
        ...devices.keep,
      ])),
    ];
    const { identity: _identity, ...rest } = capabilities;
    const innerCapabilities: Capabilities = {
      ...rest,
      filesystem: {
        ...capabilities.filesystem,
        read,
        write: writeGrants,
        deny: [...new Set(deny)],
      },
      // Enforced here, not by the process tier, which grants no device and no display.
      devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
      env: environment,
    };
    return {
      lease,
      directory,
      subordinate,
      innerCapabilities,
      devices: { devices: devices.devices, binds: devices.binds },
      deviceEnforcement: devices.enforcement,
      privateDisplay,
      warnings,
      cleanups,
    };
  } catch (error) {
    await runCleanups(cleanups);
    throw sessionLaunchError(error);
  }
}

function sessionLaunchError(error: unknown): Error {
  if (BulkheadError.isInstance(error)) return error;
  return new BulkheadError(
    'LAUNCH_FAILED',
    `The session tier could not prepare the sandbox: ${(error as Error).message}. Fix: run \`bulkhead doctor\` to see what this host lacks.`,
    { tier: 'session', cause: error },
  );
}

/**
 * Runs the launch's program in an opened session: its audit record first, then the process tier
 * under the session's account (in the sandbox `prepared` ahead of it, when there is one).
 */
async function startSession(
  spec: LaunchSpec,
  opened: OpenedSession,
  host: SessionTierHost,
  settings: SessionSettings,
  prepared?: PreparedProcessSandbox,
  onEnd: () => void = () => {},
): Promise<SessionSandbox> {
  const { processTier, subordinate } = availableHost(host);
  const { capabilities } = spec;
  const id = spec.id ?? randomUUID();
  const { lease, cleanups, warnings, privateDisplay, deviceEnforcement, devices } = opened;
  // The process and resource settings are the launch's own (a prepared session's are another's).
  const innerCapabilities: Capabilities = {
    ...opened.innerCapabilities,
    process: capabilities.process,
    resources: capabilities.resources,
  };
  let inner: ProcessSandbox;
  let record: IdentityRecord;
  try {
    record = {
      event: 'start',
      time: new Date().toISOString(),
      sandboxId: id,
      tier: 'session',
      identity: capabilities.identity?.name ?? null,
      uid: lease.uid,
      gid: lease.gid,
      account: lease.kind,
      manifestDigest: spec.manifestDigest ?? null,
      command: spec.command,
      start: new Date().toISOString(),
    };
    // Written before anything runs: a payload never runs without its record.
    if (settings.auditLog) await appendIdentityRecord(settings.auditLog, record);
    try {
      // A subordinate uid is switched to by the bubblewrap stand-in the process tier was created with.
      inner = await withSandboxIdentity(
        { uid: lease.uid, gid: lease.gid, switchFromRoot: !subordinate },
        () =>
          withSandboxGrants(devices, () =>
            processTier.launch(
              { ...spec, id, capabilities: innerCapabilities },
              prepared ? { prepared } : {},
            ),
          ),
      );
    } catch (error) {
      if (settings.auditLog) {
        const failed: IdentityRecord = {
          ...record,
          event: 'end',
          time: new Date().toISOString(),
          end: new Date().toISOString(),
          error: (error as Error).message,
        };
        await appendIdentityRecord(settings.auditLog, failed).catch(() => {});
      }
      throw error;
    }
  } catch (error) {
    await prepared?.discard();
    await runCleanups(cleanups);
    onEnd();
    throw sessionLaunchError(error);
  }
  const span = startIdentitySpan(record);
  const identityMechanisms = subordinate
    ? ['subordinate-ids', 'user-namespace']
    : ['uid-switch', 'user-namespace'];
  let teardown: Promise<void> | undefined;
  const finish = () => {
    teardown ??= runCleanups(cleanups).then(onEnd);
    return teardown;
  };
  const exited = inner.exited.then(
    async (result): Promise<SandboxResult> => {
      const final: SandboxResult = {
        ...result,
        warnings: [...warnings, ...result.warnings],
        enforcement: {
          ...result.enforcement,
          identity: identityMechanisms,
          'devices.deny': [...(result.enforcement['devices.deny'] ?? []), 'uid-switch'],
          ...deviceEnforcement,
          ...(privateDisplay
            ? { 'devices.display': ['private-x-server', 'mount-namespace'] }
            : capabilities.devices.display
              ? { 'devices.display': ['mount-namespace'] }
              : {}),
        },
      };
      const end: IdentityRecord = {
        ...record,
        event: 'end',
        time: new Date().toISOString(),
        end: new Date().toISOString(),
        result: summariseResult(final),
      };
      // The record is written while the session's folders and id are released: neither waits on the other.
      await Promise.all([
        finish(),
        settings.auditLog
          ? appendIdentityRecord(settings.auditLog, end).catch((error: Error) =>
              final.warnings.push(
                `The audit record could not be written to ${settings.auditLog}: ${error.message}`,
              ),
            )
          : undefined,
      ]);
      endIdentitySpan(span, end);
      return final;
    },
    async (error: unknown) => {
      await finish();
      endIdentitySpan(span, record);
      throw error;
    },
  );
  exited.catch(() => {});

  return {
    id,
    tier: 'session',
    startup: inner.startup,
    stdin: inner.stdin,
    stdout: inner.stdout,
    stderr: inner.stderr,
    exited,
    kill: (signal) => inner.kill(signal),
    async [Symbol.asyncDispose]() {
      await inner[Symbol.asyncDispose]();
      await exited.catch(() => {});
    },
  };
}
