import { renameSync, writeFileSync } from 'node:fs';
import { lstat, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { removeDisplaySocket } from './private-display.js';

/*
 * A session's folder is named `<owner pid>-<sandbox id>-<random>`. When the caller dies without
 * disposing (a crash, SIGKILL), bubblewrap's --die-with-parent ends every process of the sandbox and
 * of its X server, and the kernel drops the id's lock; what stays is on disk: the folder and, for a
 * private display, the server's socket and lock in /tmp. The next caller to start a session removes
 * them, as the process tier reaps the cgroups of dead callers.
 */

/** What a session leaves outside its folder, written into it so that a reaper can find it. */
interface Leftovers {
  uid: number;
  gid: number;
  /** The display's socket and lock, and (for a subordinate uid) the folders it owns. */
  paths: string[];
  /** For a subordinate uid: the write grants whose files must be given back to the caller. */
  writeGrants?: string[];
}

const LEFTOVERS_FILE = 'leftovers.json';

/**
 * The owner pid first (for the reaper), then the start of the sandbox id (for a person reading the
 * folder), then the random part. Short on purpose: sockets are bound inside (a sound server's at
 * `runtime/pulse/native`), and a unix socket's path must fit in 108 bytes.
 */
export function sessionFolderName(sandboxId: string, random: string): string {
  return `${process.pid}-${sandboxId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 8)}-${random}`;
}

/**
 * Notes a display's socket and lock in the session's folder, for the reaper. Written beside and
 * renamed into place: a caller killed mid-write leaves the previous note whole, never a torn one.
 */
export async function recordLeftovers(directory: string, leftovers: Leftovers): Promise<void> {
  const temporary = posix.join(directory, `${LEFTOVERS_FILE}.tmp`);
  // Synchronous (microseconds): no write still on its way in the thread pool when the caller exits.
  writeFileSync(temporary, JSON.stringify(leftovers), { mode: 0o600 });
  renameSync(temporary, posix.join(directory, LEFTOVERS_FILE));
}

/** The note of a dead owner's session, or undefined where there is none or it cannot be read. */
async function readLeftovers(directory: string): Promise<Leftovers | undefined> {
  try {
    return JSON.parse(await readFile(posix.join(directory, LEFTOVERS_FILE), 'utf8')) as Leftovers;
  } catch {
    // Missing or torn (an owner killed while writing it): the folder itself is still removed.
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the folders of sessions whose owner process is gone, and the X socket and lock each one
 * noted. A socket is removed as `removeDisplaySocket` does (only a socket of the session's, never
 * following a link, as the sandbox's uid where the sticky folder asks for it); the lock only if it
 * is a plain file of the caller's, which made it. Returns how many sessions were reaped.
 */
export async function reapStaleSessions(
  sessions: string,
  actions: {
    /** Removes a folder of the sandbox's ids (a subordinate uid's needs its user namespace). */
    remove: (leftovers: { uid: number; gid: number }, path: string) => Promise<void>;
    /** Gives the caller back what the sandbox wrote into its write grants. */
    returnOwnership: (leftovers: { uid: number; gid: number }, paths: string[]) => Promise<void>;
  },
): Promise<number> {
  let reaped = 0;
  for (const entry of await readdir(sessions).catch(() => [] as string[])) {
    const owner = Number(/^(\d+)-/.exec(entry)?.[1]);
    if (!Number.isInteger(owner) || owner === process.pid || alive(owner)) continue;
    const directory = posix.join(sessions, entry);
    const noted = await readLeftovers(directory);
    if (noted?.writeGrants?.length) await actions.returnOwnership(noted, noted.writeGrants).catch(() => {});
    for (const path of noted?.paths ?? []) {
      const status = await lstat(path).catch(() => undefined);
      if (!status || !noted) continue;
      const ownedBySandbox = status.uid === noted.uid;
      if (status.isSocket()) {
        await removeDisplaySocket(path, noted).catch(() => {});
      } else if (status.isDirectory() && ownedBySandbox && path.startsWith(`${directory}/`)) {
        await actions.remove(noted, path).catch(() => {});
      } else if (status.isFile() && status.uid === process.getuid?.() && /^\/tmp\/\.X\d+-lock$/.test(path)) {
        await unlink(path).catch(() => {});
      }
    }
    await rm(directory, { recursive: true, force: true });
    reaped++;
  }
  return reaped;
}
