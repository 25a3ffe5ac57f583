import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { startVirtualMachine } from './virtual-machine.js';
import type { VmmBackend, VmmProbe } from './vmm-backend.js';

export interface KvmVerdict {
  usable: boolean;
  /** Why KVM cannot run the guest here. */
  reason?: string;
  fix?: string;
  /** The host's KVM flavour (`kvm_intel`, `kvm_amd`, `kvm_pvm`), when one is loaded. */
  module?: string;
  /** The verdict came from the cache of an earlier boot probe. */
  cached?: boolean;
}

export const ALLOW_SOFTWARE_EMULATION_FIX =
  "allow software emulation: createMicrovmProvider({ acceleration: 'any' }) (slower, and the emulator is a larger attack surface)";

export function kvmModule(): string | undefined {
  for (const name of ['kvm_intel', 'kvm_amd', 'kvm_pvm']) if (existsSync(`/sys/module/${name}`)) return name;
  return undefined;
}

export interface KvmProbeOptions {
  backend: VmmBackend;
  vmm: VmmProbe;
  kernelPath: string;
  initramfsPath: string;
  bubblewrap: string;
  cacheDirectory: string;
  /** How long a test boot may take before KVM is judged unusable (default 20 s). */
  timeoutMs?: number;
}

function fileIdentity(path: string): string {
  const info = statSync(path);
  return `${path} ${info.size} ${info.mtimeMs}`;
}

/**
 * Does a guest actually boot under KVM here? `/dev/kvm` alone says little: under nested PVM
 * (`kvm_pvm`) the device exists but guest kernel code is emulated instruction by instruction and
 * stock kernels stop with an emulation failure. So the guest is booted once, to its init, and the
 * verdict cached per kernel, VMM and host kernel.
 */
export async function probeKvm(options: KvmProbeOptions): Promise<KvmVerdict> {
  const module = kvmModule();
  const withModule = module === undefined ? {} : { module };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return {
      usable: false,
      reason: existsSync('/dev/kvm')
        ? '/dev/kvm exists but this user cannot open it'
        : '/dev/kvm is missing (no hardware virtualisation, or the kvm module is not loaded)',
      fix: existsSync('/dev/kvm')
        ? `add the user to the kvm group (usermod -aG kvm $USER), or ${ALLOW_SOFTWARE_EMULATION_FIX}`
        : `enable VT-x/AMD-V and modprobe kvm_intel or kvm_amd, or ${ALLOW_SOFTWARE_EMULATION_FIX}`,
      ...withModule,
    };
  }
  const key = createHash('sha256')
    .update(
      [fileIdentity(options.kernelPath), options.vmm.binary, options.vmm.version, release(), module].join(
        '\0',
      ),
    )
    .digest('hex');
  const cachePath = join(options.cacheDirectory, 'kvm-probes', `${key}.json`);
  if (existsSync(cachePath)) {
    try {
      return { ...(JSON.parse(readFileSync(cachePath, 'utf8')) as KvmVerdict), cached: true };
    } catch {
      // A torn cache entry: probe again.
    }
  }
  const verdict = await bootOnce(options, module);
  await mkdir(join(cachePath, '..'), { recursive: true });
  await writeFile(cachePath, JSON.stringify(verdict));
  return verdict;
}

async function bootOnce(options: KvmProbeOptions, module: string | undefined): Promise<KvmVerdict> {
  const vm = await startVirtualMachine({
    id: `kvm-probe-${process.pid}-${Date.now()}`,
    backend: options.backend,
    accelerator: 'kvm',
    kernelPath: options.kernelPath,
    initramfsPath: options.initramfsPath,
    memoryMebibytes: 128,
    vcpus: 1,
    filesystem: { read: [], write: [], deny: [] },
    bubblewrap: options.bubblewrap,
    cacheDirectory: options.cacheDirectory,
  });
  const timer = setTimeout(vm.kill, options.timeoutMs ?? 20_000);
  // QEMU pauses the VM on a KVM emulation failure instead of exiting: no need to wait it out.
  vm.vmm.stderr?.on('data', (chunk: Buffer) => {
    if (/KVM internal error|emulation failure/i.test(chunk.toString('utf8'))) vm.kill();
  });
  try {
    await vm.guest.ready;
    return { usable: true, ...(module === undefined ? {} : { module }) };
  } catch {
    const detail = `${vm.guest.vmmOutput} ${await vm.console()}`.replace(/\s+/g, ' ').trim().slice(0, 300);
    const reason =
      module === 'kvm_pvm'
        ? 'nested PVM: guest kernels cannot boot under it'
        : `a test boot of the guest kernel under KVM did not reach init${detail ? ` (${detail})` : ''}`;
    return {
      usable: false,
      reason,
      fix: ALLOW_SOFTWARE_EMULATION_FIX,
      ...(module === undefined ? {} : { module }),
    };
  } finally {
    clearTimeout(timer);
    vm.kill();
    await new Promise<void>((resolve) => {
      if (vm.vmm.exitCode !== null || vm.vmm.signalCode !== null) resolve();
      else vm.vmm.once('close', () => resolve());
    });
    await vm.cleanUp();
  }
}
