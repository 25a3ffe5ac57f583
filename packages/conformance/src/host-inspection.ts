import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Pids of the host's processes whose command line contains `marker` (this process excluded). */
export function findProcessesByMarker(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!commandLine.includes(marker)) continue;
      // A zombie keeps its command line until reaped, but it is no longer a running process.
      const status = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = status.slice(status.lastIndexOf(')') + 2, status.lastIndexOf(')') + 3);
      if (state !== 'Z') found.push(pid);
    } catch {
      // Gone between readdir and read.
    }
  }
  return found;
}

export interface MountEntry {
  mountPoint: string;
  fileSystemType: string;
  source: string;
  superOptions: string;
}

/** The mounts of this process's mount namespace, from /proc/self/mountinfo. */
export function readMounts(mountinfo = '/proc/self/mountinfo'): MountEntry[] {
  const decodeOctalEscapes = (value: string) =>
    value.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
  return readFileSync(mountinfo, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [before = '', after = ''] = line.split(' - ');
      const fields = before.split(' ');
      const [fileSystemType = '', source = '', superOptions = ''] = after.split(' ');
      return {
        mountPoint: decodeOctalEscapes(fields[4] ?? ''),
        fileSystemType,
        source: decodeOctalEscapes(source),
        superOptions,
      };
    });
}

export function mountKey(mount: MountEntry): string {
  return `${mount.mountPoint} ${mount.fileSystemType} ${mount.source}`;
}

/** Mounts present in `after` and not in `before` (by mount point, type and source). */
export function newMounts(before: MountEntry[], after: MountEntry[]): MountEntry[] {
  const known = new Set(before.map(mountKey));
  return after.filter((mount) => !known.has(mountKey(mount)));
}

export interface CgroupHierarchy {
  /** `unified` for cgroup v2, else the comma-separated v1 controllers (`memory`, `cpu,cpuacct`). */
  name: string;
  mountPoint: string;
}

/** Every cgroup hierarchy mounted in this mount namespace. */
export function cgroupHierarchies(mounts: MountEntry[] = readMounts()): CgroupHierarchy[] {
  const hierarchies: CgroupHierarchy[] = [];
  for (const mount of mounts) {
    if (mount.fileSystemType === 'cgroup2')
      hierarchies.push({ name: 'unified', mountPoint: mount.mountPoint });
    if (mount.fileSystemType === 'cgroup') {
      // The super options hold the controllers (and `name=systemd`) among plain mount options; matching
      // below only asks whether a controller is among them, so the extra options do no harm.
      hierarchies.push({ name: mount.superOptions, mountPoint: mount.mountPoint });
    }
  }
  return hierarchies;
}

/**
 * The cgroup directories on the host that a process belongs to, from /proc/PID/cgroup read in the host's
 * cgroup namespace (so the paths are absolute).
 */
export function cgroupDirectoriesOf(pid: number | 'self', hierarchies: CgroupHierarchy[]): string[] {
  const directories: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    const hierarchy =
      controllers === ''
        ? hierarchies.find((candidate) => candidate.name === 'unified')
        : hierarchies.find((candidate) => {
            const names = candidate.name.split(',');
            return controllers.split(',').every((controller) => names.includes(controller));
          });
    if (hierarchy) directories.push(join(hierarchy.mountPoint, path));
  }
  return directories;
}

/**
 * Every directory under the cgroup hierarchies. Subtrees this user may not list are left out and
 * counted, so a caller can say how much of the tree it could see.
 */
export function walkCgroupTree(hierarchies: CgroupHierarchy[] = cgroupHierarchies()): {
  directories: Set<string>;
  unreadable: number;
} {
  const directories = new Set<string>();
  let unreadable = 0;
  const visit = (directory: string, depth: number) => {
    directories.add(directory);
    if (depth > 32) return;
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(directory, { withFileTypes: true });
    } catch {
      unreadable++;
      return;
    }
    for (const entry of entries) if (entry.isDirectory()) visit(join(directory, entry.name), depth + 1);
  };
  for (const hierarchy of hierarchies) visit(hierarchy.mountPoint, 0);
  return { directories, unreadable };
}

/** Entries of a directory, or an empty list when it does not exist or cannot be listed. */
export function listDirectory(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return [];
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
