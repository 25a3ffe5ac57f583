// Builds the static attack helper into dist/native, with its source beside it so that an installed
// package can rebuild it on a host where the prebuilt binary does not run.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'attack.c');
const output = join(root, 'dist', 'native');
mkdirSync(output, { recursive: true });
const temporary = join(output, `bulkhead-attack.${process.pid}.tmp`);
try {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', temporary, source], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
} catch (error) {
  const stderr = error.stderr?.toString() ?? '';
  console.error(
    error.code === 'ENOENT'
      ? 'build-native: gcc is missing. Fix: apt-get install gcc libc6-dev'
      : `build-native: gcc -static failed:\n${stderr}`,
  );
  process.exit(1);
}
// ensureAttackHelper() takes a binary older than its source for stale: copy the source first, then
// date the binary after it.
copyFileSync(source, join(output, 'attack.c'));
const now = new Date();
utimesSync(temporary, now, now);
renameSync(temporary, join(output, 'bulkhead-attack'));
