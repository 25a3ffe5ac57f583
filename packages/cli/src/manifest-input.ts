import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import {
  applyOverrides,
  type CompiledManifest,
  compileManifest,
  isMxcConfig,
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

/** An MXC config given where a manifest belongs: the error says how to convert it. */
async function mxcConfigInstead(path: string, error: unknown): Promise<BulkheadError | undefined> {
  if (!BulkheadError.hasCode(error, 'MANIFEST_INVALID') || !path.endsWith('.json')) return undefined;
  try {
    if (!isMxcConfig(JSON.parse(await readFile(path, 'utf8')))) return undefined;
  } catch {
    return undefined;
  }
  return new BulkheadError(
    'MANIFEST_INVALID',
    `${path} is a Microsoft MXC config, not a Bulkhead manifest.`,
    {
      path,
      fix: `convert it once: bulkhead manifest import-mxc ${path} > bulkhead.yaml`,
      cause: error,
    },
  );
}

/** Reads a manifest file; an MXC config in its place is named as such. */
export async function loadManifestFile(path: string): Promise<ManifestDocument> {
  try {
    return await loadManifest(path);
  } catch (error) {
    throw (await mxcConfigInstead(path, error)) ?? error;
  }
}

/** `-m FILE`, else `./bulkhead.yaml` when present, else the built-in default manifest. */
export async function findManifest(io: CliIo, file?: string): Promise<ManifestSource> {
  if (file !== undefined) {
    const path = resolve(io.cwd, file);
    return { origin: 'option', path, document: await loadManifestFile(path) };
  }
  const path = resolve(io.cwd, DEFAULT_MANIFEST_FILE);
  if (existsSync(path)) return { origin: 'directory', path, document: await loadManifestFile(path) };
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
