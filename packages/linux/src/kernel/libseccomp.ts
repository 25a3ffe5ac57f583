import { BulkheadError } from '@bulkhead/core';
import koffi from 'koffi';

/** Bindings to libseccomp 2.5 (`libseccomp2` on Debian/Ubuntu, `libseccomp` on Fedora/Alpine). */

export const SCMP_ACT_ALLOW = 0x7fff0000;
export const SCMP_ACT_KILL_PROCESS = 0x80000000;
export const scmpActErrno = (errno: number): number => 0x00050000 | (errno & 0xffff);
export const SCMP_FLTATR_ACT_BADARCH = 2;
export const SCMP_CMP_EQ = 4;
export const SCMP_CMP_GT = 6;
export const SCMP_CMP_MASKED_EQ = 7;
/** `__NR_SCMP_ERROR`: a name libseccomp does not know. */
export const SCMP_UNKNOWN_SYSCALL = -1;

export const SCMP_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;

export interface ArgumentComparison {
  /** 0-based syscall argument index. */
  arg: number;
  op: number;
  /** For MASKED_EQ the mask, otherwise the value. */
  datum_a: number | bigint;
  /** For MASKED_EQ the value the masked argument must equal. */
  datum_b: number | bigint;
}

export interface Libseccomp {
  init(defaultAction: number): unknown;
  release(context: unknown): void;
  archNative(): number;
  archAdd(context: unknown, token: number): number;
  archRemove(context: unknown, token: number): number;
  attributeSet(context: unknown, attribute: number, value: number): number;
  resolveName(name: string): number;
  resolveNameArch(token: number, name: string): number;
  ruleAdd(
    context: unknown,
    action: number,
    syscall: number,
    count: number,
    comparisons: ArgumentComparison[],
  ): number;
  exportBpf(context: unknown, fd: number): number;
}

let cached: Libseccomp | undefined;

export function libseccomp(): Libseccomp {
  if (cached) return cached;
  let library: koffi.IKoffiLib;
  try {
    library = koffi.load('libseccomp.so.2');
  } catch (cause) {
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      'libseccomp is not installed, so the seccomp filter cannot be compiled. Fix: apt-get install libseccomp2 (dnf install libseccomp, apk add libseccomp).',
      { fix: 'apt-get install libseccomp2', cause },
    );
  }
  // Unnamed: koffi's type names are global to the process, and a second copy of this package in it
  // (the bulkhead binary carries one, a tier plugin may load its own) would clash on the name.
  const argumentComparison = koffi.struct({
    arg: 'unsigned int',
    op: 'int',
    datum_a: 'uint64_t',
    datum_b: 'uint64_t',
  });
  const ruleAdd = library.func('seccomp_rule_add_array', 'int', [
    'void *',
    'uint32_t',
    'int',
    'unsigned int',
    koffi.pointer(argumentComparison),
  ]);
  cached = {
    init: library.func('void *seccomp_init(uint32_t)'),
    release: library.func('void seccomp_release(void *)'),
    archNative: library.func('uint32_t seccomp_arch_native(void)'),
    archAdd: library.func('int seccomp_arch_add(void *, uint32_t)'),
    archRemove: library.func('int seccomp_arch_remove(void *, uint32_t)'),
    attributeSet: library.func('int seccomp_attr_set(void *, int, uint32_t)'),
    resolveName: library.func('int seccomp_syscall_resolve_name(const char *)'),
    resolveNameArch: library.func('int seccomp_syscall_resolve_name_arch(uint32_t, const char *)'),
    ruleAdd: (context, action, syscall, count, comparisons) =>
      ruleAdd(context, action, syscall, count, count === 0 ? null : comparisons),
    exportBpf: library.func('int seccomp_export_bpf(void *, int)'),
  };
  return cached;
}
