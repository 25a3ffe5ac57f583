import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A file shipped with the package (the kernel fragment, the init's C source). The build copies them
 * into `dist/`; from the sources (vitest's `development` condition) they sit one folder up.
 */
export function packageFile(relativePath: string): string {
  for (const candidate of [`./${relativePath}`, `../${relativePath}`]) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  return fileURLToPath(new URL(`../${relativePath}`, import.meta.url));
}
