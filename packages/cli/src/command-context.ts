import type { CliIo } from './io.js';
import type { ModuleImporter } from './tiers.js';

/** What every command gets from `main()`, and where it leaves its exit status. */
export interface CommandContext {
  io: CliIo;
  exitStatus: number;
  /** How tier packages are imported; a seam so a test can stand in for a missing package. */
  importModule?: ModuleImporter;
}

/** Collects a repeatable option (`--read a --read b`) into a list. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
