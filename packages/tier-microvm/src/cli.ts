#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BulkheadError } from '@bulkhead/core';
import { buildGuestKernel, formatKernelProgress } from './guest-kernel.js';

const USAGE = `Usage: bulkhead-vm kernel build [--jobs N]

Builds the micro-VM tier's guest kernel from /usr/src/linux-source-*.tar.xz and the package's
config fragment into ~/.cache/bulkhead/kernels/<sha256>/vmlinux (minutes; cached afterwards).

Example:
  apt-get install linux-source-6.1 flex bison bc libelf-dev libssl-dev
  bulkhead-vm kernel build
`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { jobs: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals[0] !== 'kernel' || positionals[1] !== 'build') {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const interactive = process.stderr.isTTY;
  try {
    const kernel = await buildGuestKernel({
      ...(values.jobs === undefined ? {} : { jobs: Number(values.jobs) }),
      onProgress: (progress) => {
        const line = formatKernelProgress(progress);
        if (interactive && progress.phase === 'compile')
          process.stderr.write(`\r${line.slice(0, 110).padEnd(110)}`);
        else process.stderr.write(`${interactive ? '\n' : ''}${line}\n`);
      },
    });
    process.stdout.write(`${kernel.path}\n`);
    return 0;
  } catch (error) {
    if (BulkheadError.isInstance(error)) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

function invokedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
