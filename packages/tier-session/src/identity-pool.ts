import { closeSync, fstatSync, openSync, statSync, unlinkSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { BulkheadError, onProcessExit } from '@bulkhead/core';
import koffi from 'koffi';

/** A block of host ids, uid and gid side by side: the i-th uid goes with the i-th gid. */
export interface IdRange {
  firstUid: number;
  firstGid: number;
  count: number;
}

/** The host account a sandbox runs under, held until `release()`. */
export interface IdentityLease {
  uid: number;
  gid: number;
  /** `transient`: allocated for this sandbox only; `account`: an account the administrator created. */
  kind: 'transient' | 'account';
  /** Frees the id for the next sandbox. Idempotent. */
  release(): Promise<void>;
  /** At process exit: removes the lock file (the lock itself ends with the process). */
  releaseSync(): void;
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;

let flockFunction: ((fd: number, operation: number) => number) | undefined;

function flock(fd: number, operation: number): number {
  flockFunction ??= koffi.load(null).func('int flock(int, int)') as (fd: number, operation: number) => number;
  return flockFunction(fd, operation);
}

/** A lock taken by `tryLock`, with the exit clean-up that has covered it since before its file was opened. */
interface HeldLock {
  handle: FileHandle;
  /** Cancels the exit clean-up: the lock is released the ordinary way. */
  forgetAtExit: () => void;
}

/**
 * Takes the lock of one id: an exclusive `flock` on a file named after it. The kernel drops the
 * lock when the holding process dies, so the ids of a crashed caller come back by themselves, and
 * the lock is shared by every process on the host, so concurrent callers never get the same id.
 * Returns undefined when another holder has it.
 *
 * From before the file is opened, an exit of this process removes it: as held (a session running or
 * being prepared), or, while the open is still on its way, if nobody holds it then.
 */
async function tryLock(directory: string, uid: number): Promise<HeldLock | undefined> {
  const path = posix.join(directory, `${uid}.lock`);
  let held: FileHandle | undefined;
  const forgetAtExit = onProcessExit(() => {
    if (held) removeFile(path);
    else removeIfUnlocked(path);
  });
  try {
    for (;;) {
      const handle = await open(path, 'a+', 0o600);
      if (flock(handle.fd, LOCK_EX | LOCK_NB) !== 0) {
        const errno = koffi.errno();
        await handle.close();
        if (errno === EWOULDBLOCK) {
          forgetAtExit();
          return undefined;
        }
        throw new BulkheadError(
          'IDENTITY_LOCK_FAILED',
          `Could not lock ${path} (flock errno ${errno}), so the id ${uid} cannot be reserved for a sandbox. Fix: keep the session tier's state directory on a local filesystem that supports flock.`,
          { tier: 'session', path, details: { errno } },
        );
      }
      held = handle;
      // A releasing holder unlinks the file after unlocking it: a lock taken on the unlinked inode
      // would not exclude the next caller, who creates a new file. Only a lock on the linked file counts.
      const [status, linked] = await Promise.all([handle.stat(), stat(path).catch(() => undefined)]);
      if (linked && linked.ino === status.ino && linked.dev === status.dev) {
        await handle.truncate(0);
        await handle.write(`${process.pid}\n`, 0);
        return { handle, forgetAtExit };
      }
      held = undefined;
      await handle.close();
    }
  } catch (error) {
    forgetAtExit();
    throw error;
  }
}

function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already.
  }
}

/**
 * Removes a lock file nobody holds, as a releasing holder does: locked, then unlinked while locked,
 * so that a caller that opened it meanwhile sees its inode gone and opens the new file.
 */
function removeIfUnlocked(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return; // not made
  }
  try {
    if (
      flock(fd, LOCK_EX | LOCK_NB) === 0 &&
      statSync(path, { throwIfNoEntry: false })?.ino === fstatSync(fd).ino
    )
      removeFile(path);
  } finally {
    closeSync(fd);
  }
}

/**
 * How a held lease ends: `release` unlocks and removes its lock file; `releaseSync` (at process exit)
 * removes the file, and the lock ends with the process. Until either, an exit of this process
 * removes the file (see `tryLock`).
 */
function leaseRelease(
  directory: string,
  uid: number,
  lock: HeldLock,
): Pick<IdentityLease, 'release' | 'releaseSync'> {
  const path = posix.join(directory, `${uid}.lock`);
  let released: Promise<void> | undefined;
  return {
    release: () => {
      // Only while held: once released, the file may be another sandbox's lock of the same id.
      lock.forgetAtExit();
      released ??= (async () => {
        // Unlink while still holding the lock, so that no one can lock this inode and then lose it.
        await unlink(path).catch(() => {});
        flock(lock.handle.fd, LOCK_UN);
        await lock.handle.close();
      })();
      return released;
    },
    releaseSync: () => {
      if (released) return;
      lock.forgetAtExit();
      removeFile(path);
    },
  };
}

const reapedDirectories = new Set<string>();

/**
 * Makes the folder of lock files: private to the caller, since a foreign lock would block an id. The
 * first time in a process it also removes the lock files nobody holds: a caller killed by a signal
 * runs no exit clean-up, and its ids' files stayed (harmless, since the lock ended with it, but a
 * file per id it ever held).
 */
async function prepareDirectory(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  if (reapedDirectories.has(directory)) return;
  reapedDirectories.add(directory);
  for (const name of await readdir(directory)) {
    if (name.endsWith('.lock')) removeIfUnlocked(posix.join(directory, name));
  }
}

/**
 * Reserves one id of `range` that no other sandbox on this host holds, lowest first: ids that come
 * back are handed out again (after their sandbox and everything it ran are gone), so a busy host
 * cycles through a few ids and reuses their id-mapping instead of making one per sandbox.
 */
export async function leaseTransientIdentity(options: {
  range: IdRange;
  stateDirectory: string;
}): Promise<IdentityLease> {
  const { range, stateDirectory } = options;
  await prepareDirectory(stateDirectory);
  for (let index = 0; index < range.count; index++) {
    const uid = range.firstUid + index;
    const lock = await tryLock(stateDirectory, uid);
    if (!lock) continue;
    return {
      uid,
      gid: range.firstGid + index,
      kind: 'transient',
      ...leaseRelease(stateDirectory, uid, lock),
    };
  }
  throw new BulkheadError(
    'IDENTITY_POOL_EXHAUSTED',
    `Every one of the ${range.count} transient ids (${range.firstUid}-${range.firstUid + range.count - 1}) is held by a running sandbox, so no new session can start. Fix: wait for sandboxes to end, or configure a larger range (createSessionProvider({ transientIds: { count } })).`,
    { tier: 'session', capability: 'identity' },
  );
}

/** Reserves a named account's uid, so that two sandboxes never share it at the same time. */
export async function leaseAccountIdentity(options: {
  name: string;
  uid: number;
  gid: number;
  stateDirectory: string;
}): Promise<IdentityLease> {
  await prepareDirectory(options.stateDirectory);
  const lock = await tryLock(options.stateDirectory, options.uid);
  if (!lock) {
    throw new BulkheadError(
      'IDENTITY_IN_USE',
      `The account '${options.name}' (uid ${options.uid}) already runs another sandbox; two sandboxes under one account could signal and read each other. Fix: wait for the other sandbox to end, or give this one another identity.name.`,
      { tier: 'session', capability: 'identity' },
    );
  }
  return {
    uid: options.uid,
    gid: options.gid,
    kind: 'account',
    ...leaseRelease(options.stateDirectory, options.uid, lock),
  };
}
