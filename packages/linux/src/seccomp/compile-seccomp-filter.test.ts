import { describe, expect, it } from 'vitest';
import { compileSeccompFilter, type SeccompArchitecture } from './compile-seccomp-filter.js';

/*
 * The filter is checked by running it: a classic-BPF interpreter below evaluates it for a syscall
 * the way the kernel does. Syscall numbers are copied from the kernel's own tables
 * (asm/unistd_64.h, asm-generic/unistd.h), not from libseccomp, so a wrong table would show.
 */

const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7, i386: 0x40000003, arm: 0x40000028 } as const;
const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const EPERM = 0x00050000 | 1;
const ENOSYS = 0x00050000 | 38;

const NUMBERS: Record<SeccompArchitecture, Record<string, number | undefined>> = {
  x86_64: {
    mount: 165,
    umount2: 166,
    pivot_root: 155,
    move_mount: 429,
    open_tree: 428,
    fsopen: 430,
    fsmount: 432,
    fsconfig: 431,
    fspick: 433,
    mount_setattr: 442,
    chroot: 161,
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    pidfd_getfd: 438,
    kexec_load: 246,
    kexec_file_load: 320,
    init_module: 175,
    finit_module: 313,
    delete_module: 176,
    bpf: 321,
    perf_event_open: 298,
    userfaultfd: 323,
    syslog: 103,
    iopl: 172,
    ioperm: 173,
    swapon: 167,
    swapoff: 168,
    reboot: 169,
    acct: 163,
    quotactl: 179,
    quotactl_fd: 443,
    vhangup: 153,
    uselib: 134,
    keyctl: 250,
    add_key: 248,
    request_key: 249,
    open_by_handle_at: 304,
    name_to_handle_at: 303,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    setns: 308,
    settimeofday: 164,
    clock_settime: 227,
    clock_adjtime: 305,
    adjtimex: 159,
    unshare: 272,
    clone: 56,
    clone3: 435,
    fork: 57,
    vfork: 58,
    ioctl: 16,
    socket: 41,
    getpid: 39,
    openat: 257,
    read: 0,
    write: 1,
    execve: 59,
    exit_group: 231,
    close: 3,
    mmap: 9,
  },
  aarch64: {
    mount: 40,
    umount2: 39,
    pivot_root: 41,
    move_mount: 429,
    open_tree: 428,
    fsopen: 430,
    fsmount: 432,
    fsconfig: 431,
    fspick: 433,
    mount_setattr: 442,
    chroot: 51,
    ptrace: 117,
    process_vm_readv: 270,
    process_vm_writev: 271,
    pidfd_getfd: 438,
    kexec_load: 104,
    kexec_file_load: 294,
    init_module: 105,
    finit_module: 273,
    delete_module: 106,
    bpf: 280,
    perf_event_open: 241,
    userfaultfd: 282,
    syslog: 116,
    swapon: 224,
    swapoff: 225,
    reboot: 142,
    acct: 89,
    quotactl: 60,
    quotactl_fd: 443,
    vhangup: 58,
    keyctl: 219,
    add_key: 217,
    request_key: 218,
    open_by_handle_at: 265,
    name_to_handle_at: 264,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    setns: 268,
    settimeofday: 170,
    clock_settime: 112,
    clock_adjtime: 266,
    adjtimex: 171,
    unshare: 97,
    clone: 220,
    clone3: 435,
    ioctl: 29,
    socket: 198,
    getpid: 172,
    openat: 56,
    read: 63,
    write: 64,
    execve: 221,
    exit_group: 94,
    close: 57,
    mmap: 222,
  },
};

const ALWAYS_REFUSED = [
  'mount',
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
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'pidfd_getfd',
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
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
  'keyctl',
  'add_key',
  'request_key',
  'open_by_handle_at',
  'name_to_handle_at',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'setns',
  'settimeofday',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
];
const ORDINARY = ['getpid', 'openat', 'read', 'write', 'execve', 'exit_group', 'close', 'mmap'];

/** Runs a seccomp classic-BPF program on one `struct seccomp_data`; throws on an opcode it does not know. */
function evaluate(filter: Buffer, arch: number, nr: number, args: (number | bigint)[] = []): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(nr >>> 0, 0);
  data.writeUInt32LE(arch >>> 0, 4);
  for (const [index, value] of args.entries()) {
    data.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), 16 + 8 * index);
  }
  const memory = new Uint32Array(16);
  let accumulator = 0;
  let index = 0;
  for (let pc = 0; pc * 8 < filter.length; pc++) {
    const code = filter.readUInt16LE(pc * 8);
    const jt = filter.readUInt8(pc * 8 + 2);
    const jf = filter.readUInt8(pc * 8 + 3);
    const k = filter.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20:
        accumulator = data.readUInt32LE(k);
        break; // ld [k]
      case 0x00:
        accumulator = k;
        break; // ld #k
      case 0x60:
        accumulator = memory[k]!;
        break; // ld M[k]
      case 0x02:
        memory[k] = accumulator;
        break; // st M[k]
      case 0x61:
        index = memory[k]!;
        break; // ldx M[k]
      case 0x87:
        accumulator = index;
        break; // txa
      case 0x07:
        index = accumulator;
        break; // tax
      case 0x54:
        accumulator = (accumulator & k) >>> 0;
        break; // and #k
      case 0x05:
        pc += k;
        break; // ja
      case 0x15:
        pc += accumulator === k ? jt : jf;
        break; // jeq #k
      case 0x25:
        pc += accumulator > k ? jt : jf;
        break; // jgt #k
      case 0x35:
        pc += accumulator >= k ? jt : jf;
        break; // jge #k
      case 0x45:
        pc += (accumulator & k) !== 0 ? jt : jf;
        break; // jset #k
      case 0x06:
        return k; // ret #k
      case 0x16:
        return accumulator; // ret a
      default:
        throw new Error(`opcode 0x${code.toString(16)} at ${pc} is not interpreted`);
    }
  }
  throw new Error('the filter ran off its end');
}

const CLONE_THREAD_FLAGS = 0x3d0f00; // what glibc's pthread_create passes
const SIGCHLD = 17;
const CLONE_NAMESPACES = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

describe.each(['x86_64', 'aarch64'] as const)('compileSeccompFilter for %s', (architecture) => {
  const arch = AUDIT_ARCH[architecture];
  const nr = (name: string) => {
    const number = NUMBERS[architecture][name];
    if (number === undefined) throw new Error(`${name} has no number on ${architecture}`);
    return number;
  };
  const spawning = compileSeccompFilter({ spawn: true, network: 'open', architecture });
  const closed = compileSeccompFilter({ spawn: false, network: 'none', architecture });

  it('is whole classic-BPF instructions', () => {
    expect(spawning.length % 8).toBe(0);
    expect(closed.length / 8).toBeLessThanOrEqual(4096);
  });

  it.each(ALWAYS_REFUSED)('refuses %s with EPERM', (name) => {
    const number = NUMBERS[architecture][name];
    if (number === undefined) return; // not a syscall on this architecture: nothing to refuse
    expect(evaluate(spawning, arch, number)).toBe(EPERM);
    expect(evaluate(closed, arch, number)).toBe(EPERM);
  });

  it.each(ORDINARY)('allows %s', (name) => {
    expect(evaluate(spawning, arch, nr(name))).toBe(ALLOW);
    expect(evaluate(closed, arch, nr(name))).toBe(ALLOW);
  });

  it('kills the process on a foreign architecture', () => {
    const foreign = architecture === 'x86_64' ? AUDIT_ARCH.i386 : AUDIT_ARCH.arm;
    expect(evaluate(spawning, foreign, 20)).toBe(KILL_PROCESS);
    const other = architecture === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64;
    expect(evaluate(spawning, other, 39)).toBe(KILL_PROCESS);
  });

  if (architecture === 'x86_64') {
    it('kills the process on an x32 syscall', () => {
      expect(evaluate(spawning, arch, 0x40000000 + nr('getpid'))).toBe(KILL_PROCESS);
      expect(evaluate(spawning, arch, 0x40000000 + nr('mount'))).toBe(KILL_PROCESS);
    });
  }

  it.each(Object.entries(CLONE_NAMESPACES))('refuses clone and unshare with %s', (_name, flag) => {
    expect(evaluate(spawning, arch, nr('clone'), [flag | SIGCHLD])).toBe(EPERM);
    expect(evaluate(spawning, arch, nr('unshare'), [flag])).toBe(EPERM);
  });

  it('refuses unshare of a time namespace but allows unsharing files', () => {
    expect(evaluate(spawning, arch, nr('unshare'), [0x80])).toBe(EPERM);
    expect(evaluate(spawning, arch, nr('unshare'), [0x400 /* CLONE_FILES */])).toBe(ALLOW);
  });

  it('answers clone3 with ENOSYS so libc falls back to clone', () => {
    expect(evaluate(spawning, arch, nr('clone3'))).toBe(ENOSYS);
    expect(evaluate(closed, arch, nr('clone3'))).toBe(ENOSYS);
  });

  it('allows threads and, with spawn, processes', () => {
    expect(evaluate(spawning, arch, nr('clone'), [CLONE_THREAD_FLAGS])).toBe(ALLOW);
    expect(evaluate(spawning, arch, nr('clone'), [SIGCHLD])).toBe(ALLOW);
    expect(evaluate(closed, arch, nr('clone'), [CLONE_THREAD_FLAGS])).toBe(ALLOW);
  });

  it('refuses fork, vfork and clone without CLONE_THREAD when spawn is false', () => {
    expect(evaluate(closed, arch, nr('clone'), [SIGCHLD])).toBe(EPERM);
    expect(evaluate(closed, arch, nr('clone'), [0x4111 /* CLONE_VM|CLONE_VFORK|SIGCHLD */])).toBe(EPERM);
    for (const name of ['fork', 'vfork']) {
      const number = NUMBERS[architecture][name];
      if (number === undefined) continue;
      expect(evaluate(closed, arch, number)).toBe(EPERM);
      expect(evaluate(spawning, arch, number)).toBe(ALLOW);
    }
  });

  it('refuses TIOCSTI and TIOCLINUX, also with garbage in the upper half of the request', () => {
    for (const request of [0x5412, 0x541c, 0x1_0000_5412n, 0xffffffff_0000541cn]) {
      expect(evaluate(spawning, arch, nr('ioctl'), [0, request])).toBe(EPERM);
    }
    expect(evaluate(spawning, arch, nr('ioctl'), [0, 0x5401 /* TCGETS */])).toBe(ALLOW);
  });

  describe('sockets with network none', () => {
    const socket = (filter: Buffer, domain: number | bigint, type: number, protocol = 0) =>
      evaluate(filter, arch, nr('socket'), [domain, type, protocol]);
    const AF_INET = 2;
    const AF_INET6 = 10;
    const SOCK_CLOEXEC_NONBLOCK = 0o2000000 | 0o4000;

    it('keeps unix sockets, TCP and route netlink', () => {
      expect(socket(closed, 1, 1)).toBe(ALLOW);
      expect(socket(closed, 1, 2)).toBe(ALLOW);
      expect(socket(closed, 1, 5)).toBe(ALLOW);
      for (const domain of [AF_INET, AF_INET6]) {
        expect(socket(closed, domain, 1)).toBe(ALLOW);
        expect(socket(closed, domain, 1 | SOCK_CLOEXEC_NONBLOCK, 6)).toBe(ALLOW);
      }
      expect(socket(closed, 16, 3, 0)).toBe(ALLOW);
    });

    it('refuses every other IPv4/IPv6 socket type and protocol', () => {
      for (const domain of [AF_INET, AF_INET6, 0x1_0000_0000n + BigInt(AF_INET)]) {
        for (let type = 0; type < 16; type++) {
          if (type === 1) continue;
          expect(socket(closed, domain, type)).toBe(EPERM);
          expect(socket(closed, domain, type | SOCK_CLOEXEC_NONBLOCK)).toBe(EPERM);
        }
        for (const protocol of [1, 2, 3, 4, 5, 17, 132, 262, 255, -1]) {
          expect(socket(closed, domain, 1, protocol)).toBe(EPERM);
        }
      }
    });

    it('refuses packet, netlink other than route, vsock and the other families', () => {
      for (const domain of [0, 3, 4, 5, 9, 15, 17, 29, 31, 38, 40, 44, 45, 0x7fffffff]) {
        expect(socket(closed, domain, 3)).toBe(EPERM);
      }
      expect(socket(closed, 16, 3, 9 /* NETLINK_AUDIT */)).toBe(EPERM);
      expect(socket(closed, 16, 3, 15 /* NETLINK_KOBJECT_UEVENT */)).toBe(EPERM);
    });

    it('leaves sockets alone with network open', () => {
      expect(socket(spawning, AF_INET, 2)).toBe(ALLOW);
      expect(socket(spawning, 17, 3)).toBe(ALLOW);
    });
  });
});
