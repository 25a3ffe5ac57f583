import { lstat, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import { X11_SOCKET_DIRECTORY } from './private-display.js';

/**
 * Where a desktop session keeps what a session sandbox must never reach, even inside a broad grant
 * (`/`, `/tmp`, the home folder): display servers, message buses, sound servers, agents holding keys,
 * and the devices of input, sound and video. A path socket in a read-only grant can still be
 * connected to, and Landlock does not mediate connect(), so each is masked by the mount namespace.
 */
const DESKTOP_PATHS = [
  '/tmp/.ICE-unix',
  '/run/user',
  '/run/dbus',
  '/var/run/dbus',
  '/run/pulse',
  '/run/pipewire',
  '/run/systemd/journal',
  '/dev/input',
  '/dev/uinput',
  '/dev/snd',
];

function isInside(path: string, ancestor: string): boolean {
  return ancestor === '/' ? true : path === ancestor || path.startsWith(`${ancestor}/`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function entries(folder: string, pattern: RegExp): Promise<string[]> {
  return (await readdir(folder).catch(() => [] as string[]))
    .filter((name) => pattern.test(name))
    .map((name) => posix.join(folder, name));
}

/**
 * The desktop paths that lie inside one of `grants` and exist, as extra denies. The X sockets are
 * denied one by one, so that the sandbox's own display (`keep`) stays reachable.
 */
export async function desktopDenies(grants: string[], keep: string[] = []): Promise<string[]> {
  const covered = (path: string) => grants.some((grant) => isInside(path, grant));
  // Folders are listed only when a grant reaches into them: most launches list nothing.
  const listed = async (folder: string, pattern: RegExp) =>
    grants.some((grant) => isInside(grant, folder) || isInside(folder, grant))
      ? entries(folder, pattern)
      : [];
  const home = process.env.HOME?.startsWith('/') ? process.env.HOME : homedir();
  const candidates = [
    ...DESKTOP_PATHS,
    ...(await listed(X11_SOCKET_DIRECTORY, /^X\d+$/)),
    ...(await listed('/tmp', /^(ssh-|pulse-|\.X\d+-lock$|dbus-|gnome-|keyring-)/)),
    ...(await listed('/dev', /^video\d+$/)),
    posix.join(home, '.gnupg'),
    posix.join(home, '.ssh'),
    posix.join(home, '.Xauthority'),
    posix.join(home, '.pulse'),
    posix.join(home, '.local', 'share', 'keyrings'),
    ...(process.env.SSH_AUTH_SOCK?.startsWith('/') ? [process.env.SSH_AUTH_SOCK] : []),
    ...(process.env.XAUTHORITY?.startsWith('/') ? [process.env.XAUTHORITY] : []),
  ];
  const denies: string[] = [];
  for (const path of new Set(candidates)) {
    if (keep.includes(path) || !covered(path)) continue;
    if (await exists(path)) denies.push(path);
  }
  return denies;
}
