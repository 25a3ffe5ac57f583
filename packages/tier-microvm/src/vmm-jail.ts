import { lstatSync, readlinkSync } from 'node:fs';
import type { VmmCommand } from './vmm-backend.js';

/** Where the VM's own files sit inside the jail. */
export const JAIL_PATHS = {
  kernel: '/bulkhead/vmlinux',
  initramfs: '/bulkhead/initramfs.cpio',
  run: '/bulkhead/run',
  /** The payload's view, shared into the guest as its root. */
  view: '/view',
} as const;

/** Directories of the view the guest mounts its own file systems on. */
const VIEW_SKELETON = ['/proc', '/dev', '/tmp'];

export type PathKind = 'directory' | 'file' | 'symlink' | 'missing';

export function pathKind(path: string): PathKind {
  try {
    const info = lstatSync(path);
    if (info.isSymbolicLink()) return 'symlink';
    return info.isDirectory() ? 'directory' : 'file';
  } catch {
    return 'missing';
  }
}

function isInside(path: string, ancestor: string): boolean {
  return ancestor === '/' ? true : path === ancestor || path.startsWith(`${ancestor}/`);
}

function depth(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}

function inView(path: string): string {
  return path === '/' ? JAIL_PATHS.view : `${JAIL_PATHS.view}${path}`;
}

export interface JailOptions {
  vmm: VmmCommand;
  /** Host files the jail maps to `JAIL_PATHS.kernel` and `JAIL_PATHS.initramfs`. */
  kernelPath: string;
  initramfsPath: string;
  /** A private host directory for this VM (console log, sockets), bound at `JAIL_PATHS.run`. */
  runDirectory: string;
  /** An empty host file with mode 000, bound over denied files. */
  emptyFile: string;
  filesystem: { read: string[]; write: string[]; deny: string[] };
  /** Host sockets the VMM may reach (the egress channel), bound at the same path. */
  sockets?: string[];
  /** More host files bound read-only into the jail (the exec shim). */
  extraBinds?: { source: string; target: string }[];
  /** bubblewrap's `--info-fd` and `--block-fd`: the jail's pid comes out, and it waits for a byte. */
  infoFd?: number;
  blockFd?: number;
  /**
   * Where to bind each host path from, when not from itself: a root caller's VMM runs as an
   * unprivileged uid, and what it could not reach is bound from id-mapped copies.
   */
  sources?: Readonly<Record<string, string>>;
  /** Overridable for tests; defaults to `lstat` of the host. */
  kindOf?: (path: string) => PathKind;
}

/**
 * bubblewrap arguments that jail the VMM like Firecracker's jailer: its own user, pid, ipc, uts,
 * cgroup and network namespaces, no capabilities, a new session, death with its parent, and a
 * mount namespace holding only the VMM's binaries, the VM's own files and `/view`: the granted paths
 * (read-only for read grants) with denied paths masked. `/view` itself is read-only, so nothing
 * outside the grants can be written even by a compromised VMM.
 */
export function buildJailArguments(options: JailOptions): string[] {
  const kindOf = options.kindOf ?? pathKind;
  const source = (path: string) => options.sources?.[path] ?? path;
  const { read, write, deny } = options.filesystem;
  const denied = new Set(deny);
  // deny > read > write at equal paths, as in the manifest.
  const readOnly = read.filter((path) => !denied.has(path));
  const writable = write.filter((path) => !denied.has(path) && !readOnly.includes(path));
  const grants = [
    ...readOnly.map((path) => ({ path, writable: false })),
    ...writable.map((path) => ({ path, writable: true })),
  ].sort((left, right) => depth(left.path) - depth(right.path));

  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--clearenv'];
  // The VMM's own system files, read-only; merged-/usr hosts have symlinks for /lib and friends.
  args.push('--ro-bind', '/usr', '/usr');
  for (const directory of ['/lib', '/lib64', '/bin', '/sbin']) {
    const kind = kindOf(directory);
    if (kind === 'symlink') args.push('--symlink', readlinkSync(directory), directory);
    else if (kind === 'directory') args.push('--ro-bind', directory, directory);
  }
  for (const path of [
    '/etc/ld.so.cache',
    ...options.vmm.readPaths.filter((path) => !path.startsWith('/usr/')),
  ]) {
    if (path === options.kernelPath || path === options.initramfsPath) continue;
    if (kindOf(path) !== 'missing') args.push('--ro-bind', path, path);
  }
  args.push('--proc', '/proc', '--dev', '/dev');
  for (const device of options.vmm.devices) args.push('--dev-bind', device, device);
  args.push('--ro-bind', source(options.kernelPath), JAIL_PATHS.kernel);
  args.push('--ro-bind', source(options.initramfsPath), JAIL_PATHS.initramfs);
  args.push('--bind', options.runDirectory, JAIL_PATHS.run);
  for (const socket of options.sockets ?? []) args.push('--bind', source(socket), socket);
  for (const bind of options.extraBinds ?? []) args.push('--ro-bind', source(bind.source), bind.target);
  if (options.infoFd !== undefined) args.push('--info-fd', String(options.infoFd));
  if (options.blockFd !== undefined) args.push('--block-fd', String(options.blockFd));

  args.push('--tmpfs', JAIL_PATHS.view);
  for (const directory of VIEW_SKELETON) args.push('--dir', inView(directory));
  // Grants and masks by depth, so that the most specific path wins (a grant inside a denied
  // directory stays reachable); masks become read-only only once everything inside is mounted.
  const steps: { path: string; args: string[] }[] = [];
  const masks: string[] = [];
  for (const grant of grants) {
    // A grant of something absent grants nothing; binding it would create it on the host.
    if (kindOf(grant.path) === 'missing') continue;
    steps.push({
      path: grant.path,
      args: [grant.writable ? '--bind' : '--ro-bind', source(grant.path), inView(grant.path)],
    });
  }
  for (const path of denied) {
    if (!grants.some((grant) => isInside(path, grant.path))) continue;
    const kind = kindOf(path);
    if (kind === 'directory') {
      steps.push({ path, args: ['--perms', '0000', '--tmpfs', inView(path)] });
      masks.push(inView(path));
    } else if (kind === 'file') {
      steps.push({ path, args: ['--ro-bind', options.emptyFile, inView(path)] });
    }
  }
  steps.sort((left, right) => depth(left.path) - depth(right.path));
  for (const step of steps) args.push(...step.args);
  for (const mask of masks) args.push('--remount-ro', mask);
  args.push('--remount-ro', JAIL_PATHS.view, '--chdir', '/', '--', options.vmm.file, ...options.vmm.args);
  return args;
}
