import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  assertEnforceable,
  BulkheadError,
  type Capabilities,
  type CapabilityKey,
  createChildProcessSandbox,
  createWarmPool,
  type Enforcement,
  type EnforcementMechanism,
  type IsolationProvider,
  type LaunchSpec,
  type ProbeReport,
  type Sandbox,
  TIER_STRENGTH,
} from '@bulkhead/core';
import { type EgressChannel, getEgressProxy, withProxyEnvironment } from '@bulkhead/egress';
import { compileSeccompFilter } from '@bulkhead/linux';
import { ALLOW_SOFTWARE_EMULATION_FIX, type KvmVerdict, kvmModule, probeKvm } from './accelerator-probe.js';
import { defaultCacheDirectory } from './cache-directory.js';
import { encodeLaunch, FRAME, type GuestExitReport } from './control-channel.js';
import { ensureGuestInit, ensureInitramfs, GUEST_INIT_SOURCE } from './guest-image.js';
import { findGuestKernel } from './guest-kernel.js';
import { type RunningVirtualMachine, startVirtualMachine } from './virtual-machine.js';
import {
  type Accelerator,
  createCloudHypervisorBackend,
  createFirecrackerBackend,
  createQemuMicrovmBackend,
  findOnPath,
  type VmmBackend,
  type VmmProbe,
} from './vmm-backend.js';

export interface MicrovmProviderOptions {
  /**
   * `kvm` (default): hardware virtualisation only; the tier is unavailable where a guest cannot boot
   * under KVM. `any`: fall back to QEMU's TCG emulator, about 20x slower and a larger attack surface.
   */
  acceleration?: 'kvm' | 'any';
  /** A PVH-bootable, uncompressed kernel to use instead of the one `buildGuestKernel()` builds. */
  kernel?: { path: string };
  /** Default: QEMU microvm. Firecracker and Cloud Hypervisor are recognised but not driven yet. */
  backend?: VmmBackend;
  /** Default: `defaultCacheDirectory()` (`~/.cache/bulkhead`). */
  cacheDirectory?: string;
  /** How long the guest may take to reach its init (default 60 s: TCG on a busy host is slow). */
  bootTimeoutMs?: number;
  /**
   * Keep `size` booted, idle VMs per capability shape (the grants, memory, CPUs and network mode of a
   * launch seen before), handed out at launch and never reused after a payload ran. Allow-lists are
   * never pooled. Default: no pool.
   */
  pool?: { size: number };
}

/** A sandbox of this tier: it says whether its VM was booted for it or taken from the pool. */
export interface MicrovmSandbox extends Sandbox {
  readonly startup: 'cold' | 'warm';
}

export interface MicrovmProvider extends IsolationProvider {
  launch(spec: LaunchSpec): Promise<MicrovmSandbox>;
  /** Ends every idle VM of the pool. The pool refills on later launches. */
  drainPool(): Promise<void>;
}

/** Guest RAM beyond the payload's memory cap: the guest kernel, init and page tables. */
const GUEST_OVERHEAD_MEBIBYTES = 48;
const MINIMUM_GUEST_MEBIBYTES = 96;
/** Guest RAM when the capabilities set no memory cap. */
const DEFAULT_GUEST_MEBIBYTES = 1024;
const MEBIBYTE = 1024 * 1024;
const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The guest's view of restricted user networking: its address, and the one forward to the proxy. */
const GUEST_NETWORK = {
  kernelArgument: 'ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off',
  proxyAddress: '10.0.2.100',
  proxyPort: 3128,
} as const;

const NO_SUCH_DEVICE =
  'the guest has no such device: the VMM gives it only virtio-serial, virtio-9p and (for an allow-list) virtio-net';

function enforced(mechanisms: EnforcementMechanism[], note?: string): Enforcement {
  return note === undefined ? { enforced: true, mechanisms } : { enforced: true, mechanisms, note };
}

function refused(reason: string, fix?: string): Enforcement {
  return fix === undefined ? { enforced: false, reason } : { enforced: false, reason, fix };
}

function enforcementMap(): ProbeReport['enforcement'] {
  return {
    filesystem: enforced(
      ['hypervisor', 'mount-namespace'],
      "the jail's view of only the granted paths, shared into the guest over virtio-9p; read grants read-only in the jail and in the guest",
    ),
    'network.none': enforced(
      ['hypervisor', 'network-namespace'],
      'the guest has no network device and the VMM has no network',
    ),
    'network.allowlist': enforced(
      ['hypervisor', 'egress-proxy'],
      'one virtio NIC on restricted user networking whose only route is a forward to the egress proxy',
    ),
    'network.open': refused(
      "the micro-VM tier never gives the guest the host's network",
      'use the process tier with network open: --tier process',
    ),
    'process.spawn': enforced(['cgroup-v2', 'seccomp'], "pids.max of 1 in the guest's payload cgroup"),
    'process.maxProcesses': enforced(['cgroup-v2'], "pids.max of the guest's payload cgroup"),
    'resources.memory': enforced(
      ['hypervisor', 'cgroup-v2'],
      "guest RAM, and memory.max of the guest's payload cgroup",
    ),
    'resources.timeout': enforced(['hypervisor', 'supervisor'], 'the whole VM is killed'),
    'resources.cpus': enforced(
      ['hypervisor'],
      "vCPUs (a fraction rounded up), and CPU bandwidth of the VMM's cgroup where the host has a CPU controller",
    ),
    'resources.gpus': refused(
      'GPUs cannot be passed into the micro-VM guest (the microvm machine has no PCI passthrough)',
      'use the process tier with resources.gpus',
    ),
    'devices.deny': enforced(['hypervisor'], NO_SUCH_DEVICE),
    'devices.clipboard': refused(NO_SUCH_DEVICE),
    'devices.audio': refused(NO_SUCH_DEVICE),
    'devices.webcam': refused(NO_SUCH_DEVICE),
    'devices.display': refused(NO_SUCH_DEVICE),
    'devices.input': refused(NO_SUCH_DEVICE),
    env: enforced(['environment'], "the guest init passes exactly the capabilities' environment"),
    identity: refused(
      'the micro-VM tier does not bind sandboxes to accounts',
      'use the session tier for identity',
    ),
  };
}

function guestMemoryMebibytes(capabilities: Capabilities): number {
  const cap = capabilities.resources.memoryBytes;
  if (!Number.isFinite(cap)) return DEFAULT_GUEST_MEBIBYTES + GUEST_OVERHEAD_MEBIBYTES;
  return Math.max(MINIMUM_GUEST_MEBIBYTES, Math.ceil(cap / MEBIBYTE) + GUEST_OVERHEAD_MEBIBYTES);
}

interface ProbeState {
  report: ProbeReport;
  backend?: VmmBackend;
  accelerator?: Accelerator;
  kernelPath?: string;
  bubblewrap?: string;
}

/**
 * The micro-VM tier: each sandbox is a guest kernel of its own behind a VMM (QEMU `microvm`), and the
 * VMM itself runs in a bubblewrap jail holding only the granted paths and the VM's own files.
 */
export function createMicrovmProvider(options: MicrovmProviderOptions = {}): MicrovmProvider {
  const acceleration = options.acceleration ?? 'kvm';
  const cacheDirectory = options.cacheDirectory ?? defaultCacheDirectory();
  let probing: Promise<ProbeState> | undefined;

  const unavailable = (reason: string, fix: string, facts: ProbeReport['facts'] = {}): ProbeState => ({
    report: {
      tier: 'microvm',
      available: false,
      reason,
      fix,
      enforcement: enforcementMap(),
      facts,
      warnings: [],
    },
  });

  async function chooseBackend(): Promise<{ backend: VmmBackend; probe: VmmProbe } | { probes: VmmProbe[] }> {
    const candidates = options.backend
      ? [options.backend]
      : [createQemuMicrovmBackend(), createFirecrackerBackend(), createCloudHypervisorBackend()];
    const probes: VmmProbe[] = [];
    for (const backend of candidates) {
      const probe = await backend.probe();
      if (probe.installed && probe.accelerators.length > 0) return { backend, probe };
      probes.push(probe);
    }
    return { probes };
  }

  async function probeOnce(): Promise<ProbeState> {
    const facts: ProbeReport['facts'] = { acceleration };
    const chosen = await chooseBackend();
    if (!('backend' in chosen)) {
      const qemu = chosen.probes[0];
      return unavailable(
        chosen.probes.map((probe) => `${probe.backend}: ${probe.reason}`).join('; '),
        qemu?.fix ?? 'apt-get install qemu-system-x86',
        facts,
      );
    }
    const { backend, probe: vmm } = chosen;
    facts.vmm = backend.name;
    if (vmm.version) facts.vmmVersion = vmm.version;
    const bubblewrap = findOnPath('bwrap');
    if (!bubblewrap) {
      return unavailable(
        'bubblewrap (bwrap), which jails the VMM, is not installed',
        'apt-get install bubblewrap',
        facts,
      );
    }
    if (!findOnPath('gcc')) {
      return unavailable(
        `gcc, which compiles the guest init (${GUEST_INIT_SOURCE}), is not installed`,
        'apt-get install gcc libc6-dev',
        facts,
      );
    }
    const kernelPath = options.kernel?.path ?? findGuestKernel({ cacheDirectory })?.path;
    if (!kernelPath || !existsSync(kernelPath)) {
      return unavailable(
        options.kernel
          ? `the guest kernel ${options.kernel.path} does not exist`
          : 'the guest kernel has not been built yet',
        options.kernel
          ? 'pass kernel: { path } of an existing PVH-bootable vmlinux'
          : 'bulkhead vm kernel build (needs apt-get install linux-source-6.1 flex bison bc libelf-dev libssl-dev)',
        facts,
      );
    }
    facts.kernel = kernelPath;
    const module = kvmModule();
    if (module) facts.kvmModule = module;
    let kvm: KvmVerdict;
    try {
      kvm = await probeKvm({
        backend,
        vmm,
        kernelPath,
        initramfsPath: await ensureInitramfs({ cacheDirectory }),
        bubblewrap,
        cacheDirectory,
      });
    } catch (error) {
      kvm = { usable: false, reason: `the KVM boot probe failed: ${(error as Error).message}` };
    }
    facts.kvmBootProbe = kvm.usable ? 'boots' : (kvm.reason ?? 'fails');
    let accelerator: Accelerator;
    const warnings: string[] = [];
    if (kvm.usable) accelerator = 'kvm';
    else if (acceleration === 'any') {
      accelerator = 'tcg';
      warnings.push(`KVM unusable (${kvm.reason}): guests run under QEMU's TCG emulator, much slower.`);
    } else {
      return unavailable(
        kvm.reason ?? 'KVM cannot boot the guest here',
        kvm.fix ?? ALLOW_SOFTWARE_EMULATION_FIX,
        facts,
      );
    }
    facts.accelerator = accelerator;
    return {
      report: { tier: 'microvm', available: true, enforcement: enforcementMap(), facts, warnings },
      backend,
      accelerator,
      kernelPath,
      bubblewrap,
    };
  }

  function probeState(): Promise<ProbeState> {
    if (!probing) {
      probing = probeOnce();
      probing.catch(() => {
        probing = undefined;
      });
    }
    return probing;
  }

  interface BootedGuest {
    vm: RunningVirtualMachine;
    /** Filled in when the guest reports the payload's exit. */
    report: { value?: GuestExitReport };
    channel?: EgressChannel;
  }

  /** Boots a VM for these capabilities, up to the guest init waiting for its launch. */
  async function bootGuest(
    state: ProbeState,
    id: string,
    capabilities: Capabilities,
    onViolation?: LaunchSpec['onViolation'],
  ): Promise<BootedGuest> {
    const { backend, accelerator, kernelPath, bubblewrap } = state;
    if (!backend || !accelerator || !kernelPath || !bubblewrap)
      throw new Error('unreachable: an available probe has a VMM');
    const cpus = capabilities.resources.cpus;
    const initramfsPath = await ensureInitramfs({ cacheDirectory });
    const report: BootedGuest['report'] = {};
    let channel: EgressChannel | undefined;
    if (capabilities.network.mode === 'allowlist') {
      channel = await getEgressProxy().openChannel({
        sandboxId: id,
        allow: capabilities.network.allow,
        ...(onViolation ? { onViolation } : {}),
      });
    }
    let vm: RunningVirtualMachine;
    try {
      vm = await startVirtualMachine({
        id,
        backend,
        accelerator,
        kernelPath,
        initramfsPath,
        memoryMebibytes: guestMemoryMebibytes(capabilities),
        vcpus: vcpusOf(capabilities),
        ...(cpus === undefined ? {} : { cpus }),
        filesystem: capabilities.filesystem,
        bubblewrap,
        cacheDirectory,
        onReport: (received) => {
          report.value = received;
        },
        ...(channel
          ? {
              egress: {
                socketPath: channel.socketPath,
                address: GUEST_NETWORK.proxyAddress,
                port: GUEST_NETWORK.proxyPort,
                relayHostPath: await ensureGuestInit(cacheDirectory),
              },
              kernelArguments: [GUEST_NETWORK.kernelArgument],
            }
          : {}),
      });
    } catch (error) {
      await channel?.close();
      throw error;
    }
    const bootTimer = setTimeout(vm.kill, options.bootTimeoutMs ?? 60_000);
    try {
      await vm.guest.ready;
    } catch (error) {
      vm.kill();
      const console = (await vm.console()).trim().split('\n').slice(-15).join('\n');
      await vm.cleanUp();
      await channel?.close();
      throw new BulkheadError(
        'LAUNCH_FAILED',
        `The micro-VM guest did not start: ${(error as Error).message}${console ? `\nGuest console:\n${console}` : ''}`,
        {
          tier: 'microvm',
          fix: 'run bulkhead doctor; rebuild the guest kernel with bulkhead vm kernel build',
          cause: error,
        },
      );
    } finally {
      clearTimeout(bootTimer);
    }
    return { vm, report, ...(channel ? { channel } : {}) };
  }

  const pool = createWarmPool<BootedGuest>({
    size: options.pool?.size ?? 0,
    idle: ({ vm }) => vm.detach(),
    usable: ({ vm }) => vm.vmm.exitCode === null && vm.vmm.signalCode === null,
    discard: async ({ vm }) => {
      // Waiting for its end must keep the process alive.
      vm.attach();
      vm.kill();
      await vm.guest.ready.catch(() => {});
      await new Promise<void>((resolve) => {
        if (vm.vmm.exitCode !== null || vm.vmm.signalCode !== null) resolve();
        else vm.vmm.once('close', () => resolve());
      });
      await vm.cleanUp();
    },
    discardSync: ({ vm }) => {
      vm.kill();
      vm.cleanUpSync();
    },
  });

  const provider: MicrovmProvider = {
    specificationVersion: 'bulkhead-isolation-v1',
    tier: 'microvm',
    strength: TIER_STRENGTH.microvm,
    async probe() {
      return (await probeState()).report;
    },
    async launch(spec: LaunchSpec): Promise<MicrovmSandbox> {
      const state = await probeState();
      const { capabilities } = spec;
      assertEnforceable(capabilities, state.report);
      if (spec.command.length === 0 || !spec.command[0]) {
        throw new BulkheadError('INVALID_LAUNCH_SPEC', 'Nothing to run: the command is empty.', {
          tier: 'microvm',
        });
      }
      const id = spec.id ?? randomUUID();
      // An allow-list's egress channel belongs to one sandbox id from the start: never pooled.
      const shape = capabilities.network.mode === 'allowlist' ? undefined : shapeKey(capabilities);
      const boot = () => bootGuest(state, `pool-${randomUUID()}`, capabilities);
      const warm = shape === undefined ? undefined : await pool.take(shape, boot);
      const booted = warm ?? (await bootGuest(state, id, capabilities, spec.onViolation));
      const { vm, report, channel } = booted;
      vm.attach();
      const warnings = [...state.report.warnings];
      const cpus = capabilities.resources.cpus;
      const vcpus = vcpusOf(capabilities);
      const baseEnvironment: Record<string, string> = {
        PATH: SANDBOX_PATH,
        HOME: '/tmp',
        TMPDIR: '/tmp',
        LANG: 'C.UTF-8',
        ...capabilities.env,
      };
      const env = channel
        ? withProxyEnvironment(
            baseEnvironment,
            `http://${GUEST_NETWORK.proxyAddress}:${GUEST_NETWORK.proxyPort}`,
          )
        : baseEnvironment;
      // Defence in depth: the process tier's own seccomp policy, compiled here and installed by the
      // guest init on top of its built-in filter.
      try {
        vm.guest.send(
          FRAME.program,
          compileSeccompFilter({
            spawn: capabilities.process.spawn,
            network: capabilities.network.mode,
            architecture: 'x86_64',
          }),
        );
      } catch (error) {
        warnings.push(
          `The process tier's seccomp policy could not be compiled (${(error as Error).message}); the guest applies only its built-in filter.`,
        );
      }
      vm.guest.send(
        FRAME.launch,
        encodeLaunch({
          argv: spec.command,
          env,
          cwd: capabilities.workdir,
          // The guest sees its writable files owned by the VMM's uid: the payload runs as that uid.
          uid: vm.identity.uid,
          gid: vm.identity.gid,
          memoryBytes: capabilities.resources.memoryBytes,
          maxProcesses: capabilities.process.maxProcesses,
          spawn: capabilities.process.spawn,
          read: capabilities.filesystem.read,
          write: capabilities.filesystem.write,
          deny: capabilities.filesystem.deny,
        }),
      );
      warnings.push(...vm.jail.warnings);
      const enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>> = {};
      for (const [key, value] of Object.entries(state.report.enforcement)) {
        if (value?.enforced) enforcement[key as CapabilityKey] = value.mechanisms;
      }
      if (cpus !== undefined) {
        if (vm.jail.cpuMechanism) enforcement['resources.cpus'] = ['hypervisor', vm.jail.cpuMechanism];
        else if (cpus !== vcpus) {
          warnings.push(
            `resources.cpus ${cpus} is enforced as ${vcpus} whole vCPU(s): the host gives no CPU controller for the VMM's cgroup.`,
          );
        }
      }
      // The hypervisor boundary, and behind it the VMM's own jail.
      enforcement.filesystem = [...new Set([...(enforcement.filesystem ?? []), ...vm.jail.mechanisms])];
      const sandbox = createChildProcessSandbox({
        id,
        tier: 'microvm',
        child: vm.guest.asChildProcess(),
        timeoutMs: capabilities.resources.timeoutMs,
        killTree: (signal) => {
          if (signal === 'SIGKILL') vm.kill();
          else vm.guest.signalPayload(signal);
        },
        warnings,
        enforcement,
        ...(channel ? { violations: channel.violations } : {}),
        finish: async () => {
          vm.kill();
          await vm.cleanUp();
          await channel?.close();
          if (vm.guest.failure) warnings.push(`The guest init failed: ${vm.guest.failure}`);
          const result = report.value;
          return {
            oomKilled: result?.oomKilled ?? false,
            ...(result?.peakMemoryBytes === undefined ? {} : { peakMemoryBytes: result.peakMemoryBytes }),
            ...(result?.cpuMs === undefined ? {} : { cpuMs: result.cpuMs }),
          };
        },
      });
      return Object.assign(sandbox, { startup: warm ? ('warm' as const) : ('cold' as const) });
    },
    drainPool: () => pool.drain(),
  };
  return provider;
}

function vcpusOf(capabilities: Capabilities): number {
  const cpus = capabilities.resources.cpus;
  return cpus === undefined ? 1 : Math.max(1, Math.ceil(cpus));
}

/** What a booted, idle VM is fixed to: its jail's view, guest RAM, vCPUs and network. */
function shapeKey(capabilities: Capabilities): string {
  const sorted = (paths: string[]) => [...paths].sort();
  return JSON.stringify([
    sorted(capabilities.filesystem.read),
    sorted(capabilities.filesystem.write),
    sorted(capabilities.filesystem.deny),
    capabilities.resources.memoryBytes,
    capabilities.resources.cpus ?? null,
    capabilities.network.mode,
  ]);
}
