import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';

/** The cgroup controllers Bulkhead uses. `freezer` exists only on cgroup v1 (v2 has `cgroup.freeze`). */
export type CgroupController = 'memory' | 'pids' | 'cpu' | 'cpuacct' | 'freezer';

const V1_CONTROLLERS: readonly CgroupController[] = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'];

/** One mounted cgroup hierarchy and where this process sits in it. */
export interface CgroupHierarchy {
  version: 1 | 2;
  /** Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`. */
  mountPoint: string;
  /** This process's cgroup in the hierarchy, relative to the mount (`/` for the mount's root). */
  ownPath: string;
  /** Controllers bound to it (v1: from the mount options; v2: the root's `cgroup.controllers`). */
  controllers: string[];
}

export interface CgroupLayout {
  /** The unified (v2) hierarchy, when mounted. */
  v2?: CgroupHierarchy;
  /** Per controller, the v1 hierarchy that carries it (a hierarchy may carry several: `cpu,cpuacct`). */
  v1: Partial<Record<CgroupController, CgroupHierarchy>>;
}

interface MountInfoEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** Octal escapes (`\040` for a space) as the kernel writes them in mountinfo. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const before = line.slice(0, separator).split(' ');
    const after = line.slice(separator + 3).split(' ');
    const root = before[3];
    const mountPoint = before[4];
    const fsType = after[0];
    if (root === undefined || mountPoint === undefined || fsType === undefined) continue;
    entries.push({
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      superOptions: (after[2] ?? '').split(','),
    });
  }
  return entries;
}

/** `/proc/self/cgroup`: `hierarchy-id:controller,list:/path`; v2 is the line with id 0 and no controllers. */
export function parseProcCgroup(text: string): { v2Path?: string; v1Paths: Map<string, string> } {
  const v1Paths = new Map<string, string>();
  let v2Path: string | undefined;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (line.slice(0, first) === '0' && controllers === '') v2Path = path;
    else for (const controller of controllers.split(',')) if (controller) v1Paths.set(controller, path);
  }
  return v2Path === undefined ? { v1Paths } : { v2Path, v1Paths };
}

/** Path of `path` relative to a mount whose root is `mountRoot` (containers mount a sub-tree). */
function relativeToMount(path: string, mountRoot: string): string {
  if (mountRoot === '/' || mountRoot === '') return path;
  if (path === mountRoot) return '/';
  if (path.startsWith(`${mountRoot}/`)) return path.slice(mountRoot.length);
  // Our cgroup lies outside the mounted sub-tree: treat the mount's root as ours.
  return '/';
}

export function buildCgroupLayout(
  mountInfo: string,
  procCgroup: string,
  v2RootControllers: string[] | undefined,
): CgroupLayout {
  const mounts = parseMountInfo(mountInfo);
  const own = parseProcCgroup(procCgroup);
  const layout: CgroupLayout = { v1: {} };
  for (const mount of mounts) {
    if (mount.fsType === 'cgroup2' && !layout.v2 && own.v2Path !== undefined) {
      layout.v2 = {
        version: 2,
        mountPoint: mount.mountPoint,
        ownPath: relativeToMount(own.v2Path, mount.root),
        controllers: v2RootControllers ?? [],
      };
    }
    if (mount.fsType !== 'cgroup') continue;
    const controllers = mount.superOptions.filter((option) =>
      V1_CONTROLLERS.includes(option as CgroupController),
    );
    for (const controller of controllers as CgroupController[]) {
      const ownPath = own.v1Paths.get(controller);
      if (ownPath === undefined || layout.v1[controller]) continue;
      layout.v1[controller] = {
        version: 1,
        mountPoint: mount.mountPoint,
        ownPath: relativeToMount(ownPath, mount.root),
        controllers: mount.superOptions.filter((option) =>
          V1_CONTROLLERS.includes(option as CgroupController),
        ),
      };
    }
  }
  return layout;
}

let cachedLayout: Promise<CgroupLayout> | undefined;

/** The cgroup hierarchies of this host as this process sees them. Read once per process. */
export function readCgroupLayout(): Promise<CgroupLayout> {
  cachedLayout ??= (async () => {
    const [mountInfo, procCgroup] = await Promise.all([
      readFile('/proc/self/mountinfo', 'utf8'),
      readFile('/proc/self/cgroup', 'utf8').catch(() => ''),
    ]);
    const v2Mount = parseMountInfo(mountInfo).find((mount) => mount.fsType === 'cgroup2');
    const v2RootControllers = v2Mount
      ? await readFile(posix.join(v2Mount.mountPoint, 'cgroup.controllers'), 'utf8').then(
          (text) => text.trim().split(/\s+/).filter(Boolean),
          () => [],
        )
      : undefined;
    return buildCgroupLayout(mountInfo, procCgroup, v2RootControllers);
  })();
  return cachedLayout;
}
