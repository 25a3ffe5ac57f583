import { createHash } from 'node:crypto';
import { constants, readFileSync, realpathSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { release } from 'node:os';
import { join, posix } from 'node:path';
import {
  type BubblewrapFacts,
  findExecutable,
  probeBubblewrap,
  probeUserNamespaces,
  sandboxIdentity,
  type UserNamespaceFacts,
} from '@bulkhead/linux';

export interface NamespaceProbes {
  bubblewrap: BubblewrapFacts;
  userNamespaces: UserNamespaceFacts;
}

/** Where the process tier keeps what it learnt about bubblewrap and user namespaces between processes. */
export interface ProbeCacheOptions {
  /** A folder only the caller may write, e.g. `$XDG_RUNTIME_DIR/bulkhead` or `~/.cache/bulkhead`. */
  directory: string;
}

const SYSCTLS = [
  'user/max_user_namespaces',
  'kernel/unprivileged_userns_clone',
  'kernel/apparmor_restrict_unprivileged_userns',
];

function readOrMissing(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '(missing)';
  }
}

/**
 * Everything the two probes' answers depend on: this boot, the kernel, the knobs distributions use to
 * turn user namespaces off, the identity bubblewrap runs as, and the very bubblewrap binary (its real
 * path, inode, size and times, so an upgrade or a replaced file is a new key). Undefined when there
 * is no bubblewrap to key on: then nothing is cached.
 */
export async function namespaceProbeKey(bubblewrapPath: string): Promise<string | undefined> {
  const found = await findExecutable(bubblewrapPath);
  if (!found) return undefined;
  let binary: { path: string; ino: number; size: number; mtimeMs: number; ctimeMs: number };
  try {
    const path = realpathSync(found);
    const status = statSync(path);
    binary = { path, ino: status.ino, size: status.size, mtimeMs: status.mtimeMs, ctimeMs: status.ctimeMs };
  } catch {
    return undefined;
  }
  const identity = sandboxIdentity();
  const parts = {
    version: 1,
    bootId: readOrMissing('/proc/sys/kernel/random/boot_id'),
    kernel: release(),
    caller: process.getuid?.() ?? -1,
    identity: [identity.uid, identity.gid, identity.switchFromRoot],
    sysctls: SYSCTLS.map((name) => readOrMissing(`/proc/sys/${name}`)),
    requested: bubblewrapPath,
    bubblewrap: binary,
  };
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function cacheFile(options: ProbeCacheOptions): string {
  return join(options.directory, `process-tier-probe-${process.getuid?.() ?? 'any'}.json`);
}

/** The cached probes for `key`, or undefined: a missing, foreign, writable-by-others or stale file is never used. */
async function readCached(options: ProbeCacheOptions, key: string): Promise<NamespaceProbes | undefined> {
  const path = cacheFile(options);
  try {
    const status = await stat(path);
    // Written by someone else, or writable by others: it could claim anything.
    if (status.uid !== (process.getuid?.() ?? status.uid) || (status.mode & 0o022) !== 0) return undefined;
    const entry = JSON.parse(readFileSync(path, 'utf8')) as { key?: unknown } & Partial<NamespaceProbes>;
    if (entry.key !== key || entry.bubblewrap?.found !== true || entry.userNamespaces?.usable !== true)
      return undefined;
    return { bubblewrap: entry.bubblewrap, userNamespaces: entry.userNamespaces };
  } catch {
    return undefined;
  }
}

/**
 * The cache folder and, if need be, its parent (~/.cache/bulkhead under a fresh ~/.cache). Not with
 * `recursive: true`: on Node 20 that loops forever where the kernel answers ENOENT under a folder that
 * exists (a folder under /proc, say), and a launch would hang on a cache that is only an optimisation.
 */
async function makeFolder(directory: string): Promise<void> {
  const make = (path: string) =>
    mkdir(path, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  try {
    await make(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await make(posix.dirname(directory));
    await make(directory);
  }
}

async function writeCached(options: ProbeCacheOptions, key: string, probes: NamespaceProbes): Promise<void> {
  const path = cacheFile(options);
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await makeFolder(options.directory);
    const file = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await file.writeFile(JSON.stringify({ key, ...probes }));
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch {
    // A cache that cannot be written only costs the next process a probe.
    await rm(temporary, { force: true }).catch(() => {});
  }
}

/**
 * bubblewrap's facts and whether it can make user namespaces here, from the cache when the key still
 * matches, else probed for real (two bubblewrap runs). Only a usable result is cached: a cached
 * "unusable" would keep later processes in the weaker shim-only mode after the host was fixed, while a
 * stale "usable" can only make bubblewrap fail at launch (fail closed). The key changes with every
 * fact the answer depends on, so the cache never goes stale silently.
 */
export async function probeNamespacesCached(
  bubblewrapPath: string,
  options: ProbeCacheOptions | undefined,
): Promise<NamespaceProbes> {
  const key = options ? await namespaceProbeKey(bubblewrapPath) : undefined;
  if (options && key) {
    const cached = await readCached(options, key);
    if (cached) return cached;
  }
  const [bubblewrap, userNamespaces] = await Promise.all([
    probeBubblewrap(bubblewrapPath),
    probeUserNamespaces(bubblewrapPath),
  ]);
  if (options && key && bubblewrap.found && userNamespaces.usable) {
    await writeCached(options, key, { bubblewrap, userNamespaces });
  }
  return { bubblewrap, userNamespaces };
}
