import type { ManifestV1 } from './schema.js';

/**
 * Key paths a CLI flag set, carried on the manifest `applyOverrides` returns, so that errors about
 * them say "from the command line" instead of pointing at the manifest line they replaced.
 */
export const OVERRIDDEN_KEYS: unique symbol = Symbol.for('bulkhead.manifest.overridden');

/** The `bulkhead run` flags that change a manifest. */
export interface ManifestOverrides {
  /** `--tier`: the minimum tier. */
  tier?: string;
  /** `--read`: added to `filesystem.read`. */
  read?: string[];
  /** `--write`: added to `filesystem.write`. */
  write?: string[];
  /** `--deny`: added to `filesystem.deny`. */
  deny?: string[];
  /** `--net`: `none` (no network), `open` (the internet) or endpoints (replaces the allow list). */
  network?: 'none' | 'open' | string[];
  /** `--memory`: replaces `resources.memory`. */
  memory?: string;
  /** `--timeout`: replaces `resources.timeout`. */
  timeout?: string;
  /** `--no-spawn` is `spawn: false`. */
  spawn?: boolean;
}

/**
 * The manifest with CLI flags applied the way the fields work: path flags add entries (narrow a
 * grant by naming the same path with a stronger rule: `--read .` makes the workspace read-only),
 * `--net`, `--memory`, `--timeout`, `--tier` and `--no-spawn` replace. Values are not validated here;
 * `compileManifest` validates the result, and its errors name flags as "from the command line".
 */
export function applyOverrides(manifest: ManifestV1 | undefined, overrides: ManifestOverrides): ManifestV1 {
  const base: ManifestV1 = manifest ?? { version: 1 };
  const overridden = new Set<string>((base as { [OVERRIDDEN_KEYS]?: Set<string> })[OVERRIDDEN_KEYS] ?? []);
  const result: ManifestV1 = structuredClone({ ...base });

  if (overrides.tier !== undefined) {
    result.tier = overrides.tier as ManifestV1['tier'];
    overridden.add('tier');
  }
  for (const rule of ['read', 'write', 'deny'] as const) {
    const added = overrides[rule];
    if (!added || added.length === 0) continue;
    const existing = result.filesystem?.[rule] ?? [];
    result.filesystem = { ...result.filesystem, [rule]: [...existing, ...added] };
    for (let index = 0; index < added.length; index++)
      overridden.add(`filesystem.${rule}[${existing.length + index}]`);
  }
  if (overrides.network !== undefined) {
    if (overrides.network === 'none') result.network = { internet: false };
    else if (overrides.network === 'open') result.network = { internet: true };
    else {
      result.network = { internet: false, allow: [...overrides.network] };
      for (let index = 0; index < overrides.network.length; index++)
        overridden.add(`network.allow[${index}]`);
    }
    overridden.add('network.internet');
    overridden.add('network.allow');
  }
  if (overrides.memory !== undefined || overrides.timeout !== undefined) {
    result.resources = {
      ...result.resources,
      ...(overrides.memory === undefined ? {} : { memory: overrides.memory }),
      ...(overrides.timeout === undefined ? {} : { timeout: overrides.timeout }),
    };
    if (overrides.memory !== undefined) overridden.add('resources.memory');
    if (overrides.timeout !== undefined) overridden.add('resources.timeout');
  }
  if (overrides.spawn !== undefined) {
    result.processes = { ...result.processes, spawn: overrides.spawn };
    overridden.add('processes.spawn');
  }
  Object.defineProperty(result, OVERRIDDEN_KEYS, { value: overridden, enumerable: false });
  return result;
}
