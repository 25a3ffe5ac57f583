import { constants } from 'node:fs';
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { posix } from 'node:path';
import { type CgroupController, type CgroupHierarchy, readCgroupLayout } from './cgroup-layout.js';

export type CgroupMechanism = 'cgroup-v2' | 'cgroup-v1';

/** Where sandbox cgroups of one hierarchy are created: `<directory>/<owner pid>-<sandbox id>`. */
export interface CgroupBase {
  hierarchy: CgroupHierarchy;
  directory: string;
}

export interface CgroupFeature {
  mechanism: CgroupMechanism;
  base: CgroupBase;
}

export interface CgroupUnavailable {
  reason: string;
  fix: string;
}

/** What the cgroups of this host let this process enforce, decided once per process. */
export interface CgroupSupport {
  memory?: CgroupFeature;
  processes?: CgroupFeature;
  cpus?: CgroupFeature;
  /** CPU time accounting (v2 `cpu.stat`, v1 `cpuacct.usage`). */
  cpuTime?: CgroupFeature;
  /** Whole-tree kill: v2 `cgroup.kill`, or v1 freezer + SIGKILL of every member. */
  kill?: CgroupFeature;
  /** Why each missing feature is missing, and the command that delegates a subtree. */
  unavailable: Partial<Record<'memory' | 'processes' | 'cpus' | 'kill', CgroupUnavailable>>;
  /** Per controller, the cgroup version that carries it here (for `doctor`). */
  facts: Record<string, string>;
}

const V2_CONTROLLER: Record<'memory' | 'processes' | 'cpus', string> = {
  memory: 'memory',
  processes: 'pids',
  cpus: 'cpu',
};
const V1_CONTROLLER: Record<'memory' | 'processes' | 'cpus', CgroupController> = {
  memory: 'memory',
  processes: 'pids',
  cpus: 'cpu',
};

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'user');
  }
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * A directory in the hierarchy where this process may create cgroups and move its children: an
 * existing writable directory, or one it can make. Root nests under its own cgroup (v1) so that the
 * caller's own limits still apply; v2 forbids processes in inner nodes with controllers, so root uses
 * a top-level `bulkhead` node. Unprivileged callers need a subtree an administrator delegated to them.
 */
async function findBase(hierarchy: CgroupHierarchy): Promise<string | undefined> {
  const { mountPoint, ownPath } = hierarchy;
  const candidates: string[] = [];
  if (hierarchy.version === 1) {
    candidates.push(posix.join(mountPoint, ownPath, 'bulkhead'));
    if (!isRoot()) candidates.push(posix.join(mountPoint, `bulkhead-${userName()}`));
  } else if (isRoot()) {
    candidates.push(posix.join(mountPoint, 'bulkhead'));
  } else {
    // A delegated parent (systemd's user@.service, a container's cgroup namespace) lets us make a
    // sibling of our own cgroup and move our children into it.
    if (ownPath !== '/')
      candidates.push(posix.join(mountPoint, posix.dirname(ownPath), `bulkhead-${userName()}`));
    candidates.push(posix.join(mountPoint, `bulkhead-${userName()}`));
  }
  for (const candidate of candidates) {
    if (await isDirectory(candidate)) {
      if (await writable(candidate)) return candidate;
      continue;
    }
    if (!(await writable(posix.dirname(candidate)))) continue;
    try {
      await mkdir(candidate);
      return candidate;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && (await writable(candidate))) return candidate;
    }
  }
  return undefined;
}

async function readWords(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Enables `wanted` v2 controllers for the children of `base` (and, for root, at the hierarchy's root
 * first). Returns the controllers really available to sandbox cgroups under `base`.
 */
async function enableV2Controllers(base: string, mountPoint: string, wanted: string[]): Promise<string[]> {
  const enable = async (directory: string) => {
    const available = await readWords(posix.join(directory, 'cgroup.controllers'));
    const enabled = await readWords(posix.join(directory, 'cgroup.subtree_control'));
    for (const controller of wanted) {
      if (!available.includes(controller) || enabled.includes(controller)) continue;
      // One at a time: a write listing several fails as a whole when one of them is refused.
      await writeFile(posix.join(directory, 'cgroup.subtree_control'), `+${controller}`).catch(() => {});
    }
  };
  if (isRoot() && posix.dirname(base) === mountPoint) await enable(mountPoint);
  await enable(base);
  return readWords(posix.join(base, 'cgroup.subtree_control'));
}

/** The command that delegates cgroups to an unprivileged user, as an administrator would type it. */
export function cgroupDelegationFix(
  version: 1 | 2,
  controllers: string[] = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'],
): string {
  const user = userName();
  if (version === 2) {
    return `delegate a cgroup v2 subtree: sudo mkdir /sys/fs/cgroup/bulkhead-${user} && echo '+memory +pids +cpu' | sudo tee /sys/fs/cgroup/cgroup.subtree_control && sudo chown -R ${user} /sys/fs/cgroup/bulkhead-${user} (and run the caller from a cgroup you own, e.g. systemd-run --user --scope -p Delegate=yes)`;
  }
  const list = controllers.join(',');
  return `delegate cgroup v1 subtrees: sudo mkdir /sys/fs/cgroup/{${list}}/bulkhead-${user} && sudo chown -R ${user} /sys/fs/cgroup/{${list}}/bulkhead-${user}`;
}

async function detectCgroupSupport(): Promise<CgroupSupport> {
  const layout = await readCgroupLayout();
  const support: CgroupSupport = { unavailable: {}, facts: {} };

  let v2Base: string | undefined;
  let v2Controllers: string[] = [];
  if (layout.v2) {
    v2Base = await findBase(layout.v2);
    if (v2Base)
      v2Controllers = await enableV2Controllers(v2Base, layout.v2.mountPoint, ['memory', 'pids', 'cpu']);
  }
  const v1Bases = new Map<string, string | undefined>();
  const v1Base = async (controller: CgroupController): Promise<CgroupBase | undefined> => {
    const hierarchy = layout.v1[controller];
    if (!hierarchy) return undefined;
    if (!v1Bases.has(hierarchy.mountPoint)) v1Bases.set(hierarchy.mountPoint, await findBase(hierarchy));
    const directory = v1Bases.get(hierarchy.mountPoint);
    return directory ? { hierarchy, directory } : undefined;
  };

  for (const feature of ['memory', 'processes', 'cpus'] as const) {
    const v2Name = V2_CONTROLLER[feature];
    const v1Name = V1_CONTROLLER[feature];
    if (layout.v2 && v2Base && v2Controllers.includes(v2Name)) {
      support[feature] = { mechanism: 'cgroup-v2', base: { hierarchy: layout.v2, directory: v2Base } };
      support.facts[`cgroup.${v2Name}`] = 'v2';
      continue;
    }
    const base = await v1Base(v1Name);
    if (base) {
      support[feature] = { mechanism: 'cgroup-v1', base };
      support.facts[`cgroup.${v1Name}`] = 'v1';
      continue;
    }
    const mountedV2 = layout.v2?.controllers.includes(v2Name) ?? false;
    const mountedV1 = layout.v1[v1Name] !== undefined;
    support.facts[`cgroup.${v1Name}`] = mountedV2
      ? 'v2 (not writable)'
      : mountedV1
        ? 'v1 (not writable)'
        : 'absent';
    support.unavailable[feature] =
      mountedV2 || mountedV1
        ? {
            reason: `the ${v1Name} controller (cgroup ${mountedV2 ? 'v2' : 'v1'}) has no subtree this user (${userName()}) may write`,
            fix: cgroupDelegationFix(mountedV2 ? 2 : 1),
          }
        : {
            reason: `the kernel offers no ${v1Name} cgroup controller on this host`,
            fix: `mount the ${v1Name} controller (cgroup v2: mount -t cgroup2 none /sys/fs/cgroup) or boot with cgroup_enable=${v1Name}`,
          };
  }

  if (layout.v2 && v2Base && support.memory?.mechanism !== 'cgroup-v1') {
    // cpu.stat's usage_usec exists in every v2 cgroup, with or without the cpu controller.
    support.cpuTime = { mechanism: 'cgroup-v2', base: { hierarchy: layout.v2, directory: v2Base } };
  } else {
    const base = await v1Base('cpuacct');
    if (base) support.cpuTime = { mechanism: 'cgroup-v1', base };
  }

  const usesV2 = [support.memory, support.processes, support.cpus].some(
    (feature) => feature?.mechanism === 'cgroup-v2',
  );
  const freezer = await v1Base('freezer');
  if (layout.v2 && v2Base && (usesV2 || !freezer) && (await writable(v2Base))) {
    support.kill = { mechanism: 'cgroup-v2', base: { hierarchy: layout.v2, directory: v2Base } };
  } else if (freezer) {
    support.kill = { mechanism: 'cgroup-v1', base: freezer };
  } else {
    support.unavailable.kill = {
      reason: 'neither cgroup v2 (cgroup.kill) nor the cgroup v1 freezer has a subtree this user may write',
      fix: cgroupDelegationFix(layout.v2 ? 2 : 1, ['freezer']),
    };
  }
  support.facts['cgroup.kill'] = support.kill
    ? support.kill.mechanism === 'cgroup-v2'
      ? 'v2 cgroup.kill'
      : 'v1 freezer'
    : 'unavailable';
  return support;
}

let cachedSupport: Promise<CgroupSupport> | undefined;

/** What this process can enforce with cgroups. Probed once per process (it may create base dirs). */
export function probeCgroupSupport(): Promise<CgroupSupport> {
  cachedSupport ??= detectCgroupSupport();
  return cachedSupport;
}
