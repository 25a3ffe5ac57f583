/** Landlock access rights (include/uapi/linux/landlock.h) and the ABI that introduced each. */

export const LANDLOCK_ACCESS_FS = {
  execute: 1 << 0,
  writeFile: 1 << 1,
  readFile: 1 << 2,
  readDir: 1 << 3,
  removeDir: 1 << 4,
  removeFile: 1 << 5,
  makeChar: 1 << 6,
  makeDir: 1 << 7,
  makeReg: 1 << 8,
  makeSock: 1 << 9,
  makeFifo: 1 << 10,
  makeBlock: 1 << 11,
  makeSym: 1 << 12,
  /** ABI 2: link or rename into another directory. */
  refer: 1 << 13,
  /** ABI 3. */
  truncate: 1 << 14,
  /** ABI 5: ioctl on character and block devices. */
  ioctlDev: 1 << 15,
} as const;

export const LANDLOCK_ACCESS_NET = {
  /** ABI 4. */
  bindTcp: 1 << 0,
  /** ABI 4. */
  connectTcp: 1 << 1,
} as const;

export const LANDLOCK_SCOPE = {
  /** ABI 6: connecting to abstract unix sockets created outside the sandbox. */
  abstractUnixSocket: 1 << 0,
  /** ABI 6: signalling processes outside the sandbox. */
  signal: 1 << 1,
} as const;

/** The newest ABI whose rights this module knows. Later ABIs are used as this one. */
export const LANDLOCK_ABI_KNOWN = 7;

/** Filesystem rights the kernel of this ABI can handle. */
export function filesystemRightsForAbi(abi: number): number {
  if (abi < 1) return 0;
  let rights = (1 << 13) - 1;
  if (abi >= 2) rights |= LANDLOCK_ACCESS_FS.refer;
  if (abi >= 3) rights |= LANDLOCK_ACCESS_FS.truncate;
  if (abi >= 5) rights |= LANDLOCK_ACCESS_FS.ioctlDev;
  return rights;
}

export function networkRightsForAbi(abi: number): number {
  return abi >= 4 ? LANDLOCK_ACCESS_NET.bindTcp | LANDLOCK_ACCESS_NET.connectTcp : 0;
}

export function scopesForAbi(abi: number): number {
  return abi >= 6 ? LANDLOCK_SCOPE.abstractUnixSocket | LANDLOCK_SCOPE.signal : 0;
}

/** Read and execute: what a read grant allows. */
export const LANDLOCK_READ_RIGHTS =
  LANDLOCK_ACCESS_FS.execute | LANDLOCK_ACCESS_FS.readFile | LANDLOCK_ACCESS_FS.readDir;

/** The lowest ABI that can handle these masks. */
export function minimumAbiFor(filesystem: number, network: number, scoped: number): number {
  if (scoped) return 6;
  if (filesystem & LANDLOCK_ACCESS_FS.ioctlDev) return 5;
  if (network) return 4;
  if (filesystem & LANDLOCK_ACCESS_FS.truncate) return 3;
  if (filesystem & LANDLOCK_ACCESS_FS.refer) return 2;
  return 1;
}
