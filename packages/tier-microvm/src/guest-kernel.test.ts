import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GUEST_KERNEL_FRAGMENT, missingKernelOptions } from './guest-kernel.js';
import { packageFile } from './package-files.js';

describe('guest kernel config', () => {
  it('names an option Kconfig dropped, so the build fails instead of yielding a weaker guest', () => {
    const fragment = 'CONFIG_SECCOMP_FILTER=y\nCONFIG_SECURITY_LANDLOCK=y\n# CONFIG_MODULES is not set\n';
    const config = 'CONFIG_SECCOMP_FILTER=y\n# CONFIG_SECURITY_LANDLOCK is not set\n';
    expect(missingKernelOptions(fragment, config)).toEqual(['CONFIG_SECURITY_LANDLOCK=y']);
  });

  it('asks for what the guest init and the issue rely on', () => {
    const fragment = readFileSync(packageFile(GUEST_KERNEL_FRAGMENT), 'utf8');
    for (const option of [
      'PVH',
      'VIRTIO_MMIO_CMDLINE_DEVICES',
      'VIRTIO_CONSOLE',
      '9P_FS',
      'NET_9P_VIRTIO',
      'SECCOMP_FILTER',
      'SECURITY_LANDLOCK',
      'MEMCG',
      'CGROUP_PIDS',
      'DEVTMPFS',
      'TMPFS',
    ]) {
      expect(fragment).toMatch(new RegExp(`^CONFIG_${option}=y$`, 'm'));
    }
  });
});
