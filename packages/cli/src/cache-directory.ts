import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the CLI keeps what it may recompute at any time (the process tier's probe, the binary's V8
 * code cache): the per-user runtime folder, cleared at every boot, else the user's cache folder.
 */
export function cacheDirectory(env: Record<string, string | undefined>): string {
  if (env.XDG_RUNTIME_DIR?.startsWith('/')) return join(env.XDG_RUNTIME_DIR, 'bulkhead');
  const cache = env.XDG_CACHE_HOME?.startsWith('/')
    ? env.XDG_CACHE_HOME
    : join(env.HOME || homedir(), '.cache');
  return join(cache, 'bulkhead');
}
