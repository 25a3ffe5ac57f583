/**
 * What the micro-VM tier needs on the host, machine-readably, for `bulkhead doctor` and for CI set-up
 * scripts. `when` says which part of the tier needs it.
 */
export interface HostRequirement {
  /** The program the tier runs (looked up on PATH) or the file it reads. */
  program: string;
  /** The Debian/Ubuntu package that provides it. */
  debianPackage: string;
  when: 'launch' | 'kernel-build' | 'tests';
  purpose: string;
}

export const MICROVM_HOST_REQUIREMENTS: readonly HostRequirement[] = [
  {
    program: 'qemu-system-x86_64',
    debianPackage: 'qemu-system-x86',
    when: 'launch',
    purpose: "the VMM (QEMU's microvm machine)",
  },
  { program: 'bwrap', debianPackage: 'bubblewrap', when: 'launch', purpose: "the VMM's jail" },
  {
    program: 'gcc',
    debianPackage: 'gcc',
    when: 'launch',
    purpose: 'compiles the static guest init (and the exec shim)',
  },
  {
    program: '/usr/lib/x86_64-linux-gnu/libc.a',
    debianPackage: 'libc6-dev',
    when: 'launch',
    purpose: 'static linking of the guest init',
  },
  {
    program: '/bin/busybox',
    debianPackage: 'busybox-static',
    when: 'launch',
    purpose: 'a shell in the initramfs for debugging (optional)',
  },
  {
    program: '/usr/src/linux-source-6.1.tar.xz',
    debianPackage: 'linux-source-6.1',
    when: 'kernel-build',
    purpose: 'the guest kernel source',
  },
  { program: 'make', debianPackage: 'make', when: 'kernel-build', purpose: 'the kernel build' },
  { program: 'flex', debianPackage: 'flex', when: 'kernel-build', purpose: 'Kconfig' },
  { program: 'bison', debianPackage: 'bison', when: 'kernel-build', purpose: 'Kconfig' },
  { program: 'bc', debianPackage: 'bc', when: 'kernel-build', purpose: 'kernel headers generation' },
  { program: '/usr/include/libelf.h', debianPackage: 'libelf-dev', when: 'kernel-build', purpose: 'objtool' },
  {
    program: '/usr/include/openssl/ssl.h',
    debianPackage: 'libssl-dev',
    when: 'kernel-build',
    purpose: 'kernel build scripts',
  },
  { program: 'tar', debianPackage: 'tar', when: 'kernel-build', purpose: 'unpacking the source' },
  { program: 'xz', debianPackage: 'xz-utils', when: 'kernel-build', purpose: 'unpacking the source' },
  {
    program: 'dpkg-query',
    debianPackage: 'dpkg',
    when: 'kernel-build',
    purpose: "the source package's version, for the cache key",
  },
  {
    program: 'nice',
    debianPackage: 'coreutils',
    when: 'kernel-build',
    purpose: 'the build yields to interactive work',
  },
  {
    program: 'cpio',
    debianPackage: 'cpio',
    when: 'tests',
    purpose: 'an independent reader of the initramfs',
  },
  { program: 'curl', debianPackage: 'curl', when: 'tests', purpose: 'a real client through the allow-list' },
];
