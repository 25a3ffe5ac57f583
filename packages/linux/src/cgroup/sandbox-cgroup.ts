import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  write,
  writeFileSync,
} from 'node:fs';
import { readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { BulkheadError, onProcessExit } from '@bulkhead/core';
import { ownerProcessAlive } from '../host/host-facts.js';
import {
  type CgroupFeature,
  type CgroupMechanism,
  type CgroupSupport,
  probeCgroupSupport,
} from './cgroup-support.js';

export interface CgroupLimits {
  /** Memory cap in bytes (swap included where the host can say so). */
  memoryBytes?: number;
  /** Upper bound on processes and threads. */
  maxProcesses?: number;
  /** CPU bandwidth in CPUs (0.5 = half of one CPU). */
  cpus?: number;
}

export interface CgroupStatistics {
  peakMemoryBytes?: number;
  cpuMs?: number;
  /** The kernel's OOM killer ended a process of the sandbox at the memory cap. */
  oomKilled: boolean;
  /** Forks refused at the process cap (pids.events `max`). */
  processLimitHits: number;
}

/**
 * The cgroups of one sandbox, one per hierarchy it needs. Every process of the sandbox must be placed
 * with `addProcess()` before it can run payload code (a gated spawn), so that nothing escapes them.
 */
export interface SandboxCgroup {
  /** Which cgroup version enforces each limit (`memory: 'cgroup-v1'`). */
  readonly enforcement: {
    memory?: CgroupMechanism;
    processes?: CgroupMechanism;
    cpus?: CgroupMechanism;
    kill?: CgroupMechanism;
  };
  /** Limits the host could not enforce as asked (swap not capped, ...). */
  readonly warnings: string[];
  /** Directories made, one per hierarchy. */
  readonly directories: string[];
  /** Moves a process (with its threads) into every cgroup of the sandbox. */
  addProcess(pid: number): Promise<void>;
  /** Pids currently in the sandbox. */
  processes(): Promise<number[]>;
  /** Sends `signal` to every process of the sandbox except `exclude`. */
  signal(signal: NodeJS.Signals, exclude?: readonly number[]): Promise<void>;
  /** Kills the whole tree and returns once it is empty (freeze + kill + thaw on v1; cgroup.kill on v2). */
  kill(): Promise<void>;
  statistics(): Promise<CgroupStatistics>;
  /** Kills what is left and removes every directory. Idempotent. */
  remove(): Promise<void>;
}

const OWNER_PREFIX = `${process.pid}-`;
/** How long `kill()` keeps killing before it gives up and says which processes survived. */
const KILL_DEADLINE_MS = 10_000;

/** The directory name of a sandbox's cgroup: owner pid first, so a later start can reap it. */
export function sandboxCgroupName(sandboxId: string): string {
  return `${OWNER_PREFIX}${sandboxId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100)}`;
}

/*
 * The launch path touches cgroupfs synchronously: its files are kernel state, never disk, so a call
 * costs microseconds (four mkdirs, limits and rmdirs measured at 0.1-0.2 ms in all here), while each
 * trip through libuv's thread pool costs more than that and queues behind every other launch's
 * (the issue's target: a hundred launches at once, none waiting on the thread pool). Only the
 * migration of a process, which can wait for an RCU grace period on some kernels, stays off the event
 * loop, on fds opened in advance.
 */
function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function readTextAsync(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

const writeToFd = promisify(write);

/** Per base directory: does the v1 memory controller account swap there (`memory.memsw.*`)? */
const swapAccounting = new Map<string, boolean>();
let swapConfigured: boolean | undefined;

/** Does the host have swap at all? Read once: a cap that ignores swap matters only with swap. */
function hostHasSwap(): boolean {
  swapConfigured ??= readText('/proc/swaps')?.trim().includes('\n') ?? false;
  return swapConfigured;
}

function keyedNumber(text: string | undefined, key: string): number | undefined {
  if (!text) return undefined;
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function parsePids(text: string | undefined): number[] {
  if (!text) return [];
  return text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
}

interface Directory {
  feature: CgroupFeature;
  path: string;
}

/**
 * The cgroups of one sandbox, made but not yet limited: a process can be placed in them ahead of the
 * launch (the placement is what can wait on the kernel, see above), and the launch applies its limits
 * with `limit()` before that process runs anything of the payload.
 */
export interface PreparedSandboxCgroup {
  /** Directories made, one per hierarchy. */
  readonly directories: string[];
  /** Moves a process (with its threads) into every cgroup of the sandbox. */
  addProcess(pid: number): Promise<void>;
  /**
   * Writes the limits and hands out the sandbox's cgroup (once). Throws `CGROUP_SETUP_FAILED` when the
   * kernel refuses a limit; the directories stay until `remove()`.
   */
  limit(limits: CgroupLimits): SandboxCgroup;
  /** Kills what is in it and removes every directory. Idempotent. */
  remove(): Promise<void>;
  /** The same, synchronously, for process exit: waits at most about 100 ms for the kernel. */
  removeSync(): void;
}

/**
 * Makes the cgroups of one sandbox and applies the limits. Throws `CGROUP_SETUP_FAILED` (after
 * removing what it made) when the kernel refuses a limit.
 */
export async function createSandboxCgroup(options: {
  sandboxId: string;
  limits: CgroupLimits;
}): Promise<SandboxCgroup> {
  const { limits } = options;
  const prepared = await prepareCgroup(sandboxCgroupName(options.sandboxId), {
    memory: limits.memoryBytes !== undefined && Number.isFinite(limits.memoryBytes),
    processes: limits.maxProcesses !== undefined && Number.isFinite(limits.maxProcesses),
    cpus: limits.cpus !== undefined,
  });
  try {
    return prepared.limit(limits);
  } catch (error) {
    prepared.removeSync();
    throw error;
  }
}

/**
 * Makes the cgroups a sandbox could need (memory, processes, CPU time, the killer; CPU bandwidth only
 * with `cpus`), with no limit yet, named like a sandbox's (owner pid first), so that a crashed owner's
 * are reaped alike. CPU bandwidth is asked for up front because its cgroup is not neutral even without
 * a limit: the scheduler then shares CPU between the sandbox as a group and its neighbours, where a
 * sandbox without a CPU limit should compete like any of the caller's processes.
 */
export async function prepareSandboxCgroup(options: {
  name: string;
  cpus: boolean;
}): Promise<PreparedSandboxCgroup> {
  return prepareCgroup(sandboxCgroupName(options.name), {
    memory: true,
    processes: true,
    cpus: options.cpus,
  });
}

function setupFailed(directories: Directory[], error: unknown): BulkheadError {
  return new BulkheadError(
    'CGROUP_SETUP_FAILED',
    `Could not set up the sandbox's cgroups (${(error as Error).message}). The limits cannot be enforced, so nothing was started. Fix: check that ${directories.map((directory) => directory.feature.base.directory).join(', ')} are writable cgroup directories.`,
    { cause: error },
  );
}

async function prepareCgroup(
  name: string,
  wanted: { memory: boolean; processes: boolean; cpus: boolean },
): Promise<PreparedSandboxCgroup> {
  const support = await probeCgroupSupport();
  await reapStaleCgroupsOnce(support);
  const byDirectory = new Map<string, Directory>();
  const directoryOf = (feature: CgroupFeature | undefined): Directory | undefined => {
    if (!feature) return undefined;
    const path = posix.join(feature.base.directory, name);
    let directory = byDirectory.get(path);
    if (!directory) {
      directory = { feature, path };
      byDirectory.set(path, directory);
    }
    return directory;
  };
  const memory = wanted.memory ? directoryOf(support.memory) : undefined;
  const processes = wanted.processes ? directoryOf(support.processes) : undefined;
  const cpus = wanted.cpus ? directoryOf(support.cpus) : undefined;
  // Peak memory and OOM come from the memory controller even without a cap.
  const memoryAccounting = memory ?? directoryOf(support.memory);
  const cpuTime = directoryOf(support.cpuTime);
  const killer = directoryOf(support.kill);
  const directories = [...byDirectory.values()];

  const made: string[] = [];
  // cgroup.procs of each directory, opened now (close-on-exec, like every fd Node opens): placing a
  // process is then one write per hierarchy.
  const procsFds: number[] = [];
  const closeProcsFds = () => {
    for (const fd of procsFds.splice(0)) closeSync(fd);
  };
  try {
    for (const directory of directories) {
      mkdirSync(directory.path);
      made.push(directory.path);
    }
    for (const directory of directories)
      procsFds.push(openSync(posix.join(directory.path, 'cgroup.procs'), 'w'));
  } catch (error) {
    closeProcsFds();
    for (const path of made.reverse()) {
      try {
        rmdirSync(path);
      } catch {
        // Best effort: the reaper removes it once this process is gone.
      }
    }
    throw setupFailed(directories, error);
  }

  const membership = killer ?? processes ?? memoryAccounting ?? directories[0];
  const processes_ = async () =>
    membership ? parsePids(readText(posix.join(membership.path, 'cgroup.procs'))) : [];
  let removed = false;
  let limited = false;

  const freezer = killer?.feature.mechanism === 'cgroup-v1' ? killer.path : undefined;
  const freezerState = async (state: 'FROZEN' | 'THAWED') => {
    if (!freezer) return;
    try {
      writeFileSync(posix.join(freezer, 'freezer.state'), state);
    } catch {
      // A freezer that refuses: the SIGKILL round below still runs.
    }
    if (state !== 'FROZEN') return;
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = readText(posix.join(freezer, 'freezer.state'))?.trim();
      if (current !== 'FREEZING') return;
      await delay(1);
    }
  };

  const kill = async () => {
    const deadline = performance.now() + KILL_DEADLINE_MS;
    for (let round = 0; ; round++) {
      let pids = await processes_();
      if (pids.length === 0) return;
      if (performance.now() > deadline) {
        const states = pids.map(
          (pid) => `${pid} (${readText(`/proc/${pid}/stat`)?.split(') ')[1]?.[0] ?? 'gone'})`,
        );
        throw new BulkheadError(
          'CGROUP_KILL_FAILED',
          `Processes of the sandbox survived SIGKILL for ${KILL_DEADLINE_MS / 1000} s in ${membership?.path}: ${states.join(', ')}. A process stuck in the kernel (state D) dies once its system call returns.`,
          { details: { pids } },
        );
      }
      if (killer?.feature.mechanism === 'cgroup-v2') {
        try {
          writeFileSync(posix.join(killer.path, 'cgroup.kill'), '1');
        } catch {
          // Emptied meanwhile; the next round checks.
        }
      } else {
        // Frozen, nothing can fork between the listing and the kill.
        await freezerState('FROZEN');
        pids = await processes_();
        for (const pid of pids) signalProcess(pid, 'SIGKILL');
        await freezerState('THAWED');
      }
      await delay(round < 20 ? 1 : 10);
    }
  };

  const addProcess = async (pid: number) => {
    if (removed) throw new BulkheadError('INTERNAL_ERROR', 'The sandbox cgroup was removed already.');
    const text = Buffer.from(String(pid));
    // Together rather than in turn: each hierarchy's migration waits on the same kernel lock.
    await Promise.all(procsFds.map((fd) => writeToFd(fd, text)));
  };

  const remove = async () => {
    if (removed) return;
    await kill();
    removed = true;
    forgetAtExit();
    closeProcsFds();
    await removeDirectories(directories.map((directory) => directory.path));
  };

  const removeSync = () => {
    if (removed) return;
    removed = true;
    forgetAtExit();
    closeProcsFds();
    for (const pid of parsePids(membership ? readText(posix.join(membership.path, 'cgroup.procs')) : ''))
      signalProcess(pid, 'SIGKILL');
    const deadline = performance.now() + 100;
    for (const directory of directories) {
      for (;;) {
        try {
          rmdirSync(directory.path);
          break;
        } catch (error) {
          // The kernel frees a cgroup a moment after its last process exited; the reaper gets the rest.
          if ((error as NodeJS.ErrnoException).code !== 'EBUSY' || performance.now() > deadline) break;
        }
      }
    }
  };

  // A caller that exits while this sandbox runs, or while it is being made or prepared (before
  // anything else could end it), takes its cgroups with it instead of leaving them to the reaper.
  const forgetAtExit = onProcessExit(removeSync);

  const limit = (limits: CgroupLimits): SandboxCgroup => {
    if (limited || removed)
      throw new BulkheadError('INTERNAL_ERROR', 'The sandbox cgroup was handed out or removed already.');
    limited = true;
    const warnings: string[] = [];
    const capMemory =
      memory && limits.memoryBytes !== undefined && Number.isFinite(limits.memoryBytes) ? memory : undefined;
    const capProcesses =
      processes && limits.maxProcesses !== undefined && Number.isFinite(limits.maxProcesses)
        ? processes
        : undefined;
    const capCpus = cpus && limits.cpus !== undefined ? cpus : undefined;
    if (limits.cpus !== undefined && !cpus && support.cpus) {
      throw new BulkheadError(
        'INTERNAL_ERROR',
        'A CPU limit was asked of cgroups prepared without a CPU bandwidth cgroup: it would not be enforced.',
      );
    }
    try {
      if (capMemory && limits.memoryBytes !== undefined) {
        const bytes = String(Math.max(4096, Math.floor(limits.memoryBytes)));
        if (capMemory.feature.mechanism === 'cgroup-v2') {
          writeFileSync(posix.join(capMemory.path, 'memory.max'), bytes);
          // Without this, the payload could page out past the cap: the cap would not be real.
          try {
            writeFileSync(posix.join(capMemory.path, 'memory.swap.max'), '0');
          } catch {
            warnings.push('Swap is not capped (no memory.swap.max): the memory cap counts RAM only.');
          }
        } else {
          writeFileSync(posix.join(capMemory.path, 'memory.limit_in_bytes'), bytes);
          const swapFile = posix.join(capMemory.path, 'memory.memsw.limit_in_bytes');
          const base = capMemory.feature.base.directory;
          let hasSwapAccounting = swapAccounting.get(base);
          if (hasSwapAccounting === undefined) {
            hasSwapAccounting = existsSync(swapFile);
            swapAccounting.set(base, hasSwapAccounting);
          }
          if (hasSwapAccounting) writeFileSync(swapFile, bytes);
          else if (hostHasSwap()) {
            warnings.push(
              'Swap is not capped (cgroup v1 without swap accounting; boot with swapaccount=1): the memory cap counts RAM only.',
            );
          }
        }
      }
      if (capProcesses && limits.maxProcesses !== undefined) {
        writeFileSync(
          posix.join(capProcesses.path, 'pids.max'),
          String(Math.max(1, Math.floor(limits.maxProcesses))),
        );
      }
      if (capCpus && limits.cpus !== undefined) {
        const period = 100_000;
        const quota = Math.max(1000, Math.round(limits.cpus * period));
        if (capCpus.feature.mechanism === 'cgroup-v2')
          writeFileSync(posix.join(capCpus.path, 'cpu.max'), `${quota} ${period}`);
        else {
          writeFileSync(posix.join(capCpus.path, 'cpu.cfs_period_us'), String(period));
          writeFileSync(posix.join(capCpus.path, 'cpu.cfs_quota_us'), String(quota));
        }
      }
    } catch (error) {
      throw setupFailed(directories, error);
    }
    return {
      enforcement: {
        ...(capMemory ? { memory: capMemory.feature.mechanism } : {}),
        ...(capProcesses ? { processes: capProcesses.feature.mechanism } : {}),
        ...(capCpus ? { cpus: capCpus.feature.mechanism } : {}),
        ...(killer ? { kill: killer.feature.mechanism } : {}),
      },
      warnings,
      directories: directories.map((directory) => directory.path),
      addProcess,
      processes: processes_,
      async signal(signal, exclude = []) {
        for (const pid of await processes_()) if (!exclude.includes(pid)) signalProcess(pid, signal);
      },
      kill,
      async statistics() {
        const result: CgroupStatistics = { oomKilled: false, processLimitHits: 0 };
        if (memoryAccounting) {
          if (memoryAccounting.feature.mechanism === 'cgroup-v2') {
            const peak = readText(posix.join(memoryAccounting.path, 'memory.peak'));
            if (peak) result.peakMemoryBytes = Number(peak.trim());
            result.oomKilled =
              (keyedNumber(readText(posix.join(memoryAccounting.path, 'memory.events')), 'oom_kill') ?? 0) >
              0;
          } else {
            const peak = readText(posix.join(memoryAccounting.path, 'memory.max_usage_in_bytes'));
            if (peak) result.peakMemoryBytes = Number(peak.trim());
            result.oomKilled =
              (keyedNumber(readText(posix.join(memoryAccounting.path, 'memory.oom_control')), 'oom_kill') ??
                0) > 0;
          }
        }
        if (cpuTime) {
          if (cpuTime.feature.mechanism === 'cgroup-v2') {
            const usage = keyedNumber(readText(posix.join(cpuTime.path, 'cpu.stat')), 'usage_usec');
            if (usage !== undefined) result.cpuMs = usage / 1000;
          } else {
            const usage = readText(posix.join(cpuTime.path, 'cpuacct.usage'));
            if (usage) result.cpuMs = Number(usage.trim()) / 1e6;
          }
        }
        if (capProcesses) {
          result.processLimitHits =
            keyedNumber(readText(posix.join(capProcesses.path, 'pids.events')), 'max') ?? 0;
        }
        return result;
      },
      remove,
    };
  };

  return {
    directories: directories.map((directory) => directory.path),
    addProcess,
    limit,
    remove,
    removeSync,
  };
}

async function removeDirectories(paths: string[], synchronous = true): Promise<void> {
  for (const path of paths) {
    for (let attempt = 0; ; attempt++) {
      try {
        if (synchronous) rmdirSync(path);
        else await rmdir(path);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        // The kernel frees a cgroup a moment after its last process is reaped.
        if (code === 'EBUSY' && attempt < 200) {
          await delay(attempt < 20 ? 1 : 10);
          continue;
        }
        throw error;
      }
    }
  }
}

/**
 * Removes sandbox cgroups whose owner process is dead (a caller that crashed before dispose): kills
 * what still runs in them, then removes them. Returns the number of cgroups removed.
 */
export async function reapStaleCgroups(support?: CgroupSupport): Promise<number> {
  const resolved = support ?? (await probeCgroupSupport());
  const bases = new Set<string>();
  for (const feature of [
    resolved.memory,
    resolved.processes,
    resolved.cpus,
    resolved.cpuTime,
    resolved.kill,
  ]) {
    if (feature) bases.add(feature.base.directory);
  }
  const stale = new Map<string, string[]>();
  for (const base of bases) {
    let entries: string[];
    try {
      entries = await readdir(base);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = /^(\d+)-/.exec(entry);
      if (!match || ownerProcessAlive(Number(match[1]))) continue;
      stale.set(entry, [...(stale.get(entry) ?? []), posix.join(base, entry)]);
    }
  }
  let removed = 0;
  for (const [, paths] of stale) {
    const freezer = paths.find(
      (path) => resolved.kill?.mechanism === 'cgroup-v1' && path.startsWith(resolved.kill.base.directory),
    );
    for (let round = 0; round < 200; round++) {
      const pids = new Set<number>();
      for (const path of paths)
        for (const pid of parsePids(await readTextAsync(posix.join(path, 'cgroup.procs')))) pids.add(pid);
      if (pids.size === 0) break;
      if (freezer) await writeFile(posix.join(freezer, 'freezer.state'), 'FROZEN').catch(() => {});
      for (const path of paths) await writeFile(posix.join(path, 'cgroup.kill'), '1').catch(() => {});
      for (const pid of pids) signalProcess(pid, 'SIGKILL');
      if (freezer) await writeFile(posix.join(freezer, 'freezer.state'), 'THAWED').catch(() => {});
      await delay(5);
    }
    try {
      await removeDirectories(paths, false);
      removed++;
    } catch {
      // Still busy: the next start tries again.
    }
  }
  return removed;
}

let reaped: Promise<unknown> | undefined;

function reapStaleCgroupsOnce(support: CgroupSupport): Promise<unknown> {
  reaped ??= reapStaleCgroups(support).catch(() => 0);
  return reaped;
}
