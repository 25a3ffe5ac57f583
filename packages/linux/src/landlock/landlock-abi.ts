import { landlockCreateRulesetVersion } from '../kernel/libc.js';

let cached: number | undefined;

/**
 * The Landlock ABI version the running kernel offers (1-7 today), or 0 when Landlock is not built
 * in or not enabled. Probed once per process through `landlock_create_ruleset(NULL, 0, VERSION)`.
 */
export function landlockAbi(): number {
  if (cached === undefined) {
    try {
      cached = process.platform === 'linux' ? landlockCreateRulesetVersion() : 0;
    } catch {
      // No FFI on this platform: no Landlock either.
      cached = 0;
    }
  }
  return cached;
}
