import { main, processIo } from './main.js';
import type { ModuleImporter } from './tiers.js';

/**
 * What the `bulkhead` binary runs. The build makes this one CommonJS file (`dist/cli-bundle.cjs`) with
 * everything a run on the process tier loads, so that `dist/cli.js` can compile it with a V8 code cache
 * (see code-cache.ts). The process tier is the CLI's own dependency and comes from the bundle; every
 * other tier is a package found at run time, imported by `importPackage` (the binary's own `import()`,
 * as this file has none of its own once bundled).
 */
export function runBundledCli(argv: readonly string[], importPackage: ModuleImporter): Promise<number> {
  const importModule: ModuleImporter = (specifier) =>
    specifier === '@bulkhead/tier-process'
      ? (import('@bulkhead/tier-process') as Promise<Record<string, unknown>>)
      : importPackage(specifier);
  return main(argv, processIo(), { importModule });
}
