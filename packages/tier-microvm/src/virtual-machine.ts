import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BulkheadError, type Capabilities } from '@bulkhead/core';
import {
  createSandboxCgroup,
  ensureShim,
  planShim,
  readShimStatus,
  reapStaleStaging,
  type SandboxCgroup,
  SHIM_SANDBOX_PATH,
  sandboxCgroupName,
  sandboxIdentity,
  stageIdMappedMounts,
} from '@bulkhead/linux';
import { defaultCacheDirectory } from './cache-directory.js';
import type { GuestExitReport } from './control-channel.js';
import { GuestProcess } from './guest-process.js';
import type { Accelerator, VmmBackend } from './vmm-backend.js';
import { buildJailArguments, JAIL_PATHS, type PathKind, pathKind } from './vmm-jail.js';

export interface StartVirtualMachineOptions {
  /** Names the VMM's cgroup; unique per VM. */
  id: string;
  backend: VmmBackend;
  accelerator: Accelerator;
  kernelPath: string;
  initramfsPath: string;
  memoryMebibytes: number;
  vcpus: number;
  filesystem: { read: string[]; write: string[]; deny: string[] };
  /** The bubblewrap binary that jails the VMM. */
  bubblewrap: string;
  /** Called with the payload's exit report, as soon as the guest sends it. */
  onReport?: (report: GuestExitReport) => void;
  /** An allow-list: the guest's only route is a forward of `address:port` to this egress socket. */
  egress?: { socketPath: string; address: string; port: number; relayHostPath: string };
  /** Extra kernel command-line arguments (the guest's `ip=` for an allow-list). */
  kernelArguments?: string[];
  /** CPU bandwidth of the whole VMM (vCPUs and emulation), in CPUs; absent: unlimited. */
  cpus?: number;
  /** Default: `defaultCacheDirectory()`. */
  cacheDirectory?: string;
}

/** Where the relay (the guest init binary, in relay mode) sits in the jail. */
const RELAY_JAIL_PATH = '/bulkhead/relay';

export interface RunningVirtualMachine {
  guest: GuestProcess;
  vmm: ChildProcess;
  /** The uid and gid the VMM runs as, and so the owner the guest sees on its writable files. */
  identity: { uid: number; gid: number };
  /** What confines the VMM itself, for the result's enforcement and warnings. */
  jail: { mechanisms: string[]; warnings: string[]; cpuMechanism?: string };
  /** Kills the jail and with it the VMM (the jail dies with its parent). Idempotent. */
  kill(): void;
  /** The guest's serial console so far (kernel messages), for diagnostics. */
  console(): Promise<string>;
  /** Peak memory of the VMM's cgroup (the VMM plus all guest RAM it touched), when measured. */
  vmmPeakMemoryBytes(): Promise<number | undefined>;
  /** Removes the VM's cgroup and private directory. Call after the VMM is gone. */
  cleanUp(): Promise<void>;
  /** At process exit: removes the private directory (a stale cgroup is reaped at the next start). */
  cleanUpSync(): void;
  /** An idle VM in a pool must not keep the process alive; `attach()` undoes it at hand-out. */
  detach(): void;
  attach(): void;
}

/**
 * Memory the VMM may use beyond guest RAM: QEMU itself, its TCG translation cache (capped with
 * `tb-size` by the backend) and the 9p server's buffers.
 */
const VMM_OVERHEAD_BYTES = 192 * 1024 * 1024;
/** QEMU's threads: main loop, vCPUs, RCU, the 9p worker pool. */
const VMM_MAX_THREADS = 64;

function endPipe(stream: unknown, data: Buffer): void {
  const writable = stream as Writable | null;
  writable?.on('error', () => {});
  writable?.end(data);
}

function readToEnd(stream: unknown): Promise<Buffer> {
  const readable = stream as Readable | null;
  if (!readable) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    readable.on('data', (chunk: Buffer) => chunks.push(chunk));
    readable.once('error', () => resolve(Buffer.concat(chunks)));
    readable.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

const shimCopies = new Map<string, Promise<string>>();

/** Run directories carry their owner's pid, so that those of a caller that died can be found. */
const RUN_DIRECTORY_PREFIX = 'bulkhead-microvm-';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A caller that crashed leaves no VM running (the jail dies with its parent), but its run directories
 * stay in the temporary folder, and a root caller's id-mapped copies stay mounted: each later VM
 * start removes them (a listing or two, cheap beside a boot). Its cgroups are reaped by
 * @bulkhead/linux the same way.
 */
async function reapStaleRunDirectories(): Promise<void> {
  if (process.getuid?.() === 0) await reapStaleStaging().catch(() => 0);
  let names: string[];
  try {
    names = await readdir(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const owner = new RegExp(`^${RUN_DIRECTORY_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (owner === undefined || Number(owner) === process.pid || isAlive(Number(owner))) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * @bulkhead/linux's exec shim, copied once per process into this package's cache (by content): the
 * original lives in that package's build output, which a rebuild empties while VMs keep starting.
 */
function privateShimCopy(cacheDirectory: string): Promise<string> {
  let copy = shimCopies.get(cacheDirectory);
  if (copy) return copy;
  copy = (async () => {
    const original = await ensureShim();
    const data = await readFile(original);
    const path = join(
      defaultCacheDirectory(),
      'shim',
      createHash('sha256').update(data).digest('hex'),
      'bulkhead-shim',
    );
    if (!existsSync(path)) {
      await mkdir(dirname(path), { recursive: true });
      const temporary = `${path}.${process.pid}.tmp`;
      await writeFile(temporary, data, { mode: 0o755 });
      await rename(temporary, path);
    }
    return path;
  })();
  shimCopies.set(cacheDirectory, copy);
  copy.catch(() => shimCopies.delete(cacheDirectory));
  return copy;
}

const READ_BY_OTHERS = 0o004;
const SEARCH_BY_OTHERS = 0o001;

/** Can an unprivileged uid reach and read `path` (its own mode and every ancestor's search bit)? */
async function readableByOthers(path: string): Promise<boolean> {
  try {
    const own = await stat(path);
    const needed = own.isDirectory() ? READ_BY_OTHERS | SEARCH_BY_OTHERS : READ_BY_OTHERS;
    if ((own.mode & needed) !== needed) return false;
    for (let ancestor = dirname(path); ; ancestor = dirname(ancestor)) {
      if (((await stat(ancestor)).mode & SEARCH_BY_OTHERS) === 0) return false;
      if (ancestor === '/') return true;
    }
  } catch {
    return false;
  }
}

/**
 * What an unprivileged VMM must get from id-mapped copies: every write grant (root-owned files must
 * be writable, and what it creates must land owned by root), read grants and VM files it could not
 * reach, and the egress socket (its folder is private to the caller).
 */
async function pathsToStage(
  options: StartVirtualMachineOptions,
  vmFiles: string[],
): Promise<{ path: string; kind: 'directory' | 'file' }[]> {
  const { read, write, deny } = options.filesystem;
  const staged: { path: string; kind: 'directory' | 'file' }[] = [];
  const add = (path: string, kind: PathKind) => {
    if (kind === 'directory' || kind === 'file') staged.push({ path, kind });
  };
  for (const path of new Set([...write, ...read])) {
    if (deny.includes(path)) continue;
    const writable = write.includes(path) && !read.includes(path);
    if (writable || !(await readableByOthers(path))) add(path, pathKind(path));
  }
  for (const path of vmFiles) if (!(await readableByOthers(path))) add(path, 'file');
  if (options.egress) add(options.egress.socketPath, 'file');
  return staged;
}

/**
 * The VMM's own files in the jail, which Landlock leaves as they are: it reads its binaries and
 * libraries, the VM's files, /proc and /dev, and writes its console log, its devices and the egress
 * socket. The view is the grants' (see `vmmCapabilities`): reads there are left to the jail's mounts,
 * unless a deny inside a grant has no mask, when Landlock reads only the grants (planLandlock).
 */
function vmmPaths(options: StartVirtualMachineOptions): { read: string[]; write: string[] } {
  return {
    // /lib and friends are links into /usr on merged-/usr hosts, binds of their own elsewhere.
    read: ['/usr', '/lib', '/lib64', '/bin', '/sbin', '/etc/ld.so.cache', '/bulkhead', '/proc', '/dev'],
    write: [
      JAIL_PATHS.run,
      ...(options.egress ? [options.egress.socketPath] : []),
      '/dev/null',
      ...(options.accelerator === 'kvm' ? ['/dev/kvm'] : []),
    ],
  };
}

/**
 * The VMM's own capabilities: what the exec shim confines it to with Landlock and seccomp inside the
 * jail. Its filesystem is the guest's grants in host terms, which the jail shows under `/view` (see
 * `vmmPaths` for its own files): it writes only the write grants, and Landlock splits them around a
 * deny or a read grant inside them that did not exist when the jail was made (and so has no mask or
 * read-only mount there), so that the guest cannot create it through the VMM.
 */
function vmmCapabilities(options: StartVirtualMachineOptions): Capabilities {
  return {
    filesystem: options.filesystem,
    // For an allow-list, libslirp links each forward's relay to the VMM over a loopback TCP pair (for
    // out-of-band data), so AF_INET is allowed then: the jail's network namespace has only loopback.
    network: { mode: options.egress ? 'open' : 'none', allow: [] },
    // The VMM never forks, except the relay it starts per guest connection for an allow-list.
    process: { spawn: options.egress !== undefined, maxProcesses: VMM_MAX_THREADS },
    resources: {
      memoryBytes: options.memoryMebibytes * 1024 * 1024 + VMM_OVERHEAD_BYTES,
      timeoutMs: Number.POSITIVE_INFINITY,
      gpus: 'none',
    },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: '/',
  };
}

/**
 * Starts one VM, jailed like Firecracker's jailer: bubblewrap namespaces (see `buildJailArguments`),
 * then @bulkhead/linux's exec shim (no_new_privs, Landlock, seccomp) in front of the VMM, and a
 * cgroup capping the VMM's memory and threads. Nothing of the VMM runs before it is in its cgroup.
 * The returned guest says `ready` once init waits for the launch.
 */
export async function startVirtualMachine(
  options: StartVirtualMachineOptions,
): Promise<RunningVirtualMachine> {
  await reapStaleRunDirectories();
  const runDirectory = await mkdtemp(join(tmpdir(), `${RUN_DIRECTORY_PREFIX}${process.pid}-`));
  let cgroup: SandboxCgroup | undefined;
  const cleanUps: (() => Promise<void> | void)[] = [() => rm(runDirectory, { recursive: true, force: true })];
  const cleanUp = async () => {
    for (const step of cleanUps.splice(0).reverse()) await step();
  };
  try {
    const emptyFile = join(runDirectory, 'empty');
    await writeFile(emptyFile, '', { mode: 0o000 });
    const capabilities = vmmCapabilities(options);
    const jailWarnings: string[] = [];
    try {
      cgroup = await createSandboxCgroup({
        sandboxId: `microvm-${options.id}`,
        limits: {
          memoryBytes: capabilities.resources.memoryBytes,
          maxProcesses: VMM_MAX_THREADS,
          ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
        },
      });
      jailWarnings.push(...cgroup.warnings);
      const created = cgroup;
      cleanUps.push(() => created.remove());
    } catch (error) {
      // Guest RAM still bounds the guest; only the VMM's own overhead goes uncapped.
      jailWarnings.push(`The VMM runs without a cgroup cap: ${(error as Error).message}`);
    }
    // A root caller's VMM runs as an unprivileged uid, never as host root (as the process tier's
    // payload does). /dev/kvm is not open to that uid, so under KVM the VMM stays root, without
    // capabilities, and says so.
    const identity = sandboxIdentity();
    const switchUser = identity.switchFromRoot && options.accelerator === 'tcg';
    if (identity.switchFromRoot && !switchUser) {
      jailWarnings.push(
        `The VMM runs as host uid 0 (without capabilities, behind seccomp and Landlock): uid ${identity.uid} cannot open /dev/kvm.`,
      );
    }
    const shim = await privateShimCopy(options.cacheDirectory ?? defaultCacheDirectory());
    let sources: Record<string, string> = {};
    if (switchUser) {
      const staged = await pathsToStage(options, [
        options.kernelPath,
        options.initramfsPath,
        shim,
        ...(options.egress ? [options.egress.relayHostPath] : []),
      ]);
      // The run directory may sit in a private TMPDIR: the VMM writes its console log through a copy.
      staged.push({ path: runDirectory, kind: 'directory' });
      const mounts = await stageIdMappedMounts({
        sandboxName: sandboxCgroupName(`microvm-${options.id}`),
        paths: staged,
        uid: identity.uid,
        gid: identity.gid,
      });
      cleanUps.push(mounts.release);
      sources = mounts.sources;
    }
    // What each grant and deny was when the jail was made: the jail mounts and masks from these, and
    // Landlock splits the write grants around what the jail could not mask.
    const { read, write, deny } = options.filesystem;
    const pathKinds = Object.fromEntries(
      [...new Set([...read, ...write, ...deny])].map((path) => [path, pathKind(path)]),
    );
    const ownPaths = vmmPaths(options);
    const plan = planShim({
      capabilities,
      workdir: '/',
      pathView: 'namespace',
      viewRoot: JAIL_PATHS.view,
      pathKinds,
      extraReadPaths: ownPaths.read,
      extraWritePaths: ownPaths.write,
      tier: 'microvm',
    });
    const vmmCommand = options.backend.start({
      kernelPath: JAIL_PATHS.kernel,
      initramfsPath: JAIL_PATHS.initramfs,
      kernelArguments: options.kernelArguments ?? [],
      memoryMebibytes: options.memoryMebibytes,
      vcpus: options.vcpus,
      accelerator: options.accelerator,
      sharedDirectory: JAIL_PATHS.view,
      consolePath: `${JAIL_PATHS.run}/console.log`,
      ...(options.egress
        ? {
            guestForward: {
              address: options.egress.address,
              port: options.egress.port,
              socketPath: options.egress.socketPath,
              relayPath: RELAY_JAIL_PATH,
            },
          }
        : {}),
    });
    const infoFd = plan.statusFd + 1;
    const blockFd = plan.statusFd + 2;
    const args = buildJailArguments({
      vmm: {
        ...vmmCommand,
        file: SHIM_SANDBOX_PATH,
        args: [...plan.args, '--', vmmCommand.file, ...vmmCommand.args],
      },
      kernelPath: options.kernelPath,
      initramfsPath: options.initramfsPath,
      runDirectory: sources[runDirectory] ?? runDirectory,
      emptyFile: sources[runDirectory] ? join(sources[runDirectory], 'empty') : emptyFile,
      filesystem: options.filesystem,
      kindOf: (path) => pathKinds[path] ?? pathKind(path),
      extraBinds: [
        { source: shim, target: SHIM_SANDBOX_PATH },
        ...(options.egress ? [{ source: options.egress.relayHostPath, target: RELAY_JAIL_PATH }] : []),
      ],
      ...(options.egress ? { sockets: [options.egress.socketPath] } : {}),
      infoFd,
      blockFd,
      sources,
    });
    const vmm = spawn(options.bubblewrap, args, {
      stdio: Array.from({ length: blockFd + 1 }, () => 'pipe' as const),
      env: {},
      ...(switchUser ? { uid: identity.uid, gid: identity.gid } : {}),
      // Its own process group: one signal reaches the jail and everything in it.
      detached: true,
    });
    vmm.once('error', () => {});
    const kill = () => {
      if (vmm.pid === undefined || vmm.exitCode !== null || vmm.signalCode !== null) return;
      try {
        process.kill(-vmm.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    cleanUps.push(kill);
    const guest = new GuestProcess(vmm, (report) => {
      // The payload is done: nothing in the guest is worth waiting for.
      kill();
      options.onReport?.(report);
    });
    const info = (await readToEnd(vmm.stdio[infoFd])).toString();
    const jailPid = Number(/"child-pid"\s*:\s*(\d+)/.exec(info)?.[1]);
    if (!Number.isInteger(jailPid) || jailPid <= 0 || vmm.pid === undefined) {
      kill();
      await guest.ready.catch(() => {});
      throw new BulkheadError(
        'LAUNCH_FAILED',
        `bubblewrap did not start the VMM's jail: ${guest.vmmOutput.trim() || 'no reason given'}.`,
        {
          tier: 'microvm',
          fix: 'run bulkhead doctor to see what this host lacks',
        },
      );
    }
    // Both wait (the jail on its block fd): the VMM is born inside its cgroup.
    if (cgroup) {
      try {
        await cgroup.addProcess(vmm.pid);
        await cgroup.addProcess(jailPid);
      } catch (error) {
        // Gone before it was placed: bubblewrap failed while setting up, and said why.
        kill();
        await guest.ready.catch(() => {});
        throw new BulkheadError(
          'LAUNCH_FAILED',
          `The VMM's jail stopped before the VMM ran: ${guest.vmmOutput.trim() || (error as Error).message}.`,
          { tier: 'microvm', fix: 'run bulkhead doctor to see what this host lacks', cause: error },
        );
      }
    }
    for (const [index, data] of plan.fds.entries()) endPipe(vmm.stdio[3 + index], data);
    const status = readToEnd(vmm.stdio[plan.statusFd]);
    endPipe(vmm.stdio[blockFd], Buffer.from([1]));
    void status.then((data) => {
      const error = readShimStatus(data, { tier: 'microvm' });
      if (error) guest.vmmOutput += `${error.message}\n`;
    });
    const mechanisms = [
      'mount-namespace',
      'user-namespace',
      'pid-namespace',
      'network-namespace',
      'landlock',
      'seccomp',
    ];
    if (cgroup?.enforcement.memory) mechanisms.push(cgroup.enforcement.memory);
    return {
      guest,
      vmm,
      identity: switchUser
        ? { uid: identity.uid, gid: identity.gid }
        : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      jail: {
        mechanisms: [...new Set(mechanisms)],
        warnings: [...jailWarnings, ...plan.warnings],
        ...(cgroup?.enforcement.cpus ? { cpuMechanism: cgroup.enforcement.cpus } : {}),
      },
      kill,
      async console() {
        try {
          return await readFile(join(runDirectory, 'console.log'), 'utf8');
        } catch {
          return '';
        }
      },
      async vmmPeakMemoryBytes() {
        if (!cgroup) return undefined;
        try {
          return (await cgroup.statistics()).peakMemoryBytes;
        } catch {
          return undefined;
        }
      },
      cleanUp,
      cleanUpSync() {
        rmSync(runDirectory, { recursive: true, force: true });
      },
      detach() {
        vmm.unref();
        for (const stream of [vmm.stdin, vmm.stdout, vmm.stderr]) (stream as Socket | null)?.unref?.();
      },
      attach() {
        vmm.ref();
        for (const stream of [vmm.stdin, vmm.stdout, vmm.stderr]) (stream as Socket | null)?.ref?.();
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
