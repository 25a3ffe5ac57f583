import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where built kernels, init binaries and boot probes are kept: `$BULKHEAD_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/bulkhead`, else `~/.cache/bulkhead`.
 */
export function defaultCacheDirectory(): string {
  if (process.env.BULKHEAD_CACHE_DIR) return process.env.BULKHEAD_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'bulkhead');
}
