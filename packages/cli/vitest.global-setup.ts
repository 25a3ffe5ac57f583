import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const packageRoot = new URL('.', import.meta.url).pathname;

function newestSource(directory: string): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The packages the binary's bundle carries (tsup.config.ts): their builds are its sources too. */
const BUNDLED_PACKAGES = [
  '@bulkhead/core',
  '@bulkhead/manifest',
  '@bulkhead/tier-process',
  '@bulkhead/linux',
  '@bulkhead/egress',
];

function newestBundledBuild(): number {
  const require = createRequire(import.meta.url);
  let newest = 0;
  for (const name of BUNDLED_PACKAGES) {
    const built = join(dirname(require.resolve(`${name}/package.json`)), 'dist', 'index.js');
    if (existsSync(built)) newest = Math.max(newest, statSync(built).mtimeMs);
  }
  return newest;
}

/**
 * Some tests run the built `bulkhead` binary as a user would (signals, a real stdin). Build it when
 * `dist/` is missing or older than `src/` or than a build of a package its bundle carries, so that
 * those tests never exercise stale code.
 */
export default function setup(): void {
  const bundle = join(packageRoot, 'dist', 'cli-bundle.cjs');
  if (existsSync(bundle)) {
    const builtAt = statSync(bundle).mtimeMs;
    if (builtAt >= newestSource(join(packageRoot, 'src')) && builtAt >= newestBundledBuild()) return;
  }
  execFileSync('npx', ['tsup'], { cwd: packageRoot, stdio: 'inherit' });
}
