import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestExitReport } from './control-channel.js';
import { GuestProcess } from './guest-process.js';
import type { Accelerator, VmmBackend } from './vmm-backend.js';
import { buildJailArguments, JAIL_PATHS } from './vmm-jail.js';

export interface StartVirtualMachineOptions {
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
}

export interface RunningVirtualMachine {
  guest: GuestProcess;
  vmm: ChildProcess;
  /** Kills the jail and with it the VMM (the jail dies with its parent). Idempotent. */
  kill(): void;
  /** The guest's serial console so far (kernel messages), for diagnostics. */
  console(): Promise<string>;
  /** Removes the VM's private directory. Call after the VMM is gone. */
  cleanUp(): Promise<void>;
}

/** Starts one jailed VM; the returned guest says `ready` once init waits for the launch. */
export async function startVirtualMachine(
  options: StartVirtualMachineOptions,
): Promise<RunningVirtualMachine> {
  const runDirectory = await mkdtemp(join(tmpdir(), 'bulkhead-microvm-'));
  const emptyFile = join(runDirectory, 'empty');
  await writeFile(emptyFile, '', { mode: 0o000 });
  const vmmCommand = options.backend.start({
    kernelPath: JAIL_PATHS.kernel,
    initramfsPath: JAIL_PATHS.initramfs,
    kernelArguments: [],
    memoryMebibytes: options.memoryMebibytes,
    vcpus: options.vcpus,
    accelerator: options.accelerator,
    sharedDirectory: JAIL_PATHS.view,
    consolePath: `${JAIL_PATHS.run}/console.log`,
  });
  const args = buildJailArguments({
    vmm: vmmCommand,
    kernelPath: options.kernelPath,
    initramfsPath: options.initramfsPath,
    runDirectory,
    emptyFile,
    filesystem: options.filesystem,
  });
  const vmm = spawn(options.bubblewrap, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {},
    // Its own process group: one signal reaches the jail and everything in it.
    detached: true,
  });
  const kill = () => {
    if (vmm.pid === undefined || vmm.exitCode !== null || vmm.signalCode !== null) return;
    try {
      process.kill(-vmm.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const guest = new GuestProcess(vmm, (report) => {
    // The payload is done: nothing in the guest is worth waiting for.
    kill();
    options.onReport?.(report);
  });
  let cleaned = false;
  return {
    guest,
    vmm,
    kill,
    async console() {
      try {
        return await readFile(join(runDirectory, 'console.log'), 'utf8');
      } catch {
        return '';
      }
    },
    async cleanUp() {
      if (cleaned) return;
      cleaned = true;
      await rm(runDirectory, { recursive: true, force: true });
    },
  };
}
