import { posix } from 'node:path';
import type { Capabilities } from '@bulkhead/core';
import { BulkheadError } from '@bulkhead/core';

/** What a path is on the host, as the caller found it (`lstat`); `missing` when it does not exist. */
export type HostPathKind = 'directory' | 'file' | 'symlink' | 'other' | 'missing';

/** A host path bound at another path in the sandbox. */
export interface BubblewrapBind {
  hostPath: string;
  sandboxPath: string;
}

export interface BubblewrapArgumentsOptions {
  capabilities: Capabilities;
  /** argv run inside the sandbox (the shim and its arguments, then the payload). */
  command: string[];
  /** The host kind of every path in `capabilities.filesystem` (grants and denies). */
  pathKinds: Readonly<Record<string, HostPathKind>>;
  /** The uid and gid the payload has inside the sandbox. Never 0. */
  sandboxUid: number;
  sandboxGid: number;
  /**
   * Host sources for grants, by sandbox path: a write grant of a root caller is bound from an
   * id-mapped copy so that the unprivileged sandbox uid may write it. Absent: the path itself.
   */
  sources?: Readonly<Record<string, string>>;
  /** The shim on the host, bound read-only at `shimSandboxPath`. */
  shim?: { hostPath: string; sandboxPath: string };
  /** An empty host file nobody may open, bound over denied files. */
  deniedFile: string;
  /**
   * Device nodes to pass through (GPUs; the session tier's sound and video nodes): a path is bound
   * at itself, a `BubblewrapBind` at its `sandboxPath`.
   */
  devices?: readonly (string | BubblewrapBind)[];
  /** bwrap writes `{"child-pid": N}` here once the sandbox's first process exists. */
  infoFd?: number;
  /** bwrap's sandbox process waits, namespaces and mounts ready, until a byte arrives here. */
  blockFd?: number;
  /** Stop further user namespaces inside (`--disable-userns`, bubblewrap 0.8+). */
  disableUserNamespaces?: boolean;
  /**
   * Bulkhead's own state folders that exist on the host (runtime folders with other sandboxes'
   * staging mounts, private folders and egress sockets): each one a grant would show is hidden
   * under an empty read-only tmpfs. Grants inside one are still bound (the session tier grants a
   * session's own runtime folder there).
   */
  hiddenDirectories?: readonly string[];
  /** More of the tier's own files bound read-only (an egress socket), host path = `hostPath`. */
  binds?: readonly BubblewrapBind[];
}

export interface BubblewrapArguments {
  /** bwrap's arguments, `--` and the command included. */
  args: string[];
  /** The payload's whole environment. */
  environment: Record<string, string>;
  /** HOME and TMPDIR inside the sandbox. */
  home: string;
  temporaryDirectory: string;
  /** The tier's own paths the payload may read / write, as it sees them (for the shim's Landlock). */
  extraReadPaths: string[];
  extraWritePaths: string[];
  /** Denied paths that could not be masked, said aloud. */
  warnings: string[];
}

/** Where the tier's own files (the shim, an egress socket, a HOME outside /tmp) go in a sandbox. */
export const SANDBOX_TIER_DIRECTORY = '/run/bulkhead';

export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const SANDBOX_HOSTNAME = 'bulkhead';

/**
 * Device nodes the sandbox never gets through the minimal /dev of bubblewrap: bwrap creates only
 * null, zero, full, random, urandom, tty, pts/ptmx and shm.
 */
export const SANDBOX_DEVICE_NODES = [
  '/dev/null',
  '/dev/zero',
  '/dev/full',
  '/dev/random',
  '/dev/urandom',
  '/dev/tty',
  '/dev/pts',
  '/dev/ptmx',
];

function assertSafePath(path: string, what: string): void {
  // A normalised absolute path can never be read as one of bwrap's options.
  if (
    !path.startsWith('/') ||
    path.includes('\0') ||
    posix.normalize(path) !== path ||
    (path !== '/' && path.endsWith('/'))
  ) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      `The ${what} '${path}' is not an absolute, normalised path. Fix: compile capabilities with @bulkhead/manifest, which resolves paths.`,
      { path },
    );
  }
}

function isInside(path: string, ancestor: string): boolean {
  return ancestor === '/' ? path.startsWith('/') : path === ancestor || path.startsWith(`${ancestor}/`);
}

function depth(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}

interface MountStep {
  path: string;
  args: string[];
}

/** The grants bound into the sandbox: deny > read > write at equal paths, and only what exists. */
function boundGrants(options: SandboxViewOptions): string[] {
  const { read, write, deny } = options.capabilities.filesystem;
  const denied = new Set(deny);
  return [...new Set([...read, ...write])].filter(
    (path) => !denied.has(path) && (options.pathKinds[path] ?? 'missing') !== 'missing',
  );
}

type SandboxViewOptions = Pick<
  BubblewrapArgumentsOptions,
  'capabilities' | 'pathKinds' | 'hiddenDirectories'
>;

/**
 * Where the tier's own files go in this sandbox: `SANDBOX_TIER_DIRECTORY`, unless a read-only grant
 * (of /run, or /) shows the host's /run there without that folder, where nothing can be created;
 * then the first hidden folder a grant shows (its tmpfs can hold them).
 */
export function sandboxTierDirectory(options: SandboxViewOptions): string {
  const grants = boundGrants(options);
  const hidden = options.hiddenDirectories ?? [];
  const shown = (path: string) => grants.some((grant) => isInside(path, grant));
  if (!shown(SANDBOX_TIER_DIRECTORY) || hidden.includes(SANDBOX_TIER_DIRECTORY))
    return SANDBOX_TIER_DIRECTORY;
  const fallback = hidden.find(shown);
  if (fallback !== undefined) return fallback;
  throw new BulkheadError(
    'INVALID_LAUNCH_SPEC',
    `A grant shows the host's ${posix.dirname(SANDBOX_TIER_DIRECTORY)} inside the sandbox, where ${SANDBOX_TIER_DIRECTORY} does not exist and cannot be made, and no Bulkhead folder is there to hold the tier's own files instead.`,
    {
      path: SANDBOX_TIER_DIRECTORY,
      fix: `grant narrower folders than ${posix.dirname(SANDBOX_TIER_DIRECTORY)}, or create ${SANDBOX_TIER_DIRECTORY} (mkdir -m 0711 ${SANDBOX_TIER_DIRECTORY} as root)`,
    },
  );
}

/**
 * Builds bwrap's arguments for capabilities: user, pid, ipc, uts, cgroup (and, unless the network is
 * open, net) namespaces; only the granted paths, read-only or writable; denied paths masked; a
 * private /tmp, HOME and /dev/shm; a minimal /dev and a new /proc; a read-only root; the
 * environment cleared to exactly what the capabilities say plus PATH, HOME, TMPDIR and LANG.
 *
 * Pure: every host fact (path kinds, sources, devices) comes in through `options`.
 */
export function buildBubblewrapArguments(options: BubblewrapArgumentsOptions): BubblewrapArguments {
  const { capabilities } = options;
  const { read, write, deny } = capabilities.filesystem;
  if (options.sandboxUid === 0 || options.sandboxGid === 0) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      'The sandbox uid and gid must not be 0: the payload never runs as root.',
    );
  }
  for (const path of [...read, ...write, ...deny]) assertSafePath(path, 'filesystem path');
  assertSafePath(capabilities.workdir, 'workdir');
  if (options.shim) assertSafePath(options.shim.sandboxPath, 'shim path');
  const warnings: string[] = [];

  // deny > read > write at equal paths.
  const denied = new Set(deny);
  const readOnly = new Set(read.filter((path) => !denied.has(path)));
  const writable = new Set(write.filter((path) => !denied.has(path) && !readOnly.has(path)));
  const grants = [...readOnly, ...writable];
  const bound = boundGrants(options);
  // A hidden folder a grant shows is masked; a grant inside it is shown again.
  const hidden = (options.hiddenDirectories ?? []).filter((directory) =>
    bound.some((grant) => isInside(directory, grant)),
  );
  for (const directory of hidden) assertSafePath(directory, 'hidden directory');
  const coveredByGrant = (path: string) =>
    bound.some(
      (grant) =>
        isInside(path, grant) &&
        !hidden.some((directory) => isInside(path, directory) && isInside(directory, grant)),
    );
  // What a mask can go over; a missing path or a symlink gets none (see below).
  const masked = (path: string) => {
    const kind = options.pathKinds[path] ?? 'missing';
    return coveredByGrant(path) && (kind === 'directory' || kind === 'file' || kind === 'other');
  };

  // /tmp is private unless the manifest grants /tmp itself: a grant of / shows the host's files,
  // not a TMPDIR the payload cannot write.
  const privateTemporary = !grants.some((grant) => grant === '/tmp');
  const temporaryDirectory = '/tmp';
  const tierDirectory = sandboxTierDirectory(options);
  const home = privateTemporary ? '/tmp/home' : posix.join(tierDirectory, 'home');

  // The tier's /proc, /dev and /dev/shm go over a grant of / (or of themselves), so that the host's
  // processes and device nodes never show through one.
  const steps: MountStep[] = [];
  for (const path of [...readOnly, ...writable]) {
    const kind = options.pathKinds[path] ?? 'missing';
    const source = options.sources?.[path] ?? path;
    assertSafePath(source, 'mount source');
    if (kind === 'missing') {
      // A grant of something absent grants nothing; a writable one would otherwise be created on the host.
      continue;
    }
    steps.push({ path, args: [writable.has(path) ? '--bind' : '--ro-bind', source, path] });
  }
  steps.push({ path: '/proc', args: ['--proc', '/proc'] });
  steps.push({ path: '/dev', args: ['--dev', '/dev'] });
  steps.push({ path: '/dev/shm', args: ['--tmpfs', '/dev/shm'] });
  for (const directory of hidden)
    steps.push({ path: directory, args: ['--perms', '0755', '--tmpfs', directory] });
  if (privateTemporary) {
    steps.push({ path: '/tmp', args: ['--tmpfs', '/tmp'] });
    steps.push({ path: home, args: ['--perms', '0700', '--dir', home] });
  } else {
    steps.push({ path: home, args: ['--perms', '0700', '--tmpfs', home] });
  }
  // Every folder on the way to a masked path that a writable grant shows is bound onto itself (a
  // grant's own folder already is a mount point): a mount point cannot be renamed or removed (EBUSY),
  // so the payload cannot move a mask away with a folder around it and make a new file at the denied
  // path (`mv .git .git-old; mkdir -p .git/hooks`). The Landlock planner leaves such grants whole in
  // a namespace view because of this (see `maskedDenies` there).
  const tierMounts = ['/proc', '/dev', home, tierDirectory, ...(privateTemporary ? ['/tmp'] : []), ...hidden];
  const innermostGrant = (path: string) =>
    bound
      .filter((grant) => isInside(path, grant))
      .reduce<string | undefined>(
        (inner, grant) => (inner === undefined || depth(grant) > depth(inner) ? grant : inner),
        undefined,
      );
  const anchors = new Map<string, string>();
  // Denies share folders (a display's sockets, say): each folder and those above it are weighed once.
  const weighed = new Set<string>();
  for (const path of denied) {
    if (!masked(path)) continue;
    for (let folder = posix.dirname(path); folder !== '/'; folder = posix.dirname(folder)) {
      if (weighed.has(folder)) break;
      weighed.add(folder);
      const grant = innermostGrant(folder);
      if (grant === undefined) break;
      const inert =
        grant === folder ||
        !writable.has(grant) ||
        [...denied].some((other) => isInside(folder, other)) ||
        // The tier's own mount between the grant and the folder: the folder is not the host's.
        tierMounts.some((mount) => isInside(folder, mount) && isInside(mount, grant));
      if (inert) continue;
      const source = options.sources?.[grant];
      anchors.set(
        folder,
        source === undefined ? folder : source + folder.slice(grant === '/' ? 0 : grant.length),
      );
    }
  }
  for (const [folder, source] of anchors) {
    assertSafePath(source, 'mount source');
    steps.push({ path: folder, args: ['--bind', source, folder] });
  }
  // Sort so that an inner grant lands on top of an outer one (the most specific path wins), and the
  // private /tmp lands on top of a granted root but under grants inside /tmp. Stable for equal depth.
  steps.sort((left, right) => depth(left.path) - depth(right.path));

  const args: string[] = [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    ...(capabilities.network.mode === 'open' ? [] : ['--unshare-net']),
    ...(options.disableUserNamespaces ? ['--disable-userns'] : []),
    '--uid',
    String(options.sandboxUid),
    '--gid',
    String(options.sandboxGid),
    '--hostname',
    SANDBOX_HOSTNAME,
    '--new-session',
    '--die-with-parent',
    '--cap-drop',
    'ALL',
  ];
  for (const step of steps) args.push(...step.args);

  // Masks go last, over whatever grant holds them. A denied path outside every grant is absent anyway.
  for (const path of [...denied].sort((left, right) => depth(left) - depth(right))) {
    if (!coveredByGrant(path)) continue;
    const kind = options.pathKinds[path] ?? 'missing';
    if (kind === 'directory') args.push('--perms', '0000', '--tmpfs', path, '--remount-ro', path);
    else if (kind === 'file' || kind === 'other') args.push('--ro-bind', options.deniedFile, path);
    else if (kind === 'missing') {
      if ([...writable].some((grant) => isInside(path, grant))) {
        warnings.push(
          `${path} is denied but does not exist inside a writable grant: the payload could create it there`,
        );
      }
    } else {
      warnings.push(`${path} is denied but is a symbolic link: deny its target instead`);
    }
  }

  const devices = (options.devices ?? []).map((device) =>
    typeof device === 'string' ? { hostPath: device, sandboxPath: device } : device,
  );
  for (const device of devices) {
    assertSafePath(device.hostPath, 'device');
    assertSafePath(device.sandboxPath, 'device target');
    args.push('--dev-bind', device.hostPath, device.sandboxPath);
  }
  if (options.shim) args.push('--ro-bind', options.shim.hostPath, options.shim.sandboxPath);
  for (const bind of options.binds ?? []) {
    assertSafePath(bind.hostPath, 'bind source');
    assertSafePath(bind.sandboxPath, 'bind target');
    args.push('--ro-bind', bind.hostPath, bind.sandboxPath);
  }
  // Nothing may be written to the sandbox's own root or the hiding tmpfs (read-only, not recursive:
  // what is mounted inside keeps its own mode): only grants, /tmp, HOME and /dev/shm are writable.
  for (const directory of hidden) args.push('--remount-ro', directory);
  args.push('--remount-ro', '/');

  const environment: Record<string, string> = {
    PATH: SANDBOX_PATH,
    HOME: home,
    TMPDIR: temporaryDirectory,
    LANG: 'C.UTF-8',
    ...capabilities.env,
  };
  args.push('--chdir', capabilities.workdir, '--clearenv');
  for (const [name, value] of Object.entries(environment)) {
    if (!name || name.includes('=') || name.includes('\0') || value.includes('\0')) {
      throw new BulkheadError(
        'INVALID_LAUNCH_SPEC',
        `The environment variable ${JSON.stringify(name)} cannot be passed: names must be non-empty without '=' and values without NUL bytes.`,
      );
    }
    args.push('--setenv', name, value);
  }
  if (options.infoFd !== undefined) args.push('--info-fd', String(options.infoFd));
  if (options.blockFd !== undefined) args.push('--block-fd', String(options.blockFd));
  args.push('--', ...options.command);

  return {
    args,
    environment,
    home,
    temporaryDirectory,
    extraReadPaths: [
      '/proc',
      '/dev',
      ...(options.shim ? [options.shim.sandboxPath] : []),
      ...devices.map((device) => device.sandboxPath),
      // Read-only binds (a display's or sound server's socket, an authority file): readable where
      // Landlock handles reads (see planLandlock).
      ...(options.binds ?? []).map((bind) => bind.sandboxPath),
    ],
    extraWritePaths: [
      ...(privateTemporary ? ['/tmp'] : [home]),
      '/dev/shm',
      '/dev/null',
      '/dev/zero',
      '/dev/full',
      '/dev/tty',
      '/dev/pts',
      ...devices.map((device) => device.sandboxPath),
    ],
    warnings,
  };
}
