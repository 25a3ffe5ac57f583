import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { CommandContext } from './command-context.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerInitCommand } from './commands/init.js';
import { registerManifestCommand } from './commands/manifest.js';
import { registerRunCommand } from './commands/run.js';
import { registerVmCommand } from './commands/vm.js';
import { EXIT_STATUS } from './exit-status.js';
import { type CliIo, colorsFor, printError } from './io.js';
import type { ModuleImporter } from './tiers.js';

export interface MainOptions {
  /** How tier packages are imported (default: `import()`); a seam for tests. */
  importModule?: ModuleImporter;
}

/** The version of this package; `src/` and `dist/` both sit one level below package.json. */
function packageVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

/** The real process's streams, environment and directory. */
export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
  };
}

const EXAMPLES = `
Examples:
  $ bulkhead run -- ls -la               run a command on the default manifest (or ./bulkhead.yaml)
  $ bulkhead doctor                      which tiers work here, and what enforces each capability
  $ bulkhead init                        write a commented starter bulkhead.yaml
  $ bulkhead manifest explain bulkhead.yaml
  $ bulkhead vm kernel build             build the micro-VM tier's guest kernel (once, cached)
  $ bulkhead <command> --help            usage and examples of one command`;

export function createProgram(context: CommandContext): Command {
  const { io } = context;
  const program = new Command('bulkhead');
  program
    .description(
      'Run AI agents and their tool calls in kernel-enforced sandboxes, described by one manifest.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => {
        const colors = colorsFor(io.stderr, io.env);
        write(`${colors.red(colors.bold('bulkhead:'))} ${text.replace(/^error: /, '')}`);
      },
      getOutHelpWidth: () => (io.stdout as { columns?: number }).columns ?? 100,
      getErrHelpWidth: () => (io.stderr as { columns?: number }).columns ?? 100,
      getOutHasColors: () => colorsFor(io.stdout, io.env).isColorSupported,
      getErrHasColors: () => colorsFor(io.stderr, io.env).isColorSupported,
    })
    .showHelpAfterError('fix: see the usage and examples with --help')
    .addHelpText('after', EXAMPLES);
  registerRunCommand(program, context);
  registerDoctorCommand(program, context);
  registerManifestCommand(program, context);
  registerInitCommand(program, context);
  registerVmCommand(program, context);
  registerBenchCommand(program, context);
  return program;
}

/**
 * Runs the CLI with `argv` (without `node` and the script) against `io`, and resolves to the exit
 * status. It never calls `process.exit`, so tests and embedders can call it in-process.
 */
export async function main(
  argv: readonly string[],
  io: CliIo = processIo(),
  options: MainOptions = {},
): Promise<number> {
  const context: CommandContext = {
    io,
    exitStatus: EXIT_STATUS.ok,
    ...(options.importModule ? { importModule: options.importModule } : {}),
  };
  // `run` keeps 125 for its own failures so that they are never mistaken for the command's status.
  const ownFailure =
    argv.find((argument) => !argument.startsWith('-')) === 'run'
      ? EXIT_STATUS.bulkheadFailure
      : EXIT_STATUS.usage;
  try {
    await createProgram(context).parseAsync([...argv], { from: 'user' });
    return context.exitStatus;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_STATUS.ok : ownFailure;
    printError(io, error);
    return ownFailure === EXIT_STATUS.usage ? EXIT_STATUS.failure : ownFailure;
  }
}
