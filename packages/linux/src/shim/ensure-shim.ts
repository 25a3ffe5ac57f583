import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BulkheadError } from '@bulkhead/core';

/** Where tiers bind-mount the shim (read-only) inside a mount namespace, so plans never name the host path. */
export const SHIM_SANDBOX_PATH = '/run/bulkhead/shim';

const SHIM_BINARY = 'bulkhead-shim';
const COMPILER_FLAGS = ['-O2', '-Wall', '-Wextra', '-Werror'];
const run = promisify(execFile);

/**
 * Declared by a bundle that carries this package's code inside another file (the `bulkhead` binary
 * does, for its start-up time): the folder where it put this package's files (`dist/native/`), since
 * the bundle's own location is not this package's.
 */
declare const __BULKHEAD_LINUX_PACKAGE_ROOT__: string | undefined;

/** The folder of this package, from `src/shim/` in development or `dist/` once built. */
function packageRoot(): string {
  if (typeof __BULKHEAD_LINUX_PACKAGE_ROOT__ === 'string') return __BULKHEAD_LINUX_PACKAGE_ROOT__;
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(directory, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === '@bulkhead/linux')
      return directory;
    const parent = dirname(directory);
    if (parent === directory) {
      throw new BulkheadError('INTERNAL_ERROR', 'The @bulkhead/linux package folder could not be found.');
    }
    directory = parent;
  }
}

async function modifiedMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

export interface BuildShimOptions {
  /** The C source, `native/bulkhead-shim.c`. */
  source: string;
  /** Where the binary goes (replaced atomically). */
  output: string;
  /** A C compiler; defaults to `$CC`, else gcc. */
  compiler?: string;
}

/**
 * Compiles the exec shim: static when the C library allows it (so it runs in a mount namespace
 * without /lib), dynamic otherwise, always with `-Wall -Wextra -Werror`.
 */
export async function buildShim(options: BuildShimOptions): Promise<void> {
  const { source, output } = options;
  const compiler = options.compiler ?? (process.env.CC || 'gcc');
  // Another process may compile at the same time: each writes its own file, and rename is atomic.
  const temporary = `${output}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const attempts = [['-static', ...COMPILER_FLAGS], COMPILER_FLAGS];
  const failures: string[] = [];
  try {
    for (const flags of attempts) {
      try {
        await run(compiler, [...flags, '-o', temporary, source]);
        await rename(temporary, output);
        return;
      } catch (error) {
        const failure = error as NodeJS.ErrnoException & { stderr?: string };
        if (failure.code === 'ENOENT') {
          throw new BulkheadError(
            'HOST_REQUIREMENT_MISSING',
            `No C compiler ('${compiler}') was found to build the exec shim. Fix: apt-get install gcc (or set CC to a C compiler).`,
            { fix: 'apt-get install gcc', details: { compiler } },
          );
        }
        // A libc without static archives (no libc6-dev static parts, musl-less hosts) links dynamically.
        failures.push(`${compiler} ${flags.join(' ')}: ${failure.stderr?.trim() || failure.message}`);
      }
    }
  } finally {
    await rm(temporary, { force: true });
  }
  throw new BulkheadError(
    'HOST_REQUIREMENT_MISSING',
    `The exec shim could not be compiled:\n${failures.join('\n')}`,
    {
      fix: 'apt-get install gcc libc6-dev',
      path: source,
    },
  );
}

const pendingBuilds = new Map<string, Promise<string>>();

/**
 * The absolute path of the exec shim binary (`dist/native/bulkhead-shim`), compiled with the system C
 * compiler (`$CC`, else gcc) when missing or older than its source. Throws `HOST_REQUIREMENT_MISSING`
 * naming `apt-get install gcc` when there is no compiler.
 */
export function ensureShim(): Promise<string> {
  return ensureNativeProgram(SHIM_BINARY);
}

/** The process spawner (`dist/native/bulkhead-spawner`, see process-spawner.ts), built like the shim. */
export function ensureSpawner(): Promise<string> {
  return ensureNativeProgram('bulkhead-spawner');
}

/** `native/<name>.c` compiled to `dist/native/<name>` when missing or older than its source. */
function ensureNativeProgram(name: string): Promise<string> {
  const existing = pendingBuilds.get(name);
  if (existing) return existing;
  const pending = (async () => {
    const root = packageRoot();
    const output = join(root, 'dist', 'native', name);
    const sourceName = `${name}.c`;
    const candidates = [join(root, 'native', sourceName), join(root, 'dist', 'native', sourceName)];
    const source = candidates.find((candidate) => existsSync(candidate));
    const builtAt = await modifiedMs(output);
    if (source === undefined) {
      if (builtAt !== undefined) return output;
      throw new BulkheadError('INTERNAL_ERROR', `Neither ${name} nor its source is in ${root}.`, {
        path: root,
      });
    }
    const sourceAt = (await modifiedMs(source)) ?? 0;
    if (builtAt !== undefined && builtAt >= sourceAt) return output;
    await mkdir(dirname(output), { recursive: true });
    await buildShim({ source, output });
    return output;
  })();
  pendingBuilds.set(name, pending);
  // A failure is not cached: the next call may find the compiler installed.
  pending.catch(() => {
    pendingBuilds.delete(name);
  });
  return pending;
}
