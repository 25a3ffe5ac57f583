import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, constants, copyFile, mkdir, readFile, rename, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BulkheadError } from '@bulkhead/core';

const run = promisify(execFile);

/** File name of the static attack helper inside its directory. */
export const ATTACK_HELPER_NAME = 'bulkhead-attack';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Where the source and the prebuilt binary live: from `src/` during development (`../native`,
 * `../dist/native`), from the bundle after a build (`./native` holds both, the build copies the source).
 */
function packageLocations(): { sources: string[]; binaries: string[] } {
  return {
    sources: [join(here, 'native', 'attack.c'), join(here, '..', 'native', 'attack.c')],
    binaries: [
      join(here, 'native', ATTACK_HELPER_NAME),
      join(here, '..', 'dist', 'native', ATTACK_HELPER_NAME),
    ],
  };
}

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** Path of the attack helper's C source shipped with this package. */
export async function attackHelperSource(): Promise<string> {
  for (const source of packageLocations().sources) {
    if (await exists(source)) return source;
  }
  throw new BulkheadError(
    'INTERNAL_ERROR',
    'The source of the conformance attack helper (native/attack.c) is missing from @bulkhead/conformance. Fix: reinstall the package.',
  );
}

/**
 * Compiles the helper with `gcc -static -O2` into `output`, atomically: concurrent test files may ask
 * for it at the same time.
 */
export async function compileAttackHelper(source: string, output: string): Promise<void> {
  await mkdir(dirname(output), { recursive: true });
  const temporary = `${output}.${process.pid}.tmp`;
  try {
    await run('gcc', ['-static', '-O2', '-Wall', '-o', temporary, source]);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      missing
        ? 'Cannot build the conformance attack helper: gcc is not installed. The helper is a static C program so that it runs in any sandbox, even one without a libc.'
        : `Cannot build the conformance attack helper with gcc -static: ${(error as { stderr?: string }).stderr ?? String(error)}`,
      { fix: 'apt-get install gcc libc6-dev', path: source, cause: error },
    );
  }
  await rename(temporary, output);
}

async function isFresh(binary: string, source: string): Promise<boolean> {
  if (!(await exists(binary, constants.X_OK))) return false;
  const [binaryStat, sourceStat] = await Promise.all([stat(binary), stat(source)]);
  return binaryStat.mtimeMs >= sourceStat.mtimeMs;
}

export interface EnsureAttackHelperOptions {
  /**
   * Directory to hold the helper (it is compiled there when missing). The suite grants this directory
   * read access in every sandbox it launches, so keep it free of anything else. Default: the package's
   * `dist/native`, or a per-user cache under the temporary directory when that is not writable.
   */
  directory?: string;
}

/**
 * Returns the absolute path of the static attack helper (`bulkhead-attack`), compiling it with gcc when
 * the package build did not (so that `vitest run` works without a build).
 */
export async function ensureAttackHelper(options: EnsureAttackHelperOptions = {}): Promise<string> {
  const source = await attackHelperSource();
  if (options.directory) {
    const binary = join(options.directory, ATTACK_HELPER_NAME);
    if (!(await isFresh(binary, source))) await compileAttackHelper(source, binary);
    return binary;
  }
  const { binaries } = packageLocations();
  for (const binary of binaries) {
    if (await isFresh(binary, source)) return binary;
  }
  // Build next to the package when we may write there; an unprivileged user of a root-owned checkout
  // gets a cache of its own, named by the source's digest so a changed source is rebuilt.
  const packageBinary = binaries[binaries.length - 1]!;
  // The package root, not dist/: a checkout that was never built has no dist yet.
  const packageDirectory = dirname(dirname(dirname(packageBinary)));
  if (await exists(packageDirectory, constants.W_OK)) {
    try {
      await compileAttackHelper(source, packageBinary);
      return packageBinary;
    } catch (error) {
      // gcc itself failing is final; only a directory we may not write falls back to the cache.
      if (BulkheadError.isInstance(error)) throw error;
    }
  }
  const digest = createHash('sha256')
    .update(await readFile(source))
    .digest('hex')
    .slice(0, 16);
  const uid = process.getuid?.() ?? 'user';
  const cached = join(tmpdir(), `bulkhead-conformance-helper-${uid}`, digest, ATTACK_HELPER_NAME);
  if (!(await exists(cached, constants.X_OK))) await compileAttackHelper(source, cached);
  return cached;
}

/** Copies the helper's source next to a built binary so that a published package can rebuild it. */
export async function copyAttackHelperSource(source: string, directory: string): Promise<void> {
  await mkdir(directory, { recursive: true });
  await copyFile(source, join(directory, 'attack.c'));
}
