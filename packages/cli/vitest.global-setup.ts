import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const packageRoot = new URL('.', import.meta.url).pathname;

function newestSource(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Some tests run the built `bulkhead` binary as a user would (signals, a real stdin). Build it when
 * `dist/` is missing or older than `src/`, so that those tests never exercise stale code.
 */
export default function setup(): void {
  const cli = join(packageRoot, 'dist', 'cli.js');
  if (existsSync(cli) && statSync(cli).mtimeMs >= newestSource(join(packageRoot, 'src'))) return;
  execFileSync('npx', ['tsup'], { cwd: packageRoot, stdio: 'inherit' });
}
