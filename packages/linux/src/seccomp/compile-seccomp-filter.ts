import { closeSync, fstatSync, readSync } from 'node:fs';
import { BulkheadError } from '@bulkhead/core';
import { memfdCreate } from '../kernel/libc.js';
import {
  type ArgumentComparison,
  libseccomp,
  SCMP_ACT_ALLOW,
  SCMP_ACT_KILL_PROCESS,
  SCMP_ARCH,
  SCMP_CMP_EQ,
  SCMP_CMP_GT,
  SCMP_CMP_MASKED_EQ,
  SCMP_FLTATR_ACT_BADARCH,
  SCMP_UNKNOWN_SYSCALL,
  scmpActErrno,
} from '../kernel/libseccomp.js';
import {
  AF_HIGHEST_ALLOWED,
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_UNIX,
  CLONE_NAMESPACE_FLAGS,
  CLONE_THREAD,
  IPPROTO_TCP,
  REFUSED_SYSCALLS,
  SPAWN_SYSCALLS,
  TIOCLINUX,
  TIOCSTI,
  UNSHARE_NAMESPACE_FLAGS,
} from './seccomp-policy.js';

export type SeccompArchitecture = keyof typeof SCMP_ARCH;

export interface SeccompFilterOptions {
  /** May the payload create processes? `false` refuses fork, vfork and clone without CLONE_THREAD. */
  spawn: boolean;
  /** `none` and `allowlist` refuse every socket but AF_UNIX, TCP over IPv4/IPv6 (Landlock filters its ports) and route netlink. */
  network: 'none' | 'allowlist' | 'open';
  /**
   * May the payload make unix sockets it could connect by path (`socket(AF_UNIX, ...)`, and datagram
   * `socketpair()`s, which can `sendto()` or re-`connect()` any path)? Default true. `false` keeps
   * stream and seqpacket `socketpair()`s, which reach nothing but each other.
   */
  unixSockets?: boolean;
  /** Defaults to the architecture Node runs on. */
  architecture?: SeccompArchitecture;
}

const EPERM = 1;
const ENOSYS = 38;
const INT_MASK = 0xffffffff;
/** SOCK_NONBLOCK and SOCK_CLOEXEC share the type argument; the type itself is the low four bits. */
const SOCK_TYPE_MASK = 0xf;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;

const equals32 = (arg: number, value: number): ArgumentComparison =>
  // int arguments: the kernel ignores the upper 32 bits, so the filter must too.
  ({ arg, op: SCMP_CMP_MASKED_EQ, datum_a: INT_MASK, datum_b: value });
const hasBits = (arg: number, bits: number): ArgumentComparison => ({
  arg,
  op: SCMP_CMP_MASKED_EQ,
  datum_a: bits,
  datum_b: bits,
});
const lacksBits = (arg: number, bits: number): ArgumentComparison => ({
  arg,
  op: SCMP_CMP_MASKED_EQ,
  datum_a: bits,
  datum_b: 0,
});
// An unsigned 64-bit comparison: a value with garbage in its upper half is refused too, which errs on the safe side.
const greaterThan = (arg: number, value: number): ArgumentComparison => ({
  arg,
  op: SCMP_CMP_GT,
  datum_a: value,
  datum_b: 0,
});
const exactly = (arg: number, value: number): ArgumentComparison => ({
  arg,
  op: SCMP_CMP_EQ,
  datum_a: value,
  datum_b: 0,
});

function nativeArchitecture(): SeccompArchitecture {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  throw new BulkheadError(
    'UNSUPPORTED_ARCHITECTURE',
    `The seccomp policy has syscall tables for x86_64 and aarch64 only, and this host is ${process.arch}. Fix: run on x86_64 or aarch64, or pass another architecture explicitly.`,
    { details: { architecture: process.arch } },
  );
}

/** The socket() rules of `network: none`: what Landlock's TCP rules cannot see. */
function socketRules(): ArgumentComparison[][] {
  const rules: ArgumentComparison[][] = [[greaterThan(0, AF_HIGHEST_ALLOWED)]];
  for (let family = 0; family < AF_HIGHEST_ALLOWED; family++) {
    if (family !== AF_UNIX && family !== AF_INET && family !== AF_INET6) rules.push([equals32(0, family)]);
  }
  for (const family of [AF_INET, AF_INET6]) {
    // Anything but SOCK_STREAM: a type whose low four bits are not exactly 0001.
    rules.push([equals32(0, family), lacksBits(1, SOCK_TYPE_MASK)]);
    for (const bit of [0x2, 0x4, 0x8]) rules.push([equals32(0, family), hasBits(1, bit)]);
    // Stream protocols other than TCP (SCTP, MPTCP) that Landlock does not filter.
    rules.push([equals32(0, family), greaterThan(2, IPPROTO_TCP)]);
    for (let protocol = 1; protocol < IPPROTO_TCP; protocol++)
      rules.push([equals32(0, family), exactly(2, protocol)]);
  }
  // Netlink: only NETLINK_ROUTE (0), which libc uses to list interfaces.
  rules.push([equals32(0, AF_NETLINK), greaterThan(2, 0)]);
  return rules;
}

/**
 * Compiles the policy into classic BPF (an array of `struct sock_filter`) for `seccomp(SECCOMP_SET_MODE_FILTER)`,
 * ready to hand to the exec shim. Uses libseccomp, which owns the syscall tables and the x32 check.
 */
export function compileSeccompFilter(options: SeccompFilterOptions): Buffer {
  const architecture = options.architecture ?? nativeArchitecture();
  // The filter depends on these four facts only: compile each combination once per process.
  const key = `${architecture} ${options.spawn} ${options.network === 'open'} ${options.unixSockets ?? true}`;
  let filter = compiled.get(key);
  if (!filter) {
    filter = compile(architecture, options);
    compiled.set(key, filter);
  }
  return Buffer.from(filter);
}

const compiled = new Map<string, Buffer>();

function compile(architecture: SeccompArchitecture, options: SeccompFilterOptions): Buffer {
  const seccomp = libseccomp();
  const refuse = scmpActErrno(EPERM);
  const context = seccomp.init(SCMP_ACT_ALLOW);
  if (!context) throw new BulkheadError('INTERNAL_ERROR', 'seccomp_init failed.');
  try {
    const check = (result: number, what: string) => {
      if (result < 0 && result !== -17 /* EEXIST */) {
        throw new BulkheadError('INTERNAL_ERROR', `libseccomp: ${what} failed with ${result}.`, {
          details: { result, architecture },
        });
      }
    };
    const target = SCMP_ARCH[architecture];
    check(seccomp.archAdd(context, target), `adding ${architecture}`);
    const native = seccomp.archNative();
    if (native !== target) check(seccomp.archRemove(context, native), 'removing the native architecture');
    check(
      seccomp.attributeSet(context, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
      'the bad-arch action',
    );

    const add = (name: string, action: number, comparisons: ArgumentComparison[] = []) => {
      // Rule numbers are the native architecture's; libseccomp translates them by name.
      if (seccomp.resolveNameArch(target, name) < 0) return; // not a syscall on that architecture
      const number = seccomp.resolveName(name);
      if (number === SCMP_UNKNOWN_SYSCALL) return;
      check(
        seccomp.ruleAdd(context, action, number, comparisons.length, comparisons),
        `the rule for ${name}`,
      );
    };

    for (const name of REFUSED_SYSCALLS) add(name, refuse);
    for (const flag of UNSHARE_NAMESPACE_FLAGS) add('unshare', refuse, [hasBits(0, flag)]);
    for (const flag of CLONE_NAMESPACE_FLAGS) add('clone', refuse, [hasBits(0, flag)]);
    // clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone.
    add('clone3', scmpActErrno(ENOSYS));
    for (const request of [TIOCSTI, TIOCLINUX]) add('ioctl', refuse, [equals32(1, request)]);
    if (!options.spawn) {
      for (const name of SPAWN_SYSCALLS) add(name, refuse);
      add('clone', refuse, [lacksBits(0, CLONE_THREAD)]);
    }
    if (options.network !== 'open') {
      for (const comparisons of socketRules()) add('socket', refuse, comparisons);
    }
    if (options.unixSockets === false) {
      add('socket', refuse, [equals32(0, AF_UNIX)]);
      for (let type = 0; type <= SOCK_TYPE_MASK; type++) {
        if (type === SOCK_STREAM || type === SOCK_SEQPACKET) continue;
        add('socketpair', refuse, [
          { arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: SOCK_TYPE_MASK, datum_b: type },
        ]);
      }
    }
    return exportFilter(seccomp.exportBpf.bind(seccomp), context);
  } finally {
    seccomp.release(context);
  }
}

function exportFilter(exportBpf: (context: unknown, fd: number) => number, context: unknown): Buffer {
  const fd = memfdCreate('bulkhead-seccomp');
  try {
    const result = exportBpf(context, fd);
    if (result < 0) throw new BulkheadError('INTERNAL_ERROR', `seccomp_export_bpf failed with ${result}.`);
    const size = fstatSync(fd).size;
    const filter = Buffer.alloc(size);
    let offset = 0;
    while (offset < size) {
      const count = readSync(fd, filter, offset, size - offset, offset);
      if (count === 0) break;
      offset += count;
    }
    return filter.subarray(0, offset);
  } finally {
    closeSync(fd);
  }
}
