import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  applyOverrides,
  type CompiledManifest,
  compileManifest,
  loadManifest,
  loadPolicy,
  type ManifestDocument,
  type ManifestOverrides,
} from '@bulkhead/manifest';
import type { CliIo } from './io.js';

/** The manifest file the CLI looks for in the current directory when none is named. */
export const DEFAULT_MANIFEST_FILE = 'bulkhead.yaml';

export type { CompiledManifest, ManifestOverrides };

export interface ManifestSource {
  /** Where the manifest came from: a named file, `./bulkhead.yaml`, or the built-in default. */
  origin: 'option' | 'directory' | 'default';
  path?: string;
  document?: ManifestDocument;
}

/** `-m FILE`, else `./bulkhead.yaml` when present, else the built-in default manifest. */
export async function findManifest(io: CliIo, file?: string): Promise<ManifestSource> {
  if (file !== undefined) {
    const path = resolve(io.cwd, file);
    return { origin: 'option', path, document: await loadManifest(path) };
  }
  const path = resolve(io.cwd, DEFAULT_MANIFEST_FILE);
  if (existsSync(path)) return { origin: 'directory', path, document: await loadManifest(path) };
  return { origin: 'default' };
}

export function describeManifestSource(source: ManifestSource): string {
  switch (source.origin) {
    case 'option':
      return `manifest ${source.path}`;
    case 'directory':
      return `manifest ${source.path} (found in the current directory)`;
    default:
      return `the built-in default manifest (no -m and no ./${DEFAULT_MANIFEST_FILE})`;
  }
}

/**
 * Compiles a manifest the way every command does: the flags narrow or extend it like its own fields,
 * then the organisation's policy (`/etc/bulkhead/policy.yaml` or `$BULKHEAD_POLICY`) is the ceiling.
 */
export async function compileForHost(
  io: CliIo,
  source: ManifestSource,
  overrides?: ManifestOverrides,
): Promise<CompiledManifest> {
  const policy = await loadPolicy(undefined, io.env);
  const { document } = source;
  // Flags replace fields of the parsed document, which keeps locating the fields they did not touch.
  const input =
    overrides === undefined
      ? document
      : document
        ? { ...document, manifest: applyOverrides(document.manifest, overrides) }
        : applyOverrides(undefined, overrides);
  return compileManifest(input, {
    cwd: io.cwd,
    ...(source.path ? { baseDir: dirname(source.path) } : {}),
    env: io.env,
    ...(io.env.HOME ? { home: io.env.HOME } : {}),
    policy,
  });
}
