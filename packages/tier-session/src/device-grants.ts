import type { Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import {
  type Capabilities,
  type CapabilityKey,
  type Enforcement,
  type EnforcementMechanism,
  UnenforceableCapabilityError,
} from '@bulkhead/core';
import { type BubblewrapBind, sandboxCgroupName, stageIdMappedMounts } from '@bulkhead/linux';

/** Where a sound server listens, relative to its user's runtime folder: PulseAudio's, PipeWire's. */
const SOUND_SOCKETS = ['pulse/native', 'pipewire-0'] as const;
const PULSE_SOCKET = 'pulse/native';
/** sun_path's size on Linux, its terminating NUL included. */
const UNIX_SOCKET_PATH_LIMIT = 108;

/** The ids the sandbox runs under; absent in the probe, which cannot know them: any uid but the owner's. */
export interface SandboxIds {
  uid: number;
  gid: number;
}

export interface DeviceLookup {
  /** Where the host's device nodes are: /dev (tests point it at nodes they made). */
  deviceDirectory: string;
  /** The caller's runtime folder, where its sound server's socket is. */
  callerRuntimeDirectory: string;
  ids?: SandboxIds;
  /**
   * A root caller binds sockets from an id-mapped copy, in which the sandbox's uid owns them: the
   * caller's runtime folder (0700) need not be reachable, and the socket's owner bits decide.
   */
  idMappedSockets: boolean;
}

/** The caller's runtime folder: `$XDG_RUNTIME_DIR`, else systemd's `/run/user/<uid>`. */
export function callerRuntimeDirectory(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime?.startsWith('/') ? runtime : `/run/user/${process.getuid?.() ?? 0}`;
}

/** May `ids` (absent: a uid and gid that own nothing) use `status` with `access` (rwx bits, 0-7)? */
function permits(status: Stats, access: number, ids: SandboxIds | undefined): boolean {
  const shift = ids && status.uid === ids.uid ? 6 : ids && status.gid === ids.gid ? 3 : 0;
  return ((status.mode >> shift) & access) === access;
}

/** The first folder above `path` that `ids` cannot enter, or undefined when it can reach it. */
async function closedAncestor(path: string, ids: SandboxIds | undefined): Promise<string | undefined> {
  for (let folder = posix.dirname(path); ; folder = posix.dirname(folder)) {
    const status = await stat(folder).catch(() => undefined);
    if (!status || !permits(status, 0o1, ids)) return folder;
    if (folder === '/') return undefined;
  }
}

function whose(ids: SandboxIds | undefined): string {
  return ids ? `the sandbox's uid ${ids.uid}` : "a sandbox's uid";
}

interface Found {
  devices: BubblewrapBind[];
  /** Sockets by their path relative to a runtime folder. */
  sockets: { hostPath: string; relativePath: string }[];
  /** What exists but the sandbox could not use, one reason each. */
  unusable: string[];
  /** Where was looked, for a message that says what is missing. */
  searched: string[];
}

/**
 * The character devices directly in `folder` whose names match, bound at the same name under
 * `sandboxFolder` (/dev/snd, /dev), when the sandbox's uid may reach, read and write them.
 */
async function characterDevices(
  folder: string,
  pattern: RegExp,
  sandboxFolder: string,
  ids: SandboxIds | undefined,
  found: Found,
): Promise<void> {
  const names = (await readdir(folder).catch(() => [] as string[])).filter((name) => pattern.test(name));
  for (const name of names.sort()) {
    const hostPath = posix.join(folder, name);
    const status = await lstat(hostPath).catch(() => undefined);
    if (!status?.isCharacterDevice()) continue;
    const closed = await closedAncestor(hostPath, ids);
    if (closed !== undefined) {
      found.unusable.push(`${hostPath}: ${whose(ids)} cannot enter ${closed}`);
    } else if (!permits(status, 0o6, ids)) {
      found.unusable.push(
        `${hostPath}: ${whose(ids)} may not read and write it (owner ${status.uid}, group ${status.gid}, mode ${(status.mode & 0o777).toString(8)})`,
      );
    } else {
      found.devices.push({ hostPath, sandboxPath: posix.join(sandboxFolder, name) });
    }
  }
}

/** The host's sound device nodes (/dev/snd/*) and the caller's sound server sockets. */
export async function findSound(lookup: DeviceLookup): Promise<Found> {
  const folder = posix.join(lookup.deviceDirectory, 'snd');
  const found: Found = { devices: [], sockets: [], unusable: [], searched: [`${folder}/*`] };
  await characterDevices(folder, /./, '/dev/snd', lookup.ids, found);
  for (const relativePath of SOUND_SOCKETS) {
    const hostPath = posix.join(lookup.callerRuntimeDirectory, relativePath);
    found.searched.push(hostPath);
    const status = await lstat(hostPath).catch(() => undefined);
    if (!status?.isSocket()) continue;
    // connect() needs write permission on the socket: in an id-mapped copy the sandbox owns it.
    const closed = lookup.idMappedSockets ? undefined : await closedAncestor(hostPath, lookup.ids);
    const writable = lookup.idMappedSockets ? (status.mode & 0o200) !== 0 : permits(status, 0o2, lookup.ids);
    if (closed !== undefined) {
      found.unusable.push(
        `${hostPath}: ${whose(lookup.ids)} cannot enter ${closed} (an unprivileged caller's sandbox reaches the socket through its own path)`,
      );
    } else if (!writable) {
      found.unusable.push(
        `${hostPath}: ${whose(lookup.ids)} may not connect to it (mode ${(status.mode & 0o777).toString(8)})`,
      );
    } else {
      found.sockets.push({ hostPath, relativePath });
    }
  }
  return found;
}

/** The host's video capture and media controller nodes (/dev/video*, /dev/media*). */
export async function findCameras(lookup: DeviceLookup): Promise<Found> {
  const found: Found = {
    devices: [],
    sockets: [],
    unusable: [],
    searched: [posix.join(lookup.deviceDirectory, 'video*'), posix.join(lookup.deviceDirectory, 'media*')],
  };
  await characterDevices(lookup.deviceDirectory, /^(video|media)\d+$/, '/dev', lookup.ids, found);
  return found;
}

const SOUND_FIX =
  'start PulseAudio or PipeWire for the calling user (its socket is looked for in $XDG_RUNTIME_DIR), or load the sound card\'s driver so that /dev/snd has its nodes; if they exist but the sandbox may not use them, give others read-write access (a udev rule with MODE="0666"); otherwise ask for devices.audio: false';
const CAMERA_FIX =
  'connect a camera and load its driver (uvcvideo) so that /dev/video* exists; if it exists but the sandbox may not use it, give others read-write access (a udev rule with MODE="0666"); otherwise ask for devices.webcam: false';

function nothingUsable(what: string, found: Found): string {
  const unusable = found.unusable.length > 0 ? `; found but unusable: ${found.unusable.join('; ')}` : '';
  return `there is no ${what} a sandbox could use (looked for ${found.searched.join(', ')})${unusable}`;
}

function soundMechanisms(found: Found): EnforcementMechanism[] {
  return found.devices.length > 0 ? ['device-nodes', 'mount-namespace'] : ['mount-namespace'];
}

/** What the probe says about devices.audio and devices.webcam on this host. */
export async function deviceEnforcement(
  lookup: DeviceLookup,
): Promise<{ 'devices.audio': Enforcement; 'devices.webcam': Enforcement }> {
  const [sound, cameras] = await Promise.all([findSound(lookup), findCameras(lookup)]);
  const audio: Enforcement =
    sound.devices.length + sound.sockets.length > 0
      ? {
          enforced: true,
          mechanisms: soundMechanisms(sound),
          note: `only when asked: ${[
            ...(sound.devices.length > 0 ? [`${sound.devices.length} sound device node(s) of /dev/snd`] : []),
            ...sound.sockets.map(
              (socket) => `the caller's ${socket.relativePath} socket in the sandbox's own XDG_RUNTIME_DIR`,
            ),
          ].join(' and ')}`,
        }
      : {
          enforced: false,
          reason: nothingUsable('sound device or sound server socket', sound),
          fix: SOUND_FIX,
        };
  const webcam: Enforcement =
    cameras.devices.length > 0
      ? {
          enforced: true,
          mechanisms: ['device-nodes', 'mount-namespace'],
          note: `only when asked: ${cameras.devices.map((device) => device.sandboxPath).join(', ')}`,
        }
      : { enforced: false, reason: nothingUsable('video capture device', cameras), fix: CAMERA_FIX };
  return { 'devices.audio': audio, 'devices.webcam': webcam };
}

export interface GrantedDevices {
  devices: BubblewrapBind[];
  binds: BubblewrapBind[];
  environment: Record<string, string>;
  /** Sandbox paths the desktop denies must leave alone. */
  keep: string[];
  enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
  warnings: string[];
  /** Unmounts the id-mapped socket copies. Idempotent. */
  release: () => Promise<void>;
}

/**
 * The device nodes and sockets a sandbox that asks for devices.audio or devices.webcam gets, checked
 * for its own uid: something it asked for that is absent or unusable fails the launch (never a
 * grant with nothing behind it). Sockets are bound into the sandbox's own runtime folder at their
 * path relative to the caller's, and nothing else of the caller's runtime folder comes along.
 */
export async function grantDevices(
  capabilities: Capabilities,
  lookup: DeviceLookup & { ids: SandboxIds; sandboxId: string; sandboxRuntimeFolder: string },
): Promise<GrantedDevices> {
  const granted: GrantedDevices = {
    devices: [],
    binds: [],
    environment: {},
    keep: [],
    enforcement: {},
    warnings: [],
    release: async () => {},
  };
  const { audio, webcam } = capabilities.devices;
  if (!audio && !webcam) return granted;
  const found = {
    sound: audio ? await findSound(lookup) : undefined,
    cameras: webcam ? await findCameras(lookup) : undefined,
  };
  if (found.sound && found.sound.devices.length + found.sound.sockets.length === 0) {
    throw new UnenforceableCapabilityError(
      'session',
      'devices.audio',
      nothingUsable('sound device or sound server socket', found.sound),
      SOUND_FIX,
    );
  }
  if (found.cameras && found.cameras.devices.length === 0) {
    throw new UnenforceableCapabilityError(
      'session',
      'devices.webcam',
      nothingUsable('video capture device', found.cameras),
      CAMERA_FIX,
    );
  }
  for (const [key, what] of [
    ['devices.audio', found.sound],
    ['devices.webcam', found.cameras],
  ] as const) {
    if (!what) continue;
    granted.devices.push(...what.devices);
    granted.keep.push(...what.devices.map((device) => device.sandboxPath));
    granted.enforcement[key] =
      key === 'devices.audio' ? soundMechanisms(what) : ['device-nodes', 'mount-namespace'];
    for (const reason of what.unusable) granted.warnings.push(`${key} was granted without ${reason}.`);
  }
  if (found.sound?.devices.length) granted.keep.push('/dev/snd');
  const sockets = found.sound?.sockets ?? [];
  if (sockets.length > 0) {
    let sources: Record<string, string> = {};
    if (lookup.idMappedSockets) {
      const staged = await stageIdMappedMounts({
        sandboxName: `${sandboxCgroupName(lookup.sandboxId)}-sound`,
        paths: sockets.map((socket) => ({ path: socket.hostPath, kind: 'file' as const })),
        uid: lookup.ids.uid,
        gid: lookup.ids.gid,
      });
      sources = staged.sources;
      granted.release = staged.release;
    }
    for (const socket of sockets) {
      const sandboxPath = posix.join(lookup.sandboxRuntimeFolder, socket.relativePath);
      if (Buffer.byteLength(sandboxPath) >= UNIX_SOCKET_PATH_LIMIT) {
        await granted.release();
        throw new UnenforceableCapabilityError(
          'session',
          'devices.audio',
          `the sound server socket would be at ${sandboxPath} in the sandbox, longer than a unix socket's path may be (${UNIX_SOCKET_PATH_LIMIT - 1} bytes), so no client could connect to it`,
          'a bug of the session tier, whose session folders are kept short for this: report it with the path',
        );
      }
      granted.binds.push({ hostPath: sources[socket.hostPath] ?? socket.hostPath, sandboxPath });
      if (socket.relativePath === PULSE_SOCKET) granted.environment.PULSE_SERVER = `unix:${sandboxPath}`;
    }
  }
  return granted;
}
