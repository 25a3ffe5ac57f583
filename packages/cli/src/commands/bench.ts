import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS, signalExitStatus } from '../exit-status.js';
import { writeLine } from '../io.js';

/** The Bulkhead repository around `start`, found by its benchmarks package. */
export function findRepository(start: string): string | undefined {
  let directory = start;
  for (;;) {
    const manifest = join(directory, 'benchmarks', 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === '@bulkhead/benchmarks')
          return directory;
      } catch {
        // Not ours; keep looking upwards.
      }
    }
    const parent = dirname(directory);
    if (parent === directory) return undefined;
    directory = parent;
  }
}

const EXAMPLES = `
Examples:
  $ bulkhead bench                     inside a clone of the Bulkhead repository: npm run bench
  $ bulkhead bench -- --quick          the quick mode CI runs
  $ bulkhead bench -- --only launch    only the launch figures`;

export function registerBenchCommand(program: Command, context: CommandContext): void {
  program
    .command('bench')
    .summary('run the benchmarks (from a clone of the Bulkhead repository)')
    .description(
      'The benchmarks are a private package of the Bulkhead repository (they install the peers they compare ' +
        'against), so they are not part of this CLI. Inside a clone of the repository this runs `npm run bench` ' +
        'there, passing the arguments on; elsewhere it says how to get them.',
    )
    .argument('[arguments...]', 'passed on to npm run bench')
    .allowUnknownOption()
    .addHelpText('after', EXAMPLES)
    .action(async (benchArguments: string[]) => {
      const { io } = context;
      const repository = findRepository(io.cwd) ?? findRepository(dirname(fileURLToPath(import.meta.url)));
      if (!repository) {
        writeLine(
          io.stderr,
          'bulkhead: the benchmarks are not part of the published CLI; they live in the Bulkhead repository.',
        );
        writeLine(io.stderr, 'fix: clone the Bulkhead repository, then run there: npm ci && npm run bench');
        context.exitStatus = EXIT_STATUS.failure;
        return;
      }
      writeLine(io.stderr, `bulkhead: running npm run bench in ${repository}`);
      context.exitStatus = await new Promise<number>((resolvePromise) => {
        const child = spawn('npm', ['run', 'bench', '--', ...benchArguments], {
          cwd: repository,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.stdout.pipe(io.stdout, { end: false });
        child.stderr.pipe(io.stderr, { end: false });
        child.once('error', (error) => {
          writeLine(io.stderr, `bulkhead: could not start npm: ${error.message}`);
          writeLine(io.stderr, 'fix: install Node.js with npm, then run npm run bench in the repository');
          resolvePromise(EXIT_STATUS.failure);
        });
        child.once('close', (code, signal) =>
          resolvePromise(code ?? (signal ? signalExitStatus(signal) : EXIT_STATUS.failure)),
        );
      });
    });
}
