import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { BulkheadError, type NetworkMode, UnenforceableCapabilityError } from '@bulkhead/core';
import {
  filesystemRightsForAbi,
  LANDLOCK_ABI_KNOWN,
  LANDLOCK_ACCESS_FS,
  LANDLOCK_ACCESS_NET,
  LANDLOCK_READ_RIGHTS,
  minimumAbiFor,
  networkRightsForAbi,
  scopesForAbi,
} from './landlock-rights.js';

export interface LandlockPlanOptions {
  /** The Landlock ABI of the kernel the shim will run on (see `landlockAbi()`). */
  abi: number;
  /** Absolute paths to allow reading and executing. */
  read: string[];
  /** Absolute paths to allow everything in. */
  write: string[];
  /** Absolute paths to keep unreadable and unwritable, even inside a grant. */
  deny: string[];
  /** The tier's own paths (private tmp/home, the shim, device nodes), as the payload sees them. */
  extraRead?: string[];
  extraWrite?: string[];
  network: NetworkMode;
  /** A loopback port the payload may connect to (the egress relay). */
  relayPort?: number;
  /** `host`: Landlock is the only filesystem boundary, so what it cannot do is an error. */
  pathView: 'host' | 'namespace';
  /**
   * Namespace view: what each granted and denied path was (`HostPathKind`) when the mount namespace
   * was made, so that a deny is left to the mount namespace only where bubblewrap masked it (a deny
   * created on the host since then is split around, not missed). Default: the host as it is now.
   */
  pathKinds?: Readonly<Record<string, string>>;
  /**
   * Namespace view: the folder under which the mount namespace shows the host's grants at their host
   * paths (a VMM jail's `/view`). `read`, `write` and `deny` are then host paths, planned (and split)
   * against the host, and each of their rules is emitted beneath this folder; `extraRead` and
   * `extraWrite` stay as written. Default: the grants are at their host paths.
   */
  viewRoot?: string;
  /** For error messages. */
  tier: string;
}

export interface LandlockPathRule {
  path: string;
  access: number;
  /**
   * False for the entries a split grant was expanded into: the shim skips them when they are
   * symlinks (checked when it applies the rule, not when it was planned), since a rule would
   * follow a link to a target the grant never covered.
   */
  followSymlinks: boolean;
}

export interface LandlockPortRule {
  port: number;
  access: number;
}

export interface LandlockPlan {
  /** False when the kernel has no Landlock and the namespace view lets the tier go on without it. */
  enabled: boolean;
  /** The running kernel's ABI. */
  abi: number;
  /** The lowest ABI that can apply this plan; the shim refuses to run below it. */
  minimumAbi: number;
  handledFilesystem: number;
  handledNetwork: number;
  scoped: number;
  paths: LandlockPathRule[];
  ports: LandlockPortRule[];
  /** What the kernel or Landlock's allow-only model could not do exactly, said aloud. */
  degraded: string[];
}

/** How to get Landlock on a kernel that lacks it. */
export const LANDLOCK_FIX =
  'boot Linux 5.13 or later with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y, and landlock in the lsm= kernel parameter, e.g. lsm=landlock,lockdown,yama,integrity,apparmor)';

export function normalizeAbsolutePath(path: string, role: string): string {
  if (!posix.isAbsolute(path) || path.includes('\n') || path.includes('\0')) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      `The ${role} path ${JSON.stringify(path)} must be absolute and hold no newline or NUL. Fix: pass an absolute path.`,
      { path },
    );
  }
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/** `directory/name` for a name from readdir (no slash in it); cheaper than path.join on large directories. */
function childPath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory}/${name}`;
}

const listings = new Map<string, { mtimeMs: number; ctimeMs: number; ino: number; names: string[] }>();
const LISTING_CACHE_SIZE = 256;

/**
 * The names in a directory, cached while its mtime, ctime and inode stay the same. A stale listing
 * can only miss a new entry (not granted: stricter) or name a removed one (skipped by the shim);
 * symlinks are checked by the shim itself.
 */
function listDirectory(directory: string): string[] {
  const status = statSync(directory);
  const cached = listings.get(directory);
  if (
    cached &&
    cached.mtimeMs === status.mtimeMs &&
    cached.ctimeMs === status.ctimeMs &&
    cached.ino === status.ino
  ) {
    return cached.names;
  }
  const names = readdirSync(directory);
  if (listings.size >= LISTING_CACHE_SIZE) listings.clear();
  listings.set(directory, { mtimeMs: status.mtimeMs, ctimeMs: status.ctimeMs, ino: status.ino, names });
  return names;
}

/** The path with every symlink resolved; a missing tail is kept as written below its real parent. */
function canonicalPath(path: string): string {
  try {
    return realpathSync.native(path);
  } catch {
    if (path === '/') return path;
    return childPath(canonicalPath(posix.dirname(path)), posix.basename(path));
  }
}

/** `/` and every folder on the way down to `path`, and `path` itself: `isWithin(path, x)` for each. */
function foldersDownTo(path: string): Set<string> {
  const folders = new Set<string>(['/']);
  for (let slash = path.indexOf('/', 1); slash !== -1; slash = path.indexOf('/', slash + 1)) {
    folders.add(path.slice(0, slash));
  }
  folders.add(path);
  return folders;
}

/** Is `path` the same as or beneath `ancestor`? */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === '/' || path === ancestor || path.startsWith(`${ancestor}/`);
}

/**
 * The denies a namespace view's mount namespace keeps unreachable by itself: bubblewrap masks each
 * existing denied path inside a grant with a read-only mount (an empty 0000 file over a file, socket
 * or other node; a 0000 tmpfs over a folder) and binds every folder on the way to it that a writable
 * grant shows onto itself (see `buildBubblewrapArguments`). The payload can neither read, write,
 * remove, rename nor replace a mount point (EBUSY, EROFS), so neither the mask nor a folder around
 * it, and cannot unmount anything (no capabilities; seccomp refuses the mount calls). Splitting the
 * grant around such a deny would add a rule per sibling and keep the payload from creating anything
 * beside it, for nothing.
 *
 * Left out, so still split: a deny that does not exist yet (no mask: the payload could create it in a
 * writable grant), and one written through a symlink or that is one (the mask is not where its real
 * path is, or not made at all).
 */
function maskedDenies(
  written: readonly string[],
  real: readonly string[],
  kinds: Readonly<Record<string, string>> | undefined,
): Set<string> {
  const masked = new Set<string>();
  for (const [index, path] of written.entries()) {
    if (real[index] !== path) continue;
    // What bubblewrap masked was decided from `kinds` when the namespace was made; without them, now.
    const kind = kinds ? kinds[path] : kindNow(path);
    if (kind !== undefined && kind !== 'missing' && kind !== 'symlink') masked.add(path);
  }
  return masked;
}

function kindNow(path: string): string {
  const status = lstatSync(path, { throwIfNoEntry: false });
  return !status ? 'missing' : status.isSymbolicLink() ? 'symlink' : 'present';
}

/** Rights a namespace view leaves to the mount namespace (see `planLandlock`). */
const NAMESPACE_VIEW_UNHANDLED =
  LANDLOCK_ACCESS_FS.readFile |
  LANDLOCK_ACCESS_FS.readDir |
  LANDLOCK_ACCESS_FS.truncate |
  LANDLOCK_ACCESS_FS.ioctlDev;

/**
 * Plans a Landlock ruleset. Landlock can only allow, so a deny inside a grant is compiled by
 * replacing the grant with grants on each sibling along the way down to the denied path; in a
 * namespace view, only the denies the mount namespace does not already mask (see `maskedDenies`).
 */
export function planLandlock(options: LandlockPlanOptions): LandlockPlan {
  const abi = Math.min(options.abi, LANDLOCK_ABI_KNOWN);
  const degraded: string[] = [];
  const hostView = options.pathView === 'host';
  const viewRoot =
    options.viewRoot === undefined ? undefined : normalizeAbsolutePath(options.viewRoot, 'view root');
  if (viewRoot !== undefined && hostView) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      `The view root ${viewRoot} needs the namespace path view: in the host view the grants are where the host has them. Fix: pass pathView 'namespace', or no view root.`,
      { path: viewRoot },
    );
  }
  if (abi < 1) {
    if (hostView) {
      throw new UnenforceableCapabilityError(
        options.tier,
        'filesystem',
        'Landlock is not available in this kernel, and without a mount namespace it is the only filesystem boundary',
        LANDLOCK_FIX,
        { details: { landlockAbi: options.abi } },
      );
    }
    return {
      enabled: false,
      abi: options.abi,
      minimumAbi: 0,
      handledFilesystem: 0,
      handledNetwork: 0,
      scoped: 0,
      paths: [],
      ports: [],
      degraded: [
        `Landlock is not available in this kernel: the mount namespace alone restricts files, with no second layer (${LANDLOCK_FIX})`,
      ],
    };
  }

  // Grants and denies are compared by their real paths (a grant of /lib covers /usr/lib/x when /lib
  // is a link), but a grant is emitted as written unless it is split (/proc/self must stay itself).
  const realPaths = new Map<string, string>();
  const realPath = (path: string) => {
    let real = realPaths.get(path);
    if (real === undefined) {
      real = canonicalPath(path);
      realPaths.set(path, real);
    }
    return real;
  };
  const written = options.deny.map((path) => normalizeAbsolutePath(path, 'deny'));
  const realDenies = written.map(canonicalPath);
  const denies = [...new Set(realDenies)];
  const masked = hostView ? new Set<string>() : maskedDenies(written, realDenies, options.pathKinds);

  // In a namespace view the mount namespace is the read boundary: only the grants exist there, read
  // grants bound read-only. Landlock then handles what changes files (and execution), not reads: a
  // handled read, truncate or device-ioctl right makes every open() walk its path to the root, which
  // cost a syscall-heavy job 20% here (stat+open+read+close: x1.27 with them, x1.08 without).
  // Except where a deny inside a grant has no mask (it did not exist when the mounts were made): a
  // bind shows the host live, so the sandbox could read it once the host creates it. Landlock then
  // handles reads too, and the split around the deny keeps it unreadable. Under a view root, the
  // view itself may then be listed (what a VMM's file server needs to show the guest its root), and
  // only listed: the grants beneath it carry their own rules.
  const grantedReal = [...options.read, ...options.write].map((path) =>
    realPath(normalizeAbsolutePath(path, 'grant')),
  );
  const unmasked = hostView
    ? []
    : denies.filter(
        (deny) => !masked.has(deny) && grantedReal.some((grant) => deny !== grant && isWithin(deny, grant)),
      );
  const handledFilesystem = hostView
    ? filesystemRightsForAbi(abi)
    : filesystemRightsForAbi(abi) &
      ~(unmasked.length > 0 ? NAMESPACE_VIEW_UNHANDLED & ~LANDLOCK_READ_RIGHTS : NAMESPACE_VIEW_UNHANDLED);
  if (unmasked.length > 0) {
    const them = unmasked.length === 1 ? 'it' : 'them';
    degraded.push(
      `${unmasked.join(', ')} did not exist when the mounts were made, so no mask hides ${them} inside a grant: Landlock handles reads too, to keep ${them} unreadable if the host creates ${them}; ${viewRoot === undefined ? 'the folders the mount namespace adds on the way to the grants (/ among them) cannot be listed' : 'the folders on the way to the grants can be listed, not read'}`,
    );
  }
  if (abi < 2) degraded.push('Landlock ABI 1: files cannot be renamed or linked into another directory');
  if (abi < 3) degraded.push(`Landlock ABI ${abi}: truncate() of files in read-only grants is not refused`);
  if (abi < 5) degraded.push(`Landlock ABI ${abi}: ioctl() on granted device nodes is not filtered`);

  const rules = new Map<string, number>();
  // The rules by real path, for finding the grants that hold a deny (see `holding`).
  const byRealPath = new Map<string, Set<string>>();
  const indexRule = (path: string) => {
    const real = realPath(path);
    const written = byRealPath.get(real) ?? new Set<string>();
    written.add(path);
    byRealPath.set(real, written);
  };
  const grant = (path: string, access: number) => {
    rules.set(path, (rules.get(path) ?? 0) | access);
    indexRule(path);
  };
  const removeRule = (path: string) => {
    rules.delete(path);
    byRealPath.get(realPath(path))?.delete(path);
  };
  const splitEntries = new Set<string>();
  const readAccess = LANDLOCK_READ_RIGHTS & handledFilesystem;
  const readPaths = new Set(options.read.map((path) => normalizeAbsolutePath(path, 'read')));
  for (const path of readPaths) grant(path, readAccess);
  // At equal paths read wins over write, as bubblewrap's binds have it.
  for (const path of options.write) {
    const normalized = normalizeAbsolutePath(path, 'write');
    if (!readPaths.has(normalized)) grant(normalized, handledFilesystem);
  }
  // The most specific grant wins: a read grant inside a write grant is read-only. A namespace view
  // mounts it read-only over the writable one; in the host's view Landlock would add the outer
  // grant's rights to it, so the write grant is split around it as around a deny, and the read grant
  // keeps its own rule. A read grant missing when the mounts were made has no mount: the payload
  // could create it in the write grant, so a namespace view splits around it too.
  const readOnlyWithin = [
    ...new Set(
      [...readPaths]
        .filter((path) => hostView || (options.pathKinds?.[path] ?? kindNow(path)) === 'missing')
        .map(canonicalPath),
    ),
  ];

  // The tier's own paths in a namespace view are not the host's: they cannot be listed to be split.
  const fixed = new Map<string, number>();
  const extraRules = hostView ? rules : fixed;
  for (const path of options.extraRead ?? []) {
    const normalized = normalizeAbsolutePath(path, 'extra read');
    extraRules.set(normalized, (extraRules.get(normalized) ?? 0) | readAccess);
  }
  for (const path of options.extraWrite ?? []) {
    const normalized = normalizeAbsolutePath(path, 'extra write');
    extraRules.set(normalized, (extraRules.get(normalized) ?? 0) | handledFilesystem);
  }
  for (const deny of denies) {
    for (const path of fixed.keys()) {
      if (isWithin(deny, path)) {
        degraded.push(
          unmasked.includes(deny)
            ? `${deny} lies inside the tier's own path ${path} and did not exist when the mounts were made: if the host creates it while the sandbox runs, the sandbox can read it`
            : `${deny} lies inside the tier's own path ${path}: the mount namespace alone keeps it denied`,
        );
      }
    }
  }
  for (const readOnly of hostView ? [] : readOnlyWithin) {
    for (const [path, access] of fixed) {
      if (isWithin(readOnly, path) && access & ~readAccess) {
        degraded.push(
          `${readOnly} (read-only, missing when the mounts were made) lies inside the tier's own writable path ${path}: the payload can create it there`,
        );
      }
    }
  }

  const splitDirectories = new Map<string, number>();
  const split = (granted: string, deny: string, access: number, keeps: 'denied' | 'read-only' = 'denied') => {
    const components = deny.slice(granted === '/' ? 1 : granted.length + 1).split('/');
    let directory = granted;
    let entries = 0;
    for (const component of components) {
      let listing: string[];
      try {
        listing = listDirectory(directory);
      } catch (error) {
        degraded.push(
          `${directory} could not be listed (${(error as NodeJS.ErrnoException).code}) to split the grant of ${granted} around the denied ${deny}: nothing in it is granted`,
        );
        return;
      }
      splitDirectories.set(directory, (splitDirectories.get(directory) ?? 0) | access);
      let found = false;
      for (const entry of listing) {
        if (entry === component) {
          found = true;
          continue;
        }
        const child = childPath(directory, entry);
        realPaths.set(child, child); // beneath a real directory; a symlink entry is skipped by the shim
        grant(child, access);
        splitEntries.add(child);
        entries++;
      }
      if (!found) {
        degraded.push(
          `${deny} does not exist yet, so the grant of ${granted} was split only down to ${directory} (${entries} entries): ${deny} stays ${keeps}, but nothing new can be created in ${directory}`,
        );
        return;
      }
      directory = childPath(directory, component);
    }
    degraded.push(
      access & LANDLOCK_ACCESS_FS.makeReg
        ? `the write grant of ${granted} was split into ${entries} entries to keep ${deny} ${keeps}: entries cannot be created, removed or renamed directly in the directories from ${granted} down to ${posix.dirname(deny)}`
        : `the read grant of ${granted} was split into ${entries} entries to keep ${deny} ${keeps}: entries added later directly in the directories from ${granted} down to ${posix.dirname(deny)} are not readable`,
    );
  };

  // The grants that hold `path`: those whose real path is one of its folders or itself. Looked up
  // by real path, since this runs for every deny until nothing changes, and a deny in /etc splits it
  // into a rule per entry (165 rules): comparing each with each was most of a launch's planning.
  // The tier's own paths in the host view were set without `grant`.
  for (const path of rules.keys()) indexRule(path);
  const holding = (path: string): [granted: string, access: number][] => {
    const found: [string, number][] = [];
    for (const folder of foldersDownTo(path)) {
      for (const granted of byRealPath.get(folder) ?? []) found.push([granted, rules.get(granted)!]);
    }
    return found;
  };
  // Each split moves grants strictly deeper, so this reaches a fixed point.
  for (let changed = true; changed; ) {
    changed = false;
    for (const readOnly of readOnlyWithin) {
      for (const [granted, access] of holding(readOnly)) {
        const real = realPath(granted);
        if (real === readOnly || (access & ~readAccess) === 0) continue;
        removeRule(granted);
        changed = true;
        split(real, readOnly, access, 'read-only');
      }
    }
    for (const deny of denies) {
      for (const [granted, access] of holding(deny)) {
        const real = realPath(granted);
        // Masked where the payload sees it through this grant: no split (see `maskedDenies`).
        if (real !== deny && masked.has(deny) && isWithin(deny, granted)) continue;
        removeRule(granted);
        changed = true;
        if (real !== deny) split(real, deny, access);
      }
    }
  }

  // A split directory may still be listed when every deny beneath it is an existing non-directory:
  // READ_DIR is inherited, but listing a file is not reading it.
  for (const [directory, access] of splitDirectories) {
    if (!(access & LANDLOCK_ACCESS_FS.readDir) || rules.has(directory)) continue;
    const listable = denies.every((deny) => {
      if (!isWithin(deny, directory)) return true;
      if (deny === directory) return false;
      try {
        return !lstatSync(deny).isDirectory();
      } catch {
        return false;
      }
    });
    if (listable) rules.set(directory, LANDLOCK_ACCESS_FS.readDir);
  }
  const emitted = new Map<string, number>();
  const emittedSplitEntries = new Set<string>();
  for (const [path, access] of rules) {
    const shown =
      viewRoot === undefined || viewRoot === '/' ? path : path === '/' ? viewRoot : `${viewRoot}${path}`;
    emitted.set(shown, (emitted.get(shown) ?? 0) | access);
    if (splitEntries.has(path)) emittedSplitEntries.add(shown);
  }
  for (const [path, access] of fixed) emitted.set(path, (emitted.get(path) ?? 0) | access);
  if (viewRoot !== undefined && unmasked.length > 0) {
    emitted.set(viewRoot, (emitted.get(viewRoot) ?? 0) | LANDLOCK_ACCESS_FS.readDir);
  }

  let handledNetwork = 0;
  const ports: LandlockPortRule[] = [];
  if (options.network !== 'open') {
    handledNetwork = networkRightsForAbi(abi);
    if (!handledNetwork) {
      if (hostView) {
        throw new UnenforceableCapabilityError(
          options.tier,
          `network.${options.network}`,
          `Landlock ABI ${abi} cannot restrict TCP (ABI 4, Linux 6.7, is needed), and without a network namespace nothing else does`,
          'run Linux 6.7 or later, or a host where unprivileged user namespaces are allowed',
          { details: { landlockAbi: options.abi } },
        );
      }
      degraded.push(`Landlock ABI ${abi} cannot restrict TCP: the network namespace alone does`);
    } else if (options.relayPort !== undefined) {
      ports.push({ port: options.relayPort, access: LANDLOCK_ACCESS_NET.connectTcp });
    }
  }
  const scoped = scopesForAbi(abi);
  if (!scoped) {
    degraded.push(
      `Landlock ABI ${abi} cannot scope abstract unix sockets and signals (ABI 6, Linux 6.12, is needed)${hostView ? ': host abstract sockets can be connected to and host processes of the same user signalled' : ': the namespaces alone separate them'}`,
    );
  }

  const paths = [...emitted]
    .filter(([, access]) => access !== 0)
    .map(([path, access]) => ({ path, access, followSymlinks: !emittedSplitEntries.has(path) }))
    .sort((left, right) => (left.path < right.path ? -1 : left.path > right.path ? 1 : 0));
  return {
    enabled: true,
    abi: options.abi,
    minimumAbi: minimumAbiFor(handledFilesystem, handledNetwork, scoped),
    handledFilesystem,
    handledNetwork,
    scoped,
    paths,
    ports,
    degraded,
  };
}
