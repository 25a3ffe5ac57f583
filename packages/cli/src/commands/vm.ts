import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { type Command, InvalidArgumentError } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS } from '../exit-status.js';
import { type CliIo, printError, writeLine } from '../io.js';

const MICROVM_PACKAGE = '@bulkhead/tier-microvm';

/** What `vm kernel build` uses of @bulkhead/tier-microvm (its guest-kernel API). */
interface GuestKernelProgress {
  phase: string;
  message: string;
  fraction?: number;
}
interface MicrovmKernelModule {
  buildGuestKernel(options: {
    jobs?: number;
    onProgress?: (progress: GuestKernelProgress) => void;
  }): Promise<{ path: string }>;
  findGuestKernel?: () => { path: string } | undefined;
  formatKernelProgress?: (progress: GuestKernelProgress) => string;
  MICROVM_HOST_REQUIREMENTS?: readonly { program: string; debianPackage: string; when: string }[];
}

const EXAMPLES = `
Examples:
  $ apt-get install linux-source-6.1 make flex bison bc libelf-dev libssl-dev xz-utils
  $ bulkhead vm kernel build              build once (minutes), cached afterwards; prints the kernel's path
  $ bulkhead vm kernel build --jobs 2     at most 2 compile jobs at a time`;

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1)
    throw new InvalidArgumentError('expected a whole number of 1 or more');
  return parsed;
}

function isModuleNotFound(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(MICROVM_PACKAGE)
  );
}

async function loadMicrovm(context: CommandContext): Promise<MicrovmKernelModule> {
  let module: Record<string, unknown>;
  try {
    module = await (context.importModule ?? ((specifier) => import(specifier)))(MICROVM_PACKAGE);
  } catch (error) {
    if (!isModuleNotFound(error)) throw error;
    throw new BulkheadError(
      'TIER_UNAVAILABLE',
      `The micro-VM tier is not installed, and its guest kernel is what this command builds.`,
      { tier: 'microvm', fix: `npm i ${MICROVM_PACKAGE}` },
    );
  }
  if (typeof module.buildGuestKernel !== 'function') {
    throw new BulkheadError(
      'TIER_UNAVAILABLE',
      `The installed ${MICROVM_PACKAGE} has no buildGuestKernel(): it is a version this CLI does not know.`,
      { tier: 'microvm', fix: `install versions of bulkhead and ${MICROVM_PACKAGE} that agree` },
    );
  }
  return module as unknown as MicrovmKernelModule;
}

function present(program: string, env: CliIo['env']): boolean {
  if (program.startsWith('/')) return existsSync(program);
  for (const folder of (env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (!folder.startsWith('/')) continue;
    try {
      accessSync(join(folder, program), constants.X_OK);
      return true;
    } catch {
      // Not in this folder.
    }
  }
  return false;
}

/**
 * Refuses before anything is unpacked when a build tool the tier declares is missing: the build would
 * otherwise fail minutes in. The kernel source itself is found (any linux-source version) by the build.
 */
function assertBuildTools(module: MicrovmKernelModule, env: CliIo['env']): void {
  const missing = (module.MICROVM_HOST_REQUIREMENTS ?? []).filter(
    (requirement) =>
      requirement.when === 'kernel-build' &&
      !requirement.debianPackage.startsWith('linux-source') &&
      !present(requirement.program, env),
  );
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((requirement) => requirement.debianPackage))];
  throw new BulkheadError(
    'HOST_REQUIREMENT_MISSING',
    `The guest kernel cannot be built: ${missing.map((requirement) => requirement.program).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing.`,
    { tier: 'microvm', fix: `apt-get install ${packages.join(' ')}` },
  );
}

/** Progress on stderr: one line rewritten in place on a terminal while compiling, plain lines otherwise. */
function progressPrinter(io: CliIo, format: (progress: GuestKernelProgress) => string) {
  const stderr = io.stderr as CliIo['stderr'] & { columns?: number };
  let lineOpen = false;
  return {
    report(progress: GuestKernelProgress) {
      const line = format(progress);
      if (stderr.isTTY && progress.phase === 'compile') {
        const width = Math.max(20, (stderr.columns ?? 100) - 1);
        stderr.write(`\r${line.slice(0, width).padEnd(width)}`);
        lineOpen = true;
        return;
      }
      if (lineOpen) stderr.write('\n');
      lineOpen = false;
      writeLine(stderr, line);
    },
    close() {
      if (lineOpen) stderr.write('\n');
      lineOpen = false;
    },
  };
}

const plainProgress = (progress: GuestKernelProgress) =>
  progress.fraction === undefined
    ? `[${progress.phase}] ${progress.message}`
    : `[${progress.phase}] ${Math.floor(progress.fraction * 100)}% ${progress.message}`;

export function registerVmCommand(program: Command, context: CommandContext): void {
  const vm = program
    .command('vm')
    .summary("the micro-VM tier's guest (needs @bulkhead/tier-microvm)")
    .description("Work with the micro-VM tier's guest kernel.")
    .addHelpText('after', EXAMPLES);
  const kernel = vm
    .command('kernel')
    .summary('the guest kernel')
    .description("The micro-VM tier's guest kernel.")
    .addHelpText('after', EXAMPLES);
  kernel
    .command('build')
    .summary('build the guest kernel into the cache')
    .description(
      "Build the micro-VM tier's minimal guest kernel from the distribution's kernel source " +
        "(/usr/src/linux-source-*.tar.xz) and the tier's config fragment, into a content-addressed cache " +
        '($BULKHEAD_CACHE_DIR, else ~/.cache/bulkhead/kernels/<sha256>/vmlinux). Takes minutes (about 5.5 on ' +
        'two cores); a kernel already built for the same source and fragment is reused at once. Progress goes to ' +
        "stderr, the kernel's path to stdout.",
    )
    .option('-j, --jobs <count>', 'parallel compile jobs (default: the CPUs available)', positiveInteger)
    .addHelpText('after', EXAMPLES)
    .action(async (options: { jobs?: number }) => {
      const { io } = context;
      let printer: ReturnType<typeof progressPrinter> | undefined;
      try {
        const microvm = await loadMicrovm(context);
        const cached = microvm.findGuestKernel?.();
        if (cached) {
          writeLine(io.stderr, `bulkhead: the guest kernel is already built (cached): ${cached.path}`);
          writeLine(io.stdout, cached.path);
          return;
        }
        assertBuildTools(microvm, io.env);
        const lines = progressPrinter(io, microvm.formatKernelProgress ?? plainProgress);
        printer = lines;
        const built = await microvm.buildGuestKernel({
          ...(options.jobs === undefined ? {} : { jobs: options.jobs }),
          onProgress: (report) => lines.report(report),
        });
        lines.close();
        writeLine(io.stdout, built.path);
      } catch (error) {
        printer?.close();
        printError(io, error);
        context.exitStatus = EXIT_STATUS.failure;
      }
    });
}
