import { BulkheadError } from '@bulkhead/core';
import koffi from 'koffi';

/**
 * The few libc entry points the library itself needs (not the shim: it applies the plan in C).
 * Loaded lazily so importing the package never touches the FFI.
 */

const SYSCALL_LANDLOCK_CREATE_RULESET = 444;
const LANDLOCK_CREATE_RULESET_VERSION = 1;
const MFD_CLOEXEC = 1;

interface LibcFunctions {
  syscall: (...values: unknown[]) => number | bigint;
  memfdCreate: (name: string, flags: number) => number;
  close: (fd: number) => number;
  umount2: (target: string, flags: number) => number;
}

let functions: LibcFunctions | undefined;

function libc(): LibcFunctions {
  if (functions) return functions;
  let library: koffi.IKoffiLib;
  try {
    // dlopen(NULL): the C library Node itself runs on, glibc or musl alike.
    library = koffi.load(null);
  } catch (cause) {
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      `The C library could not be loaded through koffi on ${process.platform}/${process.arch}, so the kernel cannot be probed. Fix: run on Linux x86_64 or aarch64 with a koffi build for it (npm rebuild koffi).`,
      { fix: 'npm rebuild koffi', cause },
    );
  }
  functions = {
    syscall: library.func('long syscall(long, ...)'),
    memfdCreate: library.func('int memfd_create(const char *, unsigned int)'),
    close: library.func('int close(int)'),
    umount2: library.func('int umount2(const char *, int)'),
  };
  return functions;
}

/** syscall(2) with koffi's variadic arguments (type, value, type, value, ...). */
export function libcSyscall(...values: unknown[]): number | bigint {
  return libc().syscall(...values);
}

/** Closes a descriptor made outside Node (a socket pair's end, an open_tree fd). */
export function closeDescriptor(fd: number): void {
  libc().close(fd);
}

/** umount2(2); answers 0 or -1 (errno in `lastErrno()`). */
export function unmount(target: string, flags: number): number {
  return libc().umount2(target, flags);
}

/** `errno` of the last failed FFI call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** The Landlock ABI version of the running kernel; 0 when Landlock is absent or disabled. */
export function landlockCreateRulesetVersion(): number {
  const version = Number(
    libc().syscall(
      SYSCALL_LANDLOCK_CREATE_RULESET,
      'void *',
      null,
      'size_t',
      0,
      'uint32_t',
      LANDLOCK_CREATE_RULESET_VERSION,
    ),
  );
  return Math.max(version, 0);
}

/** An anonymous, close-on-exec memory file; the caller owns (and closes) the fd. */
export function memfdCreate(name: string): number {
  const fd = libc().memfdCreate(name, MFD_CLOEXEC);
  if (fd < 0) {
    throw new BulkheadError('INTERNAL_ERROR', `memfd_create failed with errno ${lastErrno()}.`, {
      details: { errno: lastErrno() },
    });
  }
  return fd;
}
