import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmdirSync, unlinkSync } from 'node:fs';
import { type FileHandle, open, readdir, readFile, readlink, rmdir, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BulkheadError, onProcessExit } from '@bulkhead/core';
import { ownerProcessAlive, ROOT_CALLER_SANDBOX_ID } from '../host/host-facts.js';
import { closeDescriptor, lastErrno, libcSyscall, unmount } from '../kernel/libc.js';
import { runtimeDirectory } from './runtime-directory.js';

/*
 * A root caller's sandbox runs as an unprivileged host uid, never as root. Its grants are owned by
 * root, so they are bound from id-mapped copies (Linux 5.12+, mount_setattr MOUNT_ATTR_IDMAP) in
 * which files owned by root appear owned by the sandbox uid: the payload may write its write grants,
 * and what it creates lands on disk owned by root, like the caller's own files. bubblewrap cannot
 * bind a detached mount, so each copy is attached under a private staging folder, shared by the
 * sandboxes launched close in time with the same uid, and removed when the last of them is disposed
 * (or, after a crash, at the next start).
 */

const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const SYS_MOUNT_SETATTR = 442;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const AT_RECURSIVE = 0x8000;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const MOUNT_ATTR_IDMAP = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MNT_DETACH = 2;
const UMOUNT_NOFOLLOW = 8;

function failure(step: string, path: string): BulkheadError {
  const errno = lastErrno();
  return new BulkheadError(
    'ID_MAPPED_MOUNT_FAILED',
    `Could not make an id-mapped copy of ${path} (${step} failed, errno ${errno}). A root caller's sandbox runs as an unprivileged uid and needs one to reach root-owned grants; the filesystem may not support id-mapped mounts (ext4, xfs, btrfs and tmpfs do since Linux 6.3). Fix: grant a folder on such a filesystem, or run the caller as an unprivileged user.`,
    { path, details: { step, errno } },
  );
}

interface IdMapNamespace {
  fd: number;
  handle: FileHandle;
  users: number;
  closed: boolean;
}

/**
 * Id-map namespaces by `uid:gid`, most recently used last. Making one costs a process (~15 ms), so
 * they are kept for reuse: the shared sandbox id of the process tier for the process's lifetime,
 * others (the session tier's transient ids, which it hands out lowest first so that they repeat)
 * until more than `KEPT_NAMESPACES` are idle. An attached mount holds its own reference, so
 * dropping one never affects a staging that used it.
 */
const KEPT_NAMESPACES = 64;
const namespaces = new Map<string, Promise<IdMapNamespace>>();

/**
 * A user namespace whose only mapping is `0 -> uid` (and `0 -> gid`), held by an open fd (so that
 * garbage collection never closes it under a staging in progress). It describes the id-mapping; no
 * process runs in it. Pair every call with `releaseIdMapNamespace`.
 */
async function acquireIdMapNamespace(uid: number, gid: number): Promise<number> {
  const key = `${uid}:${gid}`;
  let entry = namespaces.get(key);
  if (!entry) {
    entry = createIdMapNamespace(uid, gid);
    entry.catch(() => namespaces.delete(key));
  }
  namespaces.delete(key);
  namespaces.set(key, entry);
  const namespace = await entry;
  // Dropped while this caller waited for it: make another.
  if (namespace.closed) return acquireIdMapNamespace(uid, gid);
  namespace.users++;
  return namespace.fd;
}

async function releaseIdMapNamespace(uid: number, gid: number): Promise<void> {
  const entry = namespaces.get(`${uid}:${gid}`);
  if (entry) (await entry).users--;
  if (namespaces.size <= KEPT_NAMESPACES) return;
  for (const [key, candidate] of namespaces) {
    if (namespaces.size <= KEPT_NAMESPACES) break;
    if (key === `${ROOT_CALLER_SANDBOX_ID}:${ROOT_CALLER_SANDBOX_ID}`) continue;
    const namespace = await candidate.catch(() => undefined);
    if (!namespace || namespace.users > 0) continue;
    namespaces.delete(key);
    namespace.closed = true;
    await namespace.handle.close();
  }
}

async function createIdMapNamespace(uid: number, gid: number): Promise<IdMapNamespace> {
  const ownNamespace = await readlink('/proc/self/ns/user');
  const holder = spawn('unshare', ['--user', '--', 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const spawned = new Promise<void>((resolve, reject) => {
    holder.once('spawn', resolve);
    holder.once('error', reject);
  });
  try {
    await spawned;
    const pid = holder.pid!;
    for (let attempt = 0; ; attempt++) {
      const current = await readlink(`/proc/${pid}/ns/user`).catch(() => ownNamespace);
      if (current !== ownNamespace) break;
      if (attempt > 2000 || holder.exitCode !== null) {
        throw new BulkheadError('ID_MAPPED_MOUNT_FAILED', 'unshare --user did not create a user namespace.');
      }
      await delay(1);
    }
    await writeFile(`/proc/${pid}/uid_map`, `0 ${uid} 1\n`);
    await writeFile(`/proc/${pid}/gid_map`, `0 ${gid} 1\n`);
    const handle = await open(`/proc/${pid}/ns/user`, 'r');
    return { fd: handle.fd, handle, users: 0, closed: false };
  } finally {
    holder.stdin?.end();
    holder.kill('SIGKILL');
  }
}

export interface StagedMounts {
  /** Host source to bind, by granted path. */
  sources: Record<string, string>;
  /** Unmounts the copies and removes the staging folder. Idempotent. */
  release(): Promise<void>;
}

function stagingRoot(): string {
  return posix.join(runtimeDirectory(), 'mounts');
}

/**
 * Removes a mount point made by this module: never recursively, so a live mount is never emptied.
 * Synchronous, like the mount calls beside it: the staging folder is on the runtime folder's tmpfs.
 */
function removeMountPoint(path: string): void {
  unmount(path, MNT_DETACH | UMOUNT_NOFOLLOW);
  try {
    rmdirSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') {
      try {
        unlinkSync(path);
      } catch {
        // Gone already.
      }
    }
  }
}

/**
 * One attached id-mapped copy of a path, shared by the sandboxes staged within `SHARING_WINDOW_MS` of
 * its making (see `stageIdMappedMounts`), removed when the last of them releases it.
 */
interface StagedCopy {
  key: string;
  folder: string;
  target: string;
  madeAt: number;
  users: number;
  ready: Promise<void>;
}

/**
 * Why copies are shared: every staged copy is a mount in the host's mount namespace, which each new
 * sandbox's namespace copies and which bubblewrap reads (/proc/self/mountinfo) after every one of its
 * binds. 100 sandboxes launched at once with a copy each made 122 host mounts, and a launch's
 * bubblewrap spent 12 ms of CPU instead of 5. A copy is reused only by launches close in time, so
 * that one never shows a grant as it was long ago (a folder replaced, a filesystem mounted in it).
 */
const SHARING_WINDOW_MS = 2_000;
const copies = new Map<string, StagedCopy>();
let copiesMade = 0;
/**
 * Every copy attached to the host, shared or not: a caller that exits while one is staged (a launch
 * or a prepared sandbox being made) must not leave a mount of its grant in the host's namespace.
 */
const attached = new Set<StagedCopy>();
let removeAtExit = false;

function removeAttachedCopies(): void {
  for (const copy of [...attached]) removeCopy(copy);
}

function makeCopy(copy: StagedCopy, path: string, kind: 'directory' | 'file', uid: number, gid: number) {
  return (async () => {
    const userNamespace = await acquireIdMapNamespace(uid, gid);
    try {
      // The runtime folder is /run/bulkhead for the root callers that stage (a tmpfs): synchronous
      // calls there cost microseconds, less than a trip through the thread pool.
      attached.add(copy);
      if (!removeAtExit) {
        removeAtExit = true;
        onProcessExit(removeAttachedCopies);
      }
      mkdirSync(stagingRoot(), { recursive: true, mode: 0o711 });
      mkdirSync(copy.folder, { mode: 0o711 });
      if (kind === 'directory') mkdirSync(copy.target, { mode: 0o700 });
      else closeSync(openSync(copy.target, 'wx', 0o600));
      const attributes = Buffer.alloc(32);
      attributes.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
      attributes.writeBigUInt64LE(BigInt(userNamespace), 24);
      const fd = Number(
        libcSyscall(
          SYS_OPEN_TREE,
          'int',
          AT_FDCWD,
          'const char *',
          path,
          'unsigned int',
          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        ),
      );
      if (fd < 0) throw failure('open_tree', path);
      try {
        const set = Number(
          libcSyscall(
            SYS_MOUNT_SETATTR,
            'int',
            fd,
            'const char *',
            '',
            'unsigned int',
            AT_EMPTY_PATH | AT_RECURSIVE,
            'void *',
            attributes,
            'size_t',
            32,
          ),
        );
        if (set < 0) throw failure('mount_setattr', path);
        const moved = Number(
          libcSyscall(
            SYS_MOVE_MOUNT,
            'int',
            fd,
            'const char *',
            '',
            'int',
            AT_FDCWD,
            'const char *',
            copy.target,
            'unsigned int',
            MOVE_MOUNT_F_EMPTY_PATH,
          ),
        );
        if (moved < 0) throw failure('move_mount', path);
      } finally {
        closeDescriptor(fd);
      }
    } catch (error) {
      removeCopy(copy);
      throw error;
    } finally {
      await releaseIdMapNamespace(uid, gid);
    }
  })();
}

function removeCopy(copy: StagedCopy): void {
  attached.delete(copy);
  if (copies.get(copy.key) === copy) copies.delete(copy.key);
  removeMountPoint(copy.target);
  try {
    rmdirSync(copy.folder);
  } catch {
    // Reaped at the next start if something still holds it.
  }
}

async function acquireCopy(
  path: string,
  kind: 'directory' | 'file',
  uid: number,
  gid: number,
  /** A copy of the sandbox's own, in a folder of this name (under the staging root). */
  ownFolder?: string,
) {
  const key = ownFolder === undefined ? JSON.stringify([uid, gid, kind, path]) : `own:${ownFolder}`;
  const recent = ownFolder === undefined ? copies.get(key) : undefined;
  if (recent && Date.now() - recent.madeAt < SHARING_WINDOW_MS) {
    recent.users++;
    try {
      await recent.ready;
      return recent;
    } catch (error) {
      recent.users--;
      throw error;
    }
  }
  // Named after the owner pid first, for the reaper.
  const folder = posix.join(stagingRoot(), ownFolder ?? `${process.pid}-copy-${++copiesMade}`);
  const copy: StagedCopy = {
    key,
    folder,
    target: posix.join(folder, '0'),
    madeAt: Date.now(),
    users: 1,
    ready: Promise.resolve(),
  };
  copy.ready = makeCopy(copy, path, kind, uid, gid);
  if (ownFolder === undefined) copies.set(key, copy);
  await copy.ready;
  return copy;
}

function releaseCopy(copy: StagedCopy): void {
  copy.users--;
  if (copy.users === 0) removeCopy(copy);
}

/**
 * Gives each path (a file or a folder, with what is mounted inside it) an id-mapped copy attached
 * under a staging folder named after the owner pid, and returns where each copy is. Launches close
 * in time share a copy (see `SHARING_WINDOW_MS`); `release` gives this one's back.
 */
export async function stageIdMappedMounts(options: {
  /**
   * With `share: false`, the copies' folders are named `<sandboxName>-<index>` (it must start with
   * the owner pid and a dash, as sandboxCgroupName's names do, for the reaper).
   */
  sandboxName?: string;
  paths: { path: string; kind: 'directory' | 'file' }[];
  uid: number;
  gid: number;
  /**
   * False: copies of this sandbox's own, never shared, named after it. For a sandbox prepared to
   * wait for a later launch: a shared copy would outlive the launches it was made with, under
   * none of their names. Default true.
   */
  share?: boolean;
}): Promise<StagedMounts> {
  const sources: Record<string, string> = {};
  if (options.paths.length === 0) return { sources, release: async () => {} };
  await reapStaleStagingOnce();
  const held: StagedCopy[] = [];
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    for (const copy of held.reverse()) releaseCopy(copy);
  };
  try {
    const own = options.share === false ? (options.sandboxName ?? `${process.pid}-own`) : undefined;
    for (const [index, { path, kind }] of options.paths.entries()) {
      const ownFolder = own === undefined ? undefined : `${own}-${index}`;
      const copy = await acquireCopy(path, kind, options.uid, options.gid, ownFolder);
      held.push(copy);
      sources[path] = copy.target;
    }
  } catch (error) {
    await release();
    throw error;
  }
  return { sources, release };
}

/** Unmounts and removes the staging folders of sandboxes whose owner process died. */
export async function reapStaleStaging(): Promise<number> {
  const root = stagingRoot();
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return 0;
  }
  const stale = entries.filter((entry) => {
    const match = /^(\d+)-/.exec(entry);
    return match !== null && !ownerProcessAlive(Number(match[1]));
  });
  if (stale.length === 0) return 0;
  const mountInfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const entry of stale) {
    const folder = posix.join(root, entry);
    const mountPoints = mountInfo
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((point): point is string => point?.startsWith(`${folder}/`) ?? false);
    for (const point of mountPoints) unmount(point, MNT_DETACH | UMOUNT_NOFOLLOW);
    for (const name of await readdir(folder).catch(() => [] as string[]))
      removeMountPoint(posix.join(folder, name));
    await rmdir(folder).catch(() => {});
  }
  return stale.length;
}

let reaped: Promise<unknown> | undefined;

function reapStaleStagingOnce(): Promise<unknown> {
  reaped ??= reapStaleStaging().catch(() => 0);
  return reaped;
}
