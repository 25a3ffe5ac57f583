import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capturedIo } from '../captured-io.js';
import { main } from '../main.js';
import { skipReasonOffCi } from '../process-tier-status.js';
import { standInImporter } from '../stand-in-tier.js';

let directory: string;
const cacheDirectory = process.env.BULKHEAD_CACHE_DIR;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-vm-'));
  // An empty cache: the kernel this host may have built already must not answer for the test.
  process.env.BULKHEAD_CACHE_DIR = join(directory, 'cache');
});

afterEach(async () => {
  if (cacheDirectory === undefined) delete process.env.BULKHEAD_CACHE_DIR;
  else process.env.BULKHEAD_CACHE_DIR = cacheDirectory;
  await rm(directory, { recursive: true, force: true });
});

type Importer = NonNullable<Parameters<typeof main>[2]>['importModule'];

async function build(
  argv: string[],
  options: { importer?: Importer; env?: Record<string, string>; tty?: boolean } = {},
) {
  const io = capturedIo({ cwd: directory, env: { ...process.env, NO_COLOR: '1', ...options.env } });
  if (options.tty) Object.assign(io.stderr, { isTTY: true, columns: 41 });
  const status = await main(['vm', 'kernel', 'build', ...argv], io, {
    ...(options.importer ? { importModule: options.importer } : {}),
  });
  return { status, stdout: io.output(), stderr: io.errors() };
}

/** A stand-in @bulkhead/tier-microvm whose build only reports progress (no kernel is compiled). */
function standInMicrovm(overrides: Record<string, unknown> = {}) {
  const calls: unknown[] = [];
  const importer = standInImporter({
    '@bulkhead/tier-microvm': {
      MICROVM_HOST_REQUIREMENTS: [],
      findGuestKernel: () => undefined,
      buildGuestKernel: async (options: { jobs?: number; onProgress: (progress: unknown) => void }) => {
        calls.push(options.jobs);
        options.onProgress({ phase: 'extract', message: 'unpacking linux-source-6.1.tar.xz' });
        options.onProgress({ phase: 'compile', message: 'CC kernel/fork.o', fraction: 0.5 });
        options.onProgress({ phase: 'compile', message: 'CC kernel/exit.o', fraction: 0.75 });
        options.onProgress({ phase: 'done', message: 'guest kernel built' });
        return { path: '/cache/kernels/abc/vmlinux' };
      },
      ...overrides,
    },
  });
  return { importer, calls };
}

describe('bulkhead vm kernel build', () => {
  it('says to install @bulkhead/tier-microvm when it is not installed', async () => {
    const result = await build([], { importer: standInImporter({}) });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('The micro-VM tier is not installed');
    expect(result.stderr).toContain('fix: npm i @bulkhead/tier-microvm');
  });

  it('refuses before building, naming the packages, when the build tools are missing', async () => {
    // The real tier and its declared requirements, on a PATH where no build tool can be found.
    const result = await build([], { env: { PATH: join(directory, 'empty-path') } });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('The guest kernel cannot be built: make, flex, bison, bc');
    expect(result.stderr).toMatch(/^fix: apt-get install make flex bison bc .*xz-utils/m);
    expect(await readdir(directory)).toEqual([]);
  });

  // The cache key is the source package's version: without the source there is no key to look up.
  // Setup installs it (linux-source-6.1), so on CI its absence fails instead of skipping.
  it.skipIf(
    skipReasonOffCi(
      existsSync('/usr/src/linux-source-6.1.tar.xz') ? undefined : 'linux-source-6.1 is not installed',
    ) !== undefined,
  )('prints the cached kernel at once, building nothing, when it was built before', async () => {
    const { guestKernelLocation } = await import('@bulkhead/tier-microvm');
    const kernel = guestKernelLocation({ cacheDirectory: join(directory, 'cache') });
    await mkdir(dirname(kernel.path), { recursive: true });
    await writeFile(kernel.path, 'a kernel');
    const result = await build([], { env: { PATH: join(directory, 'empty-path') } });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${kernel.path}\n`);
    expect(result.stderr).toContain('already built');
  });

  it('shows progress as plain lines when stderr is not a terminal, and the path on stdout', async () => {
    const { importer, calls } = standInMicrovm({ formatKernelProgress: undefined });
    const result = await build(['--jobs', '3'], { importer });
    expect(result.status).toBe(0);
    expect(calls).toEqual([3]);
    expect(result.stdout).toBe('/cache/kernels/abc/vmlinux\n');
    expect(result.stderr).toBe(
      [
        '[extract] unpacking linux-source-6.1.tar.xz',
        '[compile] 50% CC kernel/fork.o',
        '[compile] 75% CC kernel/exit.o',
        '[done] guest kernel built',
        '',
      ].join('\n'),
    );
  });

  it('rewrites one line in place while compiling on a terminal', async () => {
    const { importer } = standInMicrovm({ formatKernelProgress: undefined });
    const result = await build([], { importer, tty: true });
    expect(result.stderr).toBe(
      `[extract] unpacking linux-source-6.1.tar.xz\n\r${'[compile] 50% CC kernel/fork.o'.padEnd(40)}\r${'[compile] 75% CC kernel/exit.o'.padEnd(40)}\n[done] guest kernel built\n`,
    );
  });

  it('prints the build error with its fix, and exits 1', async () => {
    const { importer } = standInMicrovm({
      buildGuestKernel: async () => {
        throw new BulkheadError(
          'HOST_REQUIREMENT_MISSING',
          'No kernel source to build the guest kernel from.',
          {
            tier: 'microvm',
            fix: 'apt-get install linux-source-6.1',
          },
        );
      },
    });
    const result = await build([], { importer });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('bulkhead: No kernel source to build the guest kernel from.');
    expect(result.stderr).toContain('fix: apt-get install linux-source-6.1');
  });

  it('refuses a --jobs that is not a positive whole number', async () => {
    const { importer, calls } = standInMicrovm();
    const result = await build(['--jobs', 'many'], { importer });
    expect(result.status).toBe(2);
    expect(calls).toEqual([]);
  });
});
