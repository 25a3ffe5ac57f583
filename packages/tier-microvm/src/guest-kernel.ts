import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { defaultCacheDirectory } from './cache-directory.js';
import { packageFile } from './package-files.js';

/** The config fragment this package owns, merged over `make tinyconfig`. */
export const GUEST_KERNEL_FRAGMENT = 'kernel/bulkhead-guest.config';

/** Debian's kernel source package; `apt-get install linux-source-6.1` puts the tarball in /usr/src. */
const SOURCE_DIRECTORY = '/usr/src';

export interface GuestKernelProgress {
  phase: 'extract' | 'configure' | 'compile' | 'install' | 'done';
  message: string;
  /** 0..1 within the compile phase, estimated from the objects built so far. */
  fraction?: number;
}

export interface GuestKernelOptions {
  /** Kernel source tarball (default: the newest /usr/src/linux-source-*.tar.xz). */
  source?: string;
  /** Default: `defaultCacheDirectory()`. */
  cacheDirectory?: string;
  /** Parallel make jobs (default: the CPUs available). */
  jobs?: number;
  onProgress?: (progress: GuestKernelProgress) => void;
}

export interface GuestKernel {
  /** The unpacked, PVH-bootable kernel. */
  path: string;
  /** sha256 over the source's version and the fragment: the cache key. */
  digest: string;
  /** The final `.config`, kept beside the kernel for audit. */
  configPath: string;
}

function findKernelSource(): string {
  const tarballs = existsSync(SOURCE_DIRECTORY)
    ? readdirSync(SOURCE_DIRECTORY)
        .filter((name) => /^linux-source-[\d.]+\.tar\.(xz|gz|bz2)$/.test(name))
        .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    : [];
  const newest = tarballs.at(-1);
  if (!newest) {
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      `No kernel source to build the guest kernel from: nothing matches ${SOURCE_DIRECTORY}/linux-source-*.tar.xz. The micro-VM tier builds its own minimal guest kernel from the distribution's source.`,
      {
        tier: 'microvm',
        fix: 'apt-get install linux-source-6.1 flex bison bc libelf-dev libssl-dev (or pass kernel: { path } with a PVH-bootable vmlinux)',
      },
    );
  }
  return join(SOURCE_DIRECTORY, newest);
}

/** The source's identity: its Debian package version where dpkg knows the file, else size and mtime. */
function sourceVersion(source: string): string {
  const owner = spawnSync('dpkg-query', ['-S', source], { encoding: 'utf8' });
  const name = owner.status === 0 ? owner.stdout.split(':')[0]?.trim() : undefined;
  if (name) {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format
    const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', name], { encoding: 'utf8' });
    if (version.status === 0 && version.stdout) return `${name} ${version.stdout}`;
  }
  const stat = statSync(source);
  return `${basename(source)} ${stat.size} ${stat.mtimeMs}`;
}

function fragmentText(): string {
  return readFileSync(packageFile(GUEST_KERNEL_FRAGMENT), 'utf8');
}

/** Where the kernel for this source and fragment is (or will be) cached. */
export function guestKernelLocation(
  options: Pick<GuestKernelOptions, 'source' | 'cacheDirectory'> = {},
): GuestKernel {
  const source = options.source ?? findKernelSource();
  const digest = createHash('sha256')
    .update(sourceVersion(source))
    .update('\0')
    .update(fragmentText())
    .digest('hex');
  const directory = join(options.cacheDirectory ?? defaultCacheDirectory(), 'kernels', digest);
  return { path: join(directory, 'vmlinux'), digest, configPath: join(directory, 'config') };
}

/** The cached guest kernel, or undefined when it was not built yet. */
export function findGuestKernel(
  options: Pick<GuestKernelOptions, 'source' | 'cacheDirectory'> = {},
): GuestKernel | undefined {
  try {
    const kernel = guestKernelLocation(options);
    return existsSync(kernel.path) ? kernel : undefined;
  } catch {
    return undefined;
  }
}

/** `=y` options of the fragment that the final config lacks: Kconfig dropped them for a missing dependency. */
export function missingKernelOptions(fragment: string, config: string): string[] {
  const present = new Set(config.split('\n').map((line) => line.trim()));
  return fragment
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^CONFIG_\w+=y$/.test(line) && !present.has(line));
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; onLine?: (line: string) => void },
): Promise<void> {
  return new Promise((resolve, reject) => {
    // The build is long and the machine is shared: give way to interactive work.
    const child = spawn('nice', ['-n', '10', command, ...args], {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let pending = '';
    const onData = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        options.onLine?.(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new BulkheadError(
            'GUEST_KERNEL_BUILD_FAILED',
            `Building the guest kernel failed: '${command} ${args.join(' ')}' exited with ${code}.\n${tail.join('\n')}`,
            {
              tier: 'microvm',
              fix: 'install the kernel build tools: apt-get install build-essential flex bison bc libelf-dev libssl-dev',
            },
          ),
        );
    });
  });
}

/**
 * Builds the guest kernel from the distribution's kernel source and this package's config fragment
 * into a content-addressed cache (`<cache>/kernels/<sha256>/vmlinux`). Returns at once when that
 * kernel is already cached. Takes minutes: about 5.5 on two cores.
 */
export async function buildGuestKernel(options: GuestKernelOptions = {}): Promise<GuestKernel> {
  const source = options.source ?? findKernelSource();
  const kernel = guestKernelLocation({ ...options, source });
  const report = options.onProgress ?? (() => {});
  if (existsSync(kernel.path)) {
    report({ phase: 'done', message: `guest kernel already built: ${kernel.path}` });
    return kernel;
  }
  const directory = join(kernel.path, '..');
  // A private work tree per build: concurrent builds never share files, and the rename below is atomic.
  const work = `${directory}.build-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    report({ phase: 'extract', message: `unpacking ${source}` });
    await run('tar', ['-xf', source, '--strip-components=1'], { cwd: work });
    report({ phase: 'configure', message: 'make tinyconfig + bulkhead-guest.config' });
    const fragment = fragmentText();
    await writeFile(join(work, 'bulkhead-guest.config'), fragment);
    await run('make', ['ARCH=x86_64', 'tinyconfig'], { cwd: work });
    await run('scripts/kconfig/merge_config.sh', ['-m', '.config', 'bulkhead-guest.config'], { cwd: work });
    await run('make', ['ARCH=x86_64', 'olddefconfig'], { cwd: work });
    const config = await readFile(join(work, '.config'), 'utf8');
    const missing = missingKernelOptions(fragment, config);
    if (missing.length > 0) {
      throw new BulkheadError(
        'GUEST_KERNEL_CONFIG_INCOMPLETE',
        `The guest kernel config lost options of the fragment (Kconfig dropped them for unmet dependencies): ${missing.join(', ')}. Building on would give a weaker guest than the fragment promises.`,
        { tier: 'microvm', fix: `add the dependencies of these options to ${GUEST_KERNEL_FRAGMENT}` },
      );
    }
    // A tinyconfig build compiles about 1,100 objects; the estimate only drives the progress bar.
    const expectedObjects = 1100;
    let built = 0;
    let lastReported = -1;
    await run('make', ['ARCH=x86_64', `-j${options.jobs ?? availableParallelism()}`, 'vmlinux'], {
      cwd: work,
      onLine: (line) => {
        if (!/^\s+(CC|AS|LD|AR)\s/.test(line)) return;
        built += 1;
        const fraction = Math.min(0.99, built / expectedObjects);
        const percent = Math.floor(fraction * 100);
        // The estimate stalls near the end of a long build; keep saying which object is built.
        if (percent === lastReported && built % 20 !== 0) return;
        lastReported = percent;
        report({ phase: 'compile', message: line.trim(), fraction });
      },
    });
    report({ phase: 'install', message: `caching ${kernel.path}` });
    const staging = `${directory}.staging-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    await copyFile(join(work, 'vmlinux'), join(staging, 'vmlinux'));
    await copyFile(join(work, '.config'), join(staging, 'config'));
    await writeFile(join(staging, 'source'), `${sourceVersion(source)}\n`);
    try {
      await rename(staging, directory);
    } catch (error) {
      // Another build finished first with the same inputs: theirs is as good as ours.
      await rm(staging, { recursive: true, force: true });
      if (!existsSync(kernel.path)) throw error;
    }
    report({ phase: 'done', message: `guest kernel built: ${kernel.path}` });
    return kernel;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One line of progress: a bar on a terminal, plain lines otherwise. */
export function formatKernelProgress(progress: GuestKernelProgress): string {
  if (progress.fraction === undefined) return `[${progress.phase}] ${progress.message}`;
  const width = 30;
  const filled = Math.round(progress.fraction * width);
  return `[compile] ${'#'.repeat(filled)}${'.'.repeat(width - filled)} ${Math.floor(progress.fraction * 100)}% ${progress.message}`;
}
