import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import type { MachineFacts } from './result.js';

const execFileAsync = promisify(execFile);

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A number the workload prints for `mode` (`landlock-abi`, `kvm`), or undefined when it cannot. */
export async function workloadAnswer(workloadPath: string, mode: string): Promise<number | undefined> {
  try {
    const { stdout } = await execFileAsync(workloadPath, [mode], { timeout: 5_000 });
    const value = Number.parseInt(stdout.trim(), 10);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function cgroupLayout(): string {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2';
  const unified = readText('/sys/fs/cgroup/unified/cgroup.controllers');
  if (unified !== undefined) {
    return unified === ''
      ? 'hybrid (v1 controllers, v2 without controllers)'
      : `hybrid (v1, v2 with ${unified})`;
  }
  return existsSync('/sys/fs/cgroup/memory') ? 'v1' : 'none found';
}

function kvmModule(): string {
  for (const module of ['kvm_intel', 'kvm_amd', 'kvm_pvm'])
    if (existsSync(`/sys/module/${module}`)) return module;
  return 'no kvm module';
}

function userNamespaces(): string {
  const maximum = readText('/proc/sys/user/max_user_namespaces');
  const debianSwitch = readText('/proc/sys/kernel/unprivileged_userns_clone');
  const apparmor = readText('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const parts = [`max_user_namespaces=${maximum ?? '?'}`];
  if (debianSwitch !== undefined) parts.push(`unprivileged_userns_clone=${debianSwitch}`);
  if (apparmor !== undefined) parts.push(`apparmor_restrict_unprivileged_userns=${apparmor}`);
  return parts.join(', ');
}

/** Facts about the machine that explain a figure; recorded in every result. */
export async function machineFacts(
  workloadPath: string,
  versions: Record<string, string>,
): Promise<MachineFacts> {
  const cpus = os.cpus();
  const [landlockAbi, kvmVersion] = await Promise.all([
    workloadAnswer(workloadPath, 'landlock-abi'),
    workloadAnswer(workloadPath, 'kvm'),
  ]);
  const kvmUsable = kvmVersion !== undefined && kvmVersion > 0;
  const kvm = kvmUsable
    ? `KVM API ${kvmVersion} via ${kvmModule()}${kvmModule() === 'kvm_pvm' ? ' (nested PVM: stock guest kernels do not boot)' : ''}`
    : `not usable (${kvmVersion === undefined ? 'probe failed' : `errno ${-kvmVersion}`}, ${kvmModule()})`;
  return {
    host: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    os:
      readText('/etc/os-release')?.match(/^PRETTY_NAME="?([^"\n]*)"?$/m)?.[1] ??
      `${os.type()} ${os.release()}`,
    kvmUsable,
    kvm,
    cgroup: cgroupLayout(),
    landlockAbi,
    unprivilegedUserNamespaces: userNamespaces(),
    node: process.versions.node,
    versions,
    loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}
