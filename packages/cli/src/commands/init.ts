import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { starterManifest } from '@bulkhead/manifest';
import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS } from '../exit-status.js';
import { printError, writeLine } from '../io.js';
import { DEFAULT_MANIFEST_FILE } from '../manifest-input.js';

const EXAMPLES = `
Examples:
  $ bulkhead init              write ./bulkhead.yaml (refuses to overwrite one)
  $ bulkhead init --force      overwrite it
  $ bulkhead manifest explain bulkhead.yaml   see what it compiles to`;

export function registerInitCommand(program: Command, context: CommandContext): void {
  program
    .command('init')
    .summary(`write a commented starter ${DEFAULT_MANIFEST_FILE}`)
    .description(
      `Write a commented starter ${DEFAULT_MANIFEST_FILE} in the current directory: the built-in defaults spelled out, ` +
        'with each field explained. `bulkhead run` picks it up from there.',
    )
    .option('-f, --force', `overwrite an existing ${DEFAULT_MANIFEST_FILE}`)
    .addHelpText('after', EXAMPLES)
    .action(async (options: { force?: boolean }) => {
      const { io } = context;
      const path = resolve(io.cwd, DEFAULT_MANIFEST_FILE);
      try {
        // `wx` refuses atomically when the file exists, rather than checking first and racing.
        await writeFile(path, starterManifest(), { flag: options.force ? 'w' : 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        printError(
          io,
          new BulkheadError('MANIFEST_EXISTS', `${path} already exists; init leaves it as it is.`, {
            path,
            fix: 'bulkhead init --force to overwrite it, or edit it',
          }),
        );
        context.exitStatus = EXIT_STATUS.failure;
        return;
      }
      writeLine(io.stdout, `wrote ${path}`);
      writeLine(
        io.stdout,
        `next: edit it, check it with \`bulkhead manifest explain ${DEFAULT_MANIFEST_FILE}\`, then \`bulkhead run -- <command>\``,
      );
    });
}
