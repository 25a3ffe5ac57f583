import { type Dirent, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** One process as the host's /proc shows it. */
export interface ProcessEntry {
  pid: number;
  parentPid: number;
  /** The kernel's short command name (`comm`). */
  name: string;
}

/** Parses the start of /proc/PID/stat; the name may hold spaces and parentheses, so it ends at the last ')'. */
export function parseProcessStat(stat: string): ProcessEntry | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number.parseInt(stat.slice(0, open), 10);
  const fields = stat.slice(close + 2).split(' ');
  const parentPid = Number.parseInt(fields[1] ?? '', 10);
  if (!Number.isInteger(pid) || !Number.isInteger(parentPid)) return undefined;
  return { pid, parentPid, name: stat.slice(open + 1, close) };
}

export function listProcesses(): ProcessEntry[] {
  const entries: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const entry = parseProcessStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (entry) entries.push(entry);
    } catch {
      // It exited while we looked.
    }
  }
  return entries;
}

/** Every process below `rootPid` in the host's process tree (children of children included). */
export function descendantsOf(rootPid: number, processes: ProcessEntry[]): ProcessEntry[] {
  const children = new Map<number, ProcessEntry[]>();
  for (const entry of processes) {
    const siblings = children.get(entry.parentPid);
    if (siblings) siblings.push(entry);
    else children.set(entry.parentPid, [entry]);
  }
  const found: ProcessEntry[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Payload processes, which are not counted as isolation (the workload's file is `workload-<digest>`). */
export function isPayload(name: string): boolean {
  return name === 'sleep' || name.startsWith('workload');
}

/** Processes under this process: the isolation's, and the payloads'. */
export function isolationProcesses(): { isolation: ProcessEntry[]; payload: ProcessEntry[] } {
  const all = descendantsOf(process.pid, listProcesses());
  return {
    isolation: all.filter((entry) => !isPayload(entry.name)),
    payload: all.filter((entry) => isPayload(entry.name)),
  };
}

/**
 * This process's own PSS after a full garbage collection (workers run with --expose-gc), so that a
 * launcher's growth is what the library holds, not when V8 last collected.
 */
export function settledPss(): number | undefined {
  (globalThis as { gc?: () => void }).gc?.();
  return pssBytes(process.pid);
}

/** Proportional set size in bytes from /proc/PID/smaps_rollup; undefined once the process is gone. */
export function pssBytes(pid: number): number | undefined {
  try {
    const match = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcessMemory {
  name: string;
  count: number;
  pssBytes: number;
}

/** PSS summed per process name, largest first: which helper costs what. */
export function memoryByName(entries: ProcessEntry[]): ProcessMemory[] {
  const byName = new Map<string, ProcessMemory>();
  for (const entry of entries) {
    const pss = pssBytes(entry.pid);
    if (pss === undefined) continue;
    const memory = byName.get(entry.name) ?? { name: entry.name, count: 0, pssBytes: 0 };
    memory.count += 1;
    memory.pssBytes += pss;
    byName.set(entry.name, memory);
  }
  return [...byName.values()].sort((a, b) => b.pssBytes - a.pssBytes);
}

/**
 * A memory cgroup the benchmark moves one worker into, so that what its sandboxes get charged for
 * (user and kernel memory) can be read, apart from everything else on the machine. A child of the
 * benchmark's own cgroup: it never escapes the limits the caller is under.
 */
export interface MeasurementCgroup {
  version: 1 | 2;
  directory: string;
  add(pid: number): Promise<void>;
  /** Charged bytes: memory.usage_in_bytes (v1) or memory.current (v2). */
  chargedBytes(): Promise<number | undefined>;
  /** Kernel memory: memory.kmem.usage_in_bytes (v1) or the `kernel` line of memory.stat (v2). */
  kernelBytes(): Promise<number | undefined>;
  /** Processes still in the cgroup or below it (after a worker ended: what its subject left behind). */
  remaining(): Promise<ProcessEntry[]>;
  /** Kills whatever remains, then removes the cgroup and any left inside it. */
  remove(): Promise<void>;
}

/** The cgroup directory and every directory below it, deepest first. */
async function cgroupTree(directory: string): Promise<string[]> {
  const found: string[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries)
    if (entry.isDirectory()) found.push(...(await cgroupTree(path.join(directory, entry.name))));
  found.push(directory);
  return found;
}

async function cgroupPids(directory: string): Promise<number[]> {
  const pids: number[] = [];
  for (const level of await cgroupTree(directory)) {
    try {
      const text = await readFile(path.join(level, 'cgroup.procs'), 'utf8');
      for (const line of text.split('\n')) if (line.trim()) pids.push(Number(line));
    } catch {
      // Removed meanwhile.
    }
  }
  return pids;
}

async function readNumber(file: string): Promise<number | undefined> {
  try {
    const value = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The memory cgroup directory this process is in, for v1 (`memory` line) or v2 (`0::` line). */
export function ownMemoryCgroup(): { version: 1 | 2; directory: string } | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n')) {
    const [, controllers, relative] = line.split(':');
    if (relative === undefined) continue;
    if (controllers?.split(',').includes('memory')) {
      const directory = path.join('/sys/fs/cgroup/memory', relative);
      if (existsSync(path.join(directory, 'memory.usage_in_bytes'))) return { version: 1, directory };
    }
  }
  for (const line of table.split('\n')) {
    if (!line.startsWith('0::')) continue;
    for (const root of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
      const directory = path.join(root, line.slice(3));
      if (existsSync(path.join(directory, 'memory.current'))) return { version: 2, directory };
    }
  }
  return undefined;
}

let cgroupSequence = 0;

/** Creates a measurement cgroup, or returns the reason there is none (not root, no memory controller). */
export async function createMeasurementCgroup(): Promise<MeasurementCgroup | string> {
  const own = ownMemoryCgroup();
  if (!own)
    return 'no memory cgroup controller is reachable from this process (v1 memory or v2 with memory enabled)';
  const directory = path.join(own.directory, `bulkhead-bench-${process.pid}-${cgroupSequence++}`);
  try {
    await mkdir(directory);
  } catch (error) {
    return `cannot create a memory cgroup under ${own.directory}: ${(error as Error).message}`;
  }
  const { version } = own;
  return {
    version,
    directory,
    add: (pid) => writeFile(path.join(directory, 'cgroup.procs'), String(pid)),
    chargedBytes: () =>
      readNumber(path.join(directory, version === 1 ? 'memory.usage_in_bytes' : 'memory.current')),
    async kernelBytes() {
      if (version === 1) return readNumber(path.join(directory, 'memory.kmem.usage_in_bytes'));
      try {
        const match = /^kernel (\d+)$/m.exec(await readFile(path.join(directory, 'memory.stat'), 'utf8'));
        return match ? Number(match[1]) : undefined;
      } catch {
        return undefined;
      }
    },
    async remaining() {
      const pids = new Set(await cgroupPids(directory));
      return listProcesses().filter((entry) => pids.has(entry.pid));
    },
    async remove() {
      // Page-cache charges move to the parent with rmdir; only processes keep a cgroup busy.
      for (let attempt = 0; attempt < 50; attempt++) {
        for (const pid of await cgroupPids(directory)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        let removed = true;
        for (const level of await cgroupTree(directory)) {
          try {
            await rmdir(level);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT') removed = false;
          }
        }
        if (removed) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
  };
}
