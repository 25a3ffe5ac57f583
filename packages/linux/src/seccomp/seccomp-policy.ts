/**
 * The seccomp policy of the Linux tiers, as data. Refused calls answer EPERM (programs degrade
 * instead of dying); only a foreign architecture (x32, 32-bit compat) kills the process.
 */

/** Refused in every sandbox. Names unknown to the running libseccomp or absent on an architecture are skipped. */
export const REFUSED_SYSCALLS = [
  // mounts and the new mount API
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'move_mount',
  'open_tree',
  'fsopen',
  'fsmount',
  'fsconfig',
  'fspick',
  'mount_setattr',
  'chroot',
  // other processes' memory and file descriptors
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'pidfd_getfd',
  // the kernel itself
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'create_module',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'syslog',
  'iopl',
  'ioperm',
  'swapon',
  'swapoff',
  'reboot',
  'acct',
  'quotactl',
  'quotactl_fd',
  'vhangup',
  'uselib',
  // keyrings
  'keyctl',
  'add_key',
  'request_key',
  // file handles bypass path checks
  'open_by_handle_at',
  'name_to_handle_at',
  // io_uring runs syscalls the filter never sees
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  // namespaces
  'setns',
  // the clock
  'settimeofday',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  'stime',
] as const;

/** Refused with `spawn: false` (aarch64 has no fork/vfork: libc uses clone there). */
export const SPAWN_SYSCALLS = ['fork', 'vfork'] as const;

export const CLONE_THREAD = 0x00010000;
/** Namespace flags clone() accepts (CLONE_NEWTIME shares its bit with the exit signal there). */
export const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
] as const;
/** unshare() also takes CLONE_NEWTIME. */
export const UNSHARE_NAMESPACE_FLAGS = [...CLONE_NAMESPACE_FLAGS, 0x00000080] as const;

/** Terminal ioctls that inject input or drive the console. */
export const TIOCSTI = 0x5412;
export const TIOCLINUX = 0x541c;

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const IPPROTO_TCP = 6;
/** Address families above this one (AF_PACKET, AF_VSOCK, AF_BLUETOOTH, ...) are refused with network none. */
export const AF_HIGHEST_ALLOWED = AF_NETLINK;
