import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

/** Where an installed package's package.json lies. */
export function packageManifestPath(name: string): string {
  return require.resolve(`${name}/package.json`);
}

/** The version field of an installed package, read from its package.json. */
export async function packageVersion(name: string): Promise<string | undefined> {
  try {
    const manifestPath = packageManifestPath(name);
    return (JSON.parse(await readFile(manifestPath, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** First line a command prints with `--version`, or undefined when it is not installed. */
export async function commandVersion(file: string, args = ['--version']): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(file, args, { timeout: 10_000 });
    return stdout.split('\n')[0]?.trim() || undefined;
  } catch {
    return undefined;
  }
}
