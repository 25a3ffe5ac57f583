import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export type Accelerator = 'kvm' | 'tcg';

/** What a backend found on this host. */
export interface VmmProbe {
  backend: string;
  installed: boolean;
  /** Absolute path of the VMM binary, when installed. */
  binary?: string;
  version?: string;
  /** Why the backend cannot be used, when it cannot. */
  reason?: string;
  fix?: string;
  /** Accelerators the backend can drive at all (a boot probe still decides whether KVM works). */
  accelerators: Accelerator[];
}

/** One VM, described independently of the VMM. Paths are as the VMM sees them (inside its jail). */
export interface VirtualMachineSpec {
  kernelPath: string;
  initramfsPath: string;
  /** Appended to the backend's own kernel command line. */
  kernelArguments: string[];
  memoryMebibytes: number;
  vcpus: number;
  accelerator: Accelerator;
  /** The directory shared into the guest as its payload's root (virtio-9p, tag `view`). */
  sharedDirectory: string;
  /** Where the guest's serial console is written (diagnostics when a boot fails). */
  consolePath?: string;
  /**
   * Restricted user networking with a single forward: each guest TCP connection to `address:port` is
   * handed to `relayPath --relay socketPath` (the guest init binary in relay mode), which splices it
   * to the egress proxy's unix socket. Nothing else leaves the guest.
   */
  guestForward?: { address: string; port: number; socketPath: string; relayPath: string };
}

/** argv of the VMM for a spec; its stdin/stdout carry the control port. */
export interface VmmCommand {
  file: string;
  args: string[];
  /** Host files and directories the VMM itself must be able to read (for its jail). */
  readPaths: string[];
  /** Device nodes the VMM needs (`/dev/kvm`). */
  devices: string[];
}

/**
 * A virtual machine monitor. Backends share the guest kernel, the initramfs and the control protocol;
 * they differ in how a VM is described and started.
 */
export interface VmmBackend {
  readonly name: string;
  probe(): Promise<VmmProbe>;
  /** The command that starts `spec`; the caller runs it inside the jail. */
  start(spec: VirtualMachineSpec): VmmCommand;
}

export function findOnPath(name: string): string | undefined {
  for (const directory of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (!directory) continue;
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The kernel command line every backend uses: quiet, no ACPI, a restart ends the VMM. */
export const BASE_KERNEL_ARGUMENTS = [
  'console=ttyS0',
  'quiet',
  'loglevel=1',
  'reboot=t',
  'panic=-1',
  'acpi=off',
  'rdinit=/init',
];

/** QEMU's `microvm` machine: virtio-mmio only, no PCI, no firmware tables. */
export function createQemuMicrovmBackend(options: { binary?: string } = {}): VmmBackend {
  const binary = options.binary ?? findOnPath('qemu-system-x86_64');
  return {
    name: 'qemu-microvm',
    async probe(): Promise<VmmProbe> {
      if (!binary) {
        return {
          backend: 'qemu-microvm',
          installed: false,
          reason: 'qemu-system-x86_64 is not installed',
          fix: 'apt-get install qemu-system-x86',
          accelerators: [],
        };
      }
      const version = spawnSync(binary, ['--version'], { encoding: 'utf8' });
      const machines = spawnSync(binary, ['-machine', 'help'], { encoding: 'utf8' });
      if (version.status !== 0 || !/^microvm\b/m.test(machines.stdout ?? '')) {
        return {
          backend: 'qemu-microvm',
          installed: false,
          binary,
          reason: `${binary} does not offer the microvm machine`,
          fix: 'install QEMU 5.0 or newer: apt-get install qemu-system-x86',
          accelerators: [],
        };
      }
      return {
        backend: 'qemu-microvm',
        installed: true,
        binary,
        version: /version ([\d.]+)/.exec(version.stdout)?.[1] ?? 'unknown',
        accelerators: ['kvm', 'tcg'],
      };
    },
    start(spec) {
      if (!binary) throw new Error('qemu-system-x86_64 is not installed');
      const args = [
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-monitor',
        'none',
        '-no-reboot',
        '-machine',
        'microvm,acpi=off,pcie=off,rtc=off',
        // TCG's translation cache defaults to 1 GiB; 64 MiB is plenty for a payload and fits the VMM's cgroup.
        '-accel',
        spec.accelerator === 'kvm' ? 'kvm' : 'tcg,tb-size=64',
        '-cpu',
        spec.accelerator === 'kvm' ? 'host' : 'max',
        '-smp',
        String(spec.vcpus),
        '-m',
        `${spec.memoryMebibytes}M`,
        '-kernel',
        spec.kernelPath,
        '-initrd',
        spec.initramfsPath,
        '-append',
        [
          ...BASE_KERNEL_ARGUMENTS,
          // Under TCG the local APIC timer fails the kernel's verification after a ~0.3 s calibration
          // and is disabled anyway; skipping it shortens every boot. KVM keeps it.
          ...(spec.accelerator === 'tcg' ? ['noapictimer'] : []),
          ...spec.kernelArguments,
        ].join(' '),
        ...(spec.consolePath
          ? ['-chardev', `file,id=console,path=${spec.consolePath}`, '-serial', 'chardev:console']
          : ['-serial', 'none']),
        '-chardev',
        'stdio,id=control,signal=off',
        '-device',
        'virtio-serial-device',
        '-device',
        'virtserialport,chardev=control,name=bulkhead.control',
        '-fsdev',
        `local,id=view,path=${spec.sharedDirectory},security_model=none,multidevs=remap`,
        '-device',
        'virtio-9p-device,fsdev=view,mount_tag=view',
      ];
      if (spec.guestForward) {
        const forward = spec.guestForward;
        for (const path of [forward.socketPath, forward.relayPath]) {
          // QEMU's option syntax would split a comma; a space would split the relay's argv.
          if (/[,\s]/.test(path)) throw new Error(`the path '${path}' cannot be passed to QEMU's guestfwd`);
        }
        // A chardev forward carries one connection in the VMM's life; `cmd:` runs the relay per connection.
        args.push(
          '-netdev',
          `user,id=net,restrict=on,ipv6=off,guestfwd=tcp:${forward.address}:${forward.port}-cmd:${forward.relayPath} --relay ${forward.socketPath}`,
          '-device',
          'virtio-net-device,netdev=net',
        );
      } else {
        args.push('-nic', 'none');
      }
      return {
        file: binary,
        args,
        readPaths: ['/usr/share/qemu', '/usr/share/seabios', spec.kernelPath, spec.initramfsPath],
        devices: spec.accelerator === 'kvm' ? ['/dev/kvm'] : [],
      };
    },
  };
}

/**
 * A backend whose VMM is not driven yet: it is only ever offered when its binary exists, and then
 * says plainly that this version cannot use it.
 */
function createPendingBackend(name: string, binaryName: string, fix: string): VmmBackend {
  return {
    name,
    async probe(): Promise<VmmProbe> {
      const binary = findOnPath(binaryName);
      if (!binary)
        return {
          backend: name,
          installed: false,
          reason: `${binaryName} is not installed`,
          fix,
          accelerators: [],
        };
      return {
        backend: name,
        installed: true,
        binary,
        reason: `${binaryName} is installed, but this version of @bulkhead/tier-microvm drives only QEMU's microvm`,
        fix: "use backend: 'qemu-microvm' (apt-get install qemu-system-x86)",
        accelerators: [],
      };
    },
    start() {
      throw new Error(`the ${name} backend cannot start VMs yet`);
    },
  };
}

export function createFirecrackerBackend(): VmmBackend {
  return createPendingBackend(
    'firecracker',
    'firecracker',
    'install Firecracker from https://github.com/firecracker-microvm/firecracker/releases',
  );
}

export function createCloudHypervisorBackend(): VmmBackend {
  return createPendingBackend(
    'cloud-hypervisor',
    'cloud-hypervisor',
    'install Cloud Hypervisor from https://github.com/cloud-hypervisor/cloud-hypervisor/releases',
  );
}
