import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { defaultCacheDirectory } from './cache-directory.js';
import { type CpioEntry, createCpioArchive } from './cpio.js';
import { packageFile } from './package-files.js';

export const GUEST_INIT_SOURCE = 'native/guest-init.c';

/** Statically linked busybox from Debian's busybox-static: a shell inside the guest for debugging. */
const BUSYBOX = '/bin/busybox';

function sha256(...parts: (string | Uint8Array)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('hex');
}

async function writeAtomically(path: string, data: Uint8Array, mode: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, data, { mode });
  await rename(temporary, path);
}

/**
 * The guest's init, compiled with `gcc -static` from the package's C source into the cache (once
 * per source and compiler). The published package ships the source: the init must match the host's
 * idea of the control protocol exactly, and a compiler is part of the tier's host requirements.
 */
export async function ensureGuestInit(cacheDirectory = defaultCacheDirectory()): Promise<string> {
  const sourcePath = packageFile(GUEST_INIT_SOURCE);
  const source = readFileSync(sourcePath);
  const compiler = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (compiler.status !== 0) {
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      'The micro-VM tier compiles its guest init with gcc, and gcc is not installed.',
      { tier: 'microvm', fix: 'apt-get install gcc libc6-dev' },
    );
  }
  const path = join(cacheDirectory, 'init', sha256(source, compiler.stdout), 'init');
  if (existsSync(path)) return path;
  await mkdir(join(path, '..'), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  const build = spawnSync('gcc', ['-static', '-Os', '-s', '-Wall', '-o', temporary, sourcePath], {
    encoding: 'utf8',
  });
  if (build.status !== 0) {
    await rm(temporary, { force: true });
    throw new BulkheadError('GUEST_INIT_BUILD_FAILED', `Compiling the guest init failed:\n${build.stderr}`, {
      tier: 'microvm',
      fix: 'install the static C library: apt-get install libc6-dev',
    });
  }
  await rename(temporary, path);
  return path;
}

export interface InitramfsOptions {
  cacheDirectory?: string;
  /** Extra static programs to place in the guest under /.bulkhead/bin (e.g. an attack helper). */
  programs?: Record<string, string>;
}

/** The initramfs (newc cpio) with the init, busybox and any extra programs, cached by content. */
export async function ensureInitramfs(options: InitramfsOptions = {}): Promise<string> {
  const cacheDirectory = options.cacheDirectory ?? defaultCacheDirectory();
  const init = await readFile(await ensureGuestInit(cacheDirectory));
  const programs: [string, Buffer][] = [];
  if (existsSync(BUSYBOX)) programs.push(['busybox', await readFile(BUSYBOX)]);
  for (const [name, path] of Object.entries(options.programs ?? {}))
    programs.push([name, await readFile(path)]);
  const entries: CpioEntry[] = [
    { path: 'dev', type: 'directory', mode: 0o755 },
    { path: 'proc', type: 'directory', mode: 0o755 },
    { path: 'sys', type: 'directory', mode: 0o755 },
    { path: 'tmp', type: 'directory', mode: 0o1777 },
    { path: '.bulkhead', type: 'directory', mode: 0o755 },
    { path: '.bulkhead/bin', type: 'directory', mode: 0o755 },
    // Bound over denied files inside the guest: empty and unreadable.
    { path: '.bulkhead/empty', type: 'file', mode: 0o000, data: new Uint8Array() },
    { path: 'init', type: 'file', mode: 0o755, data: init },
    ...programs.map(
      ([name, data]): CpioEntry => ({ path: `.bulkhead/bin/${name}`, type: 'file', mode: 0o755, data }),
    ),
  ];
  const archive = createCpioArchive(entries);
  const path = join(cacheDirectory, 'initramfs', sha256(archive), 'initramfs.cpio');
  if (!existsSync(path)) await writeAtomically(path, archive, 0o644);
  return path;
}
