import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BulkheadError, type ProbeReport } from '@bulkhead/core';
import {
  benchmarkCapabilities,
  bulkheadCliSubject,
  bulkheadProviders,
  bulkheadSubject,
} from './bulkhead-subjects.js';
import { workloadAnswer } from './machine.js';
import {
  describeError,
  type Subject,
  type SubjectContext,
  type SubjectSession,
  spawnHandle,
} from './subject.js';
import { commandVersion, packageManifestPath, packageVersion } from './versions.js';
import { packageDirectory } from './workload.js';

/** A package's bin script, resolved through its package.json so no `npx` start-up is measured. */
async function packageBin(name: string, bin: string): Promise<string> {
  const manifestPath = packageManifestPath(name);
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
    bin?: string | Record<string, string>;
  };
  const relative = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[bin];
  if (!relative)
    throw new BulkheadError('BENCHMARK_SUBJECT_UNAVAILABLE', `${name} declares no '${bin}' command.`);
  return path.join(path.dirname(manifestPath), relative);
}

/** Quotes argv for the peers whose API takes one command line. */
export function commandLine(command: string[]): string {
  return command
    .map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

/** A plain child process of Node: the baseline every figure is divided by. */
export const bareSubject: Subject = {
  id: 'bare',
  label: 'bare spawn',
  family: 'baseline',
  group: 'bare',
  scope: 'in-process',
  description: 'node:child_process spawn of the payload, no isolation (the baseline every ratio divides by)',
  version: async () => `node ${process.versions.node}`,
  async prepare(): Promise<SubjectSession> {
    return {
      start: ([file, ...args]) => spawnHandle(file!, args),
      close: async () => {},
    };
  },
};

/**
 * The namespaces and mounts tier-process asks bubblewrap for, without Bulkhead: what the kernel
 * work costs on its own. Everything Bulkhead adds on top shows as the difference to this row.
 */
export function bubblewrapArguments(context: SubjectContext, command: string[]): string[] {
  return [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-net',
    '--unshare-cgroup-try',
    '--uid',
    '65534',
    '--gid',
    '65534',
    '--hostname',
    'bulkhead',
    '--new-session',
    '--die-with-parent',
    '--cap-drop',
    'ALL',
    '--ro-bind',
    '/usr',
    '/usr',
    '--symlink',
    'usr/bin',
    '/bin',
    '--symlink',
    'usr/sbin',
    '/sbin',
    '--symlink',
    'usr/lib',
    '/lib',
    '--symlink',
    'usr/lib64',
    '/lib64',
    '--ro-bind',
    '/etc',
    '/etc',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--tmpfs',
    '/tmp',
    '--ro-bind',
    context.workloadDirectory,
    context.workloadDirectory,
    '--remount-ro',
    '/',
    '--chdir',
    '/',
    '--clearenv',
    '--setenv',
    'PATH',
    '/usr/bin:/bin',
    '--',
    ...command,
  ];
}

export const bubblewrapSubject: Subject = {
  id: 'bwrap',
  label: 'bwrap alone',
  family: 'peer',
  group: 'bwrap',
  scope: 'in-process',
  description: 'bubblewrap with the namespaces and mounts of tier-process, spawned from Node, no Bulkhead',
  version: () => commandVersion('bwrap'),
  async prepare(context): Promise<SubjectSession> {
    const version = await commandVersion('bwrap');
    if (!version) {
      throw new BulkheadError('HOST_REQUIREMENT_MISSING', 'bwrap is not installed.', {
        fix: 'apt-get install bubblewrap',
      });
    }
    return {
      start: (command) => spawnHandle('bwrap', bubblewrapArguments(context, command)),
      close: async () => {},
    };
  },
};

/**
 * Not a product: Landlock alone, as the workload itself applies it (reading, executing and listing
 * only under the read and write grants every Bulkhead row has), with no namespaces, seccomp or
 * cgroups. Its syscall-heavy figure is the least a Landlock file boundary costs on this kernel: the
 * floor under tier-process's shim-only mode, where Landlock is the only file boundary.
 */
export const landlockSubject: Subject = {
  id: 'landlock',
  label: 'Landlock alone (read rules)',
  family: 'peer',
  group: 'landlock',
  scope: 'in-process',
  description:
    "the workload's own Landlock ruleset (read, execute and list rights under Bulkhead's default grants), no namespaces, seccomp or cgroups: the floor of any Landlock file boundary",
  version: async (context) => {
    const abi = await landlockAbi(context.workloadPath);
    return abi === undefined ? undefined : `ABI ${abi}`;
  },
  prepare: (context) =>
    selfRestrictingWorkload(context, ({ read, write }) => ['landlock-exec', ...read, ...write]),
};

/**
 * Not a product: the two mechanisms tier-process's shim-only mode is built from, as the workload
 * itself applies them: a Landlock ruleset handling every file right of the kernel (read rights under
 * the read grants, all of them under the write grants) and a seccomp filter that allows everything
 * (any filter puts each syscall on the kernel's slow entry path). No splits around denies, no tier
 * paths, no cgroups. Shim-only mode's syscall-heavy figure against this row is what Bulkhead adds to
 * them.
 */
export const mechanismsSubject: Subject = {
  id: 'landlock-seccomp',
  label: 'Landlock + seccomp alone (every right)',
  family: 'peer',
  group: 'landlock',
  scope: 'in-process',
  description:
    "the workload's own Landlock ruleset handling every file right (read rights under Bulkhead's default read grants, all under its write grants) and an allow-everything seccomp filter: shim-only mode's mechanisms with nothing of Bulkhead",
  version: landlockSubject.version,
  prepare: (context) =>
    selfRestrictingWorkload(context, ({ read, write }) => ['mechanisms-exec', ...read, '--write', ...write]),
};

/**
 * A session whose launches start the workload in `mode` (see native/workload.c), restricting itself
 * under the default grants every Bulkhead row has before it execs the command.
 */
async function selfRestrictingWorkload(
  context: SubjectContext,
  mode: (grants: { read: string[]; write: string[] }) => string[],
): Promise<SubjectSession> {
  if ((await landlockAbi(context.workloadPath)) === undefined) {
    throw new BulkheadError('HOST_REQUIREMENT_MISSING', 'This kernel has no Landlock.', {
      fix: 'boot a kernel with CONFIG_SECURITY_LANDLOCK and landlock in lsm=',
    });
  }
  const { filesystem } = await benchmarkCapabilities(context);
  const prefix = mode(filesystem);
  return {
    start: (command) => spawnHandle(context.workloadPath, [...prefix, '--', ...command]),
    close: async () => {},
  };
}

async function landlockAbi(workloadPath: string): Promise<number | undefined> {
  const abi = await workloadAnswer(workloadPath, 'landlock-abi');
  return abi !== undefined && abi > 0 ? abi : undefined;
}

interface MxcProcess {
  readonly standardInput: Writable | null;
  readonly standardOutput: Readable | null;
  readonly standardError: Readable | null;
  wait(): Promise<{ exitCode: number | null }>;
  kill(): void;
  dispose(): void;
}

interface MxcModule {
  run(request: Record<string, unknown>): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  spawn(request: Record<string, unknown>): Promise<MxcProcess>;
  getPlatformSupport(): { isSupported: boolean; reason?: string; availableMethods?: string[] };
}

function mxcRequest(context: SubjectContext, command: string[]): Record<string, unknown> {
  return {
    command: commandLine(command),
    filesystem: { readonlyPaths: ['/usr', '/etc', context.workloadDirectory] },
    network: { egress: { default: 'deny' } },
    timeoutMs: 120_000,
    containment: { type: 'bubblewrap' },
  };
}

/** Microsoft's MXC SDK, bubblewrap backend, through its `run()`. */
export const mxcSubject: Subject = {
  id: 'mxc',
  label: 'MXC run()',
  family: 'peer',
  group: 'mxc',
  scope: 'in-process',
  description:
    '@microsoft/mxc-sdk v1 run() with its bubblewrap backend, read-only /usr, /etc and the workload, egress denied',
  version: async () =>
    packageVersion('@microsoft/mxc-sdk').then((version) => version && `@microsoft/mxc-sdk ${version}`),
  async prepare(context): Promise<SubjectSession> {
    const mxc = (await import('@microsoft/mxc-sdk/v1')) as unknown as MxcModule;
    const support = mxc.getPlatformSupport();
    if (!support.isSupported || !support.availableMethods?.includes('bubblewrap')) {
      throw new BulkheadError(
        'BENCHMARK_SUBJECT_UNAVAILABLE',
        `MXC's bubblewrap backend is not available: ${support.reason || JSON.stringify(support)}`,
      );
    }
    // spawn() is MXC's streaming API; on Linux it refuses Node before 24, so it is tried once and,
    // when refused, the figures that need a live stream say so in MXC's own words.
    let streamingRefusal: string | undefined;
    try {
      const probe = await mxc.spawn(mxcRequest(context, ['/bin/true']));
      await probe.wait();
      probe.dispose();
    } catch (error) {
      streamingRefusal = `MXC spawn() refused: ${describeError(error)}`;
    }
    const session: SubjectSession = {
      async run(command, options) {
        const request = mxcRequest(context, command);
        if (options?.timeoutMs !== undefined) request.timeoutMs = options.timeoutMs;
        const result = await mxc.run(request);
        return { exitCode: result.exitCode, stdout: result.stdout };
      },
      close: async () => {},
    };
    if (streamingRefusal !== undefined) return { ...session, streamingUnavailable: streamingRefusal };
    return {
      ...session,
      async start(command) {
        const child = await mxc.spawn(mxcRequest(context, command));
        const stdout = child.standardOutput;
        if (!stdout)
          throw new BulkheadError('BENCHMARK_SUBJECT_UNAVAILABLE', 'MXC spawn() gave no stdout stream.');
        child.standardError?.resume();
        const exited = child.wait().then((result) => {
          child.dispose();
          return result.exitCode;
        });
        exited.catch(() => {});
        return {
          stdin: child.standardInput,
          stdout,
          exited,
          async kill() {
            child.kill();
            await exited.catch(() => {});
          },
        };
      },
    };
  },
};

interface SandboxRuntimeModule {
  SandboxManager: {
    initialize(config: Record<string, unknown>): Promise<void>;
    wrapWithSandboxArgv(command: string): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }>;
    reset(): Promise<void>;
  };
}

/** Deny everything network-wise and write nowhere: the closest srt gets to Bulkhead's default. */
const SANDBOX_RUNTIME_CONFIG = {
  network: { allowedDomains: [], deniedDomains: [] },
  filesystem: { denyRead: [], allowWrite: [], denyWrite: [] },
};

/** Anthropic's sandbox-runtime as a library: `SandboxManager.wrapWithSandboxArgv()` then spawn. */
export const sandboxRuntimeSubject: Subject = {
  id: 'srt',
  label: 'sandbox-runtime library',
  family: 'peer',
  group: 'srt',
  scope: 'in-process',
  description:
    '@anthropic-ai/sandbox-runtime SandboxManager (bubblewrap + seccomp + host proxies), no domains allowed',
  version: async () =>
    packageVersion('@anthropic-ai/sandbox-runtime').then(
      (version) => version && `@anthropic-ai/sandbox-runtime ${version}`,
    ),
  async prepare(): Promise<SubjectSession> {
    const { SandboxManager } = (await import(
      '@anthropic-ai/sandbox-runtime'
    )) as unknown as SandboxRuntimeModule;
    await SandboxManager.initialize(SANDBOX_RUNTIME_CONFIG);
    return {
      async start(command) {
        const wrapped = await SandboxManager.wrapWithSandboxArgv(commandLine(command));
        const [file, ...args] = wrapped.argv;
        // Its own process group: srt's wrapper leaves socat relays in the background.
        return spawnHandle(file!, args, { processGroup: true, env: wrapped.env });
      },
      close: () => SandboxManager.reset(),
    };
  },
};

/** Anthropic's `srt` command, started from outside for every launch. */
export const sandboxRuntimeCliSubject: Subject = {
  id: 'srt-cli',
  label: 'srt CLI',
  family: 'peer',
  group: 'srt',
  scope: 'whole-process',
  description: '`srt CMD` (a fresh Node process per launch, defaults: no network)',
  version: sandboxRuntimeSubject.version,
  async prepare(): Promise<SubjectSession> {
    const bin = await packageBin('@anthropic-ai/sandbox-runtime', 'srt');
    return {
      start: (command) => spawnHandle(process.execPath, [bin, '--', ...command], { processGroup: true }),
      close: async () => {},
    };
  },
};

/** What starting any Node program costs here: the floor under every whole-process row written in Node. */
export const nodeStartSubject: Subject = {
  id: 'node-start',
  label: 'node start (reference)',
  family: 'baseline',
  group: 'bare',
  scope: 'whole-process',
  description:
    'a fresh `node` that spawns the payload and waits for it: the floor of any CLI written in Node',
  version: async () => `node ${process.versions.node}`,
  async prepare(): Promise<SubjectSession> {
    const script =
      "const [f,...a]=process.argv.slice(1);require('child_process').spawn(f,a,{stdio:'inherit'}).on('exit',(c)=>process.exit(c??1))";
    return {
      start: (command) => spawnHandle(process.execPath, ['-e', script, ...command], { processGroup: true }),
      close: async () => {},
    };
  },
};

/** What the QEMU-alone guest runs for a benchmark command: its init script knows three payloads. */
export function qemuAlonePayload(command: string[]): 'true' | 'echo' | 'hold' {
  const [program, ...args] = command;
  if (program === '/bin/true' && args.length === 0) return 'true';
  if (program === '/bin/echo' && args.join(' ') === 'bulkhead') return 'echo';
  if (args.length === 1 && args[0] === 'hold') return 'hold';
  throw new BulkheadError(
    'BENCHMARK_NOT_MEASURABLE',
    `QEMU alone runs busybox in the guest's initramfs, not ${command.join(' ')}: only /bin/true, /bin/echo bulkhead and the idle hold have a stand-in there.`,
  );
}

/** The tier's probe, once per process: QEMU alone boots what tier-microvm would, with its accelerator. */
let microvmProbe: Promise<ProbeReport> | undefined;
function probeMicrovm(): Promise<ProbeReport> {
  microvmProbe ??= bulkheadProviders.microvm().then((provider) => provider.probe());
  return microvmProbe;
}

/**
 * QEMU alone, the VMM's floor under the micro-VM tier: the tier's own QEMU command line (its
 * backend's argv: microvm machine, accelerator, guest RAM, the virtio-serial port and a 9p share of an
 * empty folder) with its guest kernel and initramfs, started directly: no jail, no guest init, no
 * control protocol, no Bulkhead. The initramfs gains one script run as rdinit instead of the tier's
 * init (`native/qemu-alone-init.sh`): it runs busybox's `true` (or writes to the control port) and
 * reboots, which ends QEMU. Launch is QEMU's start to its exit (or to the first byte on its stdout).
 */
export const qemuSubject: Subject = {
  id: 'qemu',
  label: 'QEMU microvm alone',
  family: 'peer',
  group: 'qemu',
  scope: 'whole-process',
  // Seconds per boot under TCG, like the micro-VM row: a few samples say enough.
  limits: { runs: 5, warmup: 1 },
  description:
    "qemu-system-x86_64 -M microvm with tier-microvm's argv, guest kernel and initramfs, a busybox script as init that runs the payload and reboots: boot to poweroff, no jail, no guest init, no Bulkhead",
  version: async () => {
    const version = await commandVersion('qemu-system-x86_64');
    if (!version) return undefined;
    const accelerator = await probeMicrovm()
      .then((probe) => probe.facts.accelerator)
      .catch(() => undefined);
    return accelerator === undefined ? version : `${version}, accelerator ${String(accelerator)}`;
  },
  async prepare(context): Promise<SubjectSession> {
    const version = await commandVersion('qemu-system-x86_64');
    if (!version) {
      throw new BulkheadError('HOST_REQUIREMENT_MISSING', 'qemu-system-x86_64 is not installed.', {
        fix: 'apt-get install qemu-system-x86',
      });
    }
    const probe = await probeMicrovm();
    const kernelPath = probe.facts.kernel;
    const accelerator = probe.facts.accelerator;
    if (
      !probe.available ||
      typeof kernelPath !== 'string' ||
      (accelerator !== 'kvm' && accelerator !== 'tcg')
    ) {
      throw new BulkheadError(
        'BENCHMARK_SUBJECT_UNAVAILABLE',
        `QEMU alone boots tier-microvm's guest, and tier-microvm cannot boot one here: ${probe.reason ?? 'its probe named no kernel or accelerator'}`,
        { ...(probe.fix === undefined ? {} : { fix: probe.fix }) },
      );
    }
    const microvm = await import('@bulkhead/tier-microvm');
    const script = path.join(packageDirectory, 'native/qemu-alone-init.sh');
    const initramfsPath = await microvm.ensureInitramfs({ programs: { 'qemu-alone-init': script } });
    const capabilities = await benchmarkCapabilities(context);
    const sharedDirectory = await mkdtemp(path.join(os.tmpdir(), 'bulkhead-bench-qemu-'));
    const backend = microvm.createQemuMicrovmBackend();
    return {
      async start(command) {
        const vmm = backend.start({
          kernelPath,
          initramfsPath,
          // A later rdinit= overrides the tier's; unknown name=value words become init's environment.
          kernelArguments: [
            'rdinit=/.bulkhead/bin/qemu-alone-init',
            `bench_payload=${qemuAlonePayload(command)}`,
          ],
          // The guest RAM tier-microvm gives the same capabilities (the cap plus its 48 MiB of guest overhead).
          memoryMebibytes: Math.ceil(capabilities.resources.memoryBytes / (1024 * 1024)) + 48,
          vcpus: 1,
          accelerator,
          sharedDirectory,
        });
        return spawnHandle(vmm.file, vmm.args, { processGroup: true });
      },
      close: () => rm(sharedDirectory, { recursive: true, force: true }),
    };
  },
};

/**
 * Every subject, in table order. The baseline comes first; a new tier or peer is one more entry.
 */
export function allSubjects(): Subject[] {
  return [
    bareSubject,
    bulkheadSubject({
      id: 'process-namespace',
      label: 'Bulkhead process (namespace)',
      tier: 'process',
      packageName: '@bulkhead/tier-process',
      description:
        'launch() with tier-process in namespace mode (bubblewrap + exec shim), default capabilities',
      provider: bulkheadProviders.processNamespace,
    }),
    bulkheadSubject({
      id: 'process-namespace-allowlist',
      label: 'Bulkhead process (namespace, allow-list)',
      tier: 'process',
      packageName: '@bulkhead/tier-process',
      description:
        'launch() with tier-process in namespace mode and a network allow-list: an egress channel per sandbox and the relay in its network namespace',
      provider: bulkheadProviders.processNamespace,
      // A documentation address (TEST-NET-1): the row measures the launch, not a connection.
      capabilities: (capabilities) => ({
        ...capabilities,
        network: { mode: 'allowlist', allow: [{ host: '192.0.2.1', port: 443 }] },
      }),
    }),
    bulkheadSubject({
      id: 'process-shim-only',
      label: 'Bulkhead process (shim-only)',
      tier: 'process',
      packageName: '@bulkhead/tier-process',
      description:
        'launch() with tier-process in shim-only mode (exec shim: Landlock, seccomp), default capabilities',
      provider: bulkheadProviders.processShimOnly,
    }),
    bulkheadSubject({
      id: 'session',
      label: 'Bulkhead session',
      tier: 'session',
      packageName: '@bulkhead/tier-session',
      description:
        'launch() with tier-session (tier-process plus a transient uid per sandbox, audit log), default capabilities',
      provider: bulkheadProviders.session,
    }),
    bulkheadSubject({
      id: 'session-display',
      label: 'Bulkhead session (private display)',
      tier: 'session',
      packageName: '@bulkhead/tier-session',
      description:
        "launch() with tier-session and devices.display (display: 'private'): the session row plus its own Xvfb, started and reaped with each sandbox",
      provider: bulkheadProviders.sessionPrivateDisplay,
      capabilities: (capabilities) => ({
        ...capabilities,
        devices: { ...capabilities.devices, display: true },
      }),
      // Each launch starts an X server: fewer samples, and concurrency up to 10.
      limits: { runs: 15, warmup: 2, maxConcurrency: 10 },
    }),
    bulkheadSubject({
      id: 'microvm',
      label: 'Bulkhead microvm',
      tier: 'microvm',
      packageName: '@bulkhead/tier-microvm',
      description:
        'launch() with tier-microvm (QEMU microvm, jailed VMM, guest init), KVM or else TCG emulation; the accelerator is in its version line',
      provider: bulkheadProviders.microvm,
      reportFacts: ['accelerator', 'vmm'],
      exemptFromTargets: (facts) =>
        facts.accelerator === 'kvm'
          ? undefined
          : `its guest runs under ${String(facts.accelerator ?? 'no hardware')} emulation, not KVM: issue 6 publishes these figures as they are`,
      // Under TCG a launch takes seconds and a CPU job runs ~20x slower: a few samples say enough.
      limits: { runs: 5, warmup: 1, maxConcurrency: 10, cpuWorkDivisor: 20 },
    }),
    // The VMM's floor, beside the tier it is the floor of.
    qemuSubject,
    bulkheadSubject({
      id: 'none',
      label: 'Bulkhead none tier (no isolation)',
      tier: 'none',
      packageName: '@bulkhead/core',
      description:
        "core's launch() with the none provider: the SDK's own cost, no isolation (proves the plumbing)",
      provider: bulkheadProviders.none,
    }),
    bulkheadCliSubject({ id: 'cli-process', label: 'bulkhead run (CLI)' }),
    bubblewrapSubject,
    landlockSubject,
    mechanismsSubject,
    mxcSubject,
    sandboxRuntimeSubject,
    sandboxRuntimeCliSubject,
    nodeStartSubject,
  ];
}

export interface SubjectSelection {
  /** Bulkhead tiers to include (`process`, `none`, ...); undefined: all. */
  tiers?: string[];
  /** Peers to include (`bwrap`, `landlock`, `mxc`, `srt`, `qemu`); undefined: all. */
  peers?: string[];
}

/** The subjects a selection names; baselines are always kept, since every ratio needs them. */
export function selectSubjects(subjects: Subject[], selection: SubjectSelection): Subject[] {
  return subjects.filter((subject) => {
    if (subject.family === 'baseline') return true;
    const wanted = subject.family === 'bulkhead' ? selection.tiers : selection.peers;
    return wanted === undefined || wanted.includes(subject.group);
  });
}
