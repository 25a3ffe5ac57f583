import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BulkheadError } from '@bulkhead/core';

const execFileAsync = promisify(execFile);

/** The benchmarks package's folder, from src/ (tests) or dist/ (the bench). */
export const packageDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Compiles native/workload.c with the system C compiler into a content-addressed file under
 * .cache/, world-readable and executable so that a sandbox running as another uid can run it.
 */
export async function buildWorkload(): Promise<string> {
  const source = path.join(packageDirectory, 'native/workload.c');
  const text = await readFile(source);
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 12);
  const directory = path.join(packageDirectory, '.cache');
  const binary = path.join(directory, `workload-${digest}`);
  try {
    await stat(binary);
    return binary;
  } catch {
    // Not built yet.
  }
  await mkdir(directory, { recursive: true, mode: 0o755 });
  await chmod(directory, 0o755);
  const temporary = `${binary}.${process.pid}.tmp`;
  try {
    await execFileAsync('cc', ['-O2', '-Wall', '-o', temporary, source], { timeout: 60_000 });
  } catch (error) {
    throw new BulkheadError(
      'HOST_REQUIREMENT_MISSING',
      `Cannot compile the benchmark workload: ${(error as Error).message}`,
      {
        path: source,
        fix: 'apt-get install gcc',
      },
    );
  }
  await chmod(temporary, 0o755);
  await rename(temporary, binary);
  return binary;
}
