import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { ManifestSchema, type ManifestV1 } from './schema.js';
import {
  type KeySegment,
  type ManifestIssue,
  readSource,
  type SourceFormat,
  type SourceLocation,
  validateSource,
} from './source-document.js';

/** A manifest as read from a file or string, able to say where each field was written. */
export interface ManifestDocument {
  manifest: ManifestV1;
  /** The file it was read from; relative paths in it resolve against its folder. */
  path?: string;
  source: string;
  format: SourceFormat;
  /** Where the value (or key) at this key path (`network.allow[1]`) was written. */
  locate(keyPath: string | readonly KeySegment[], target?: 'key' | 'value'): SourceLocation | undefined;
}

export interface ParseManifestOptions {
  path?: string;
  /** Default: JSON for a `.json` path, YAML otherwise. */
  format?: SourceFormat;
}

const MANIFEST_FIX =
  'correct the entries above; `bulkhead manifest schema` prints the JSON Schema and the @bulkhead/manifest README lists every field';

/**
 * Problems between fields that a schema of single fields cannot see. `where` places an issue at a key
 * path (in the source, when there is one).
 */
export function crossFieldIssues(
  value: unknown,
  where: (keyPath: string, target: 'key' | 'value') => Partial<SourceLocation> & { path?: string },
): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const network = (value as { network?: { internet?: unknown; allow?: unknown } } | null)?.network;
  if (network?.internet === true && Array.isArray(network.allow) && network.allow.length > 0) {
    issues.push({
      message:
        "network.internet: true and network.allow cannot be combined: say which you mean. Remove 'allow' to reach the whole internet, or remove 'internet: true' to reach only the listed endpoints",
      ...where('network.internet', 'key'),
      keyPath: 'network.internet',
    });
  }
  return issues;
}

/**
 * Parses a manifest (YAML or JSON) and validates it. Throws `MANIFEST_PARSE_ERROR` for a syntax error
 * and `MANIFEST_INVALID` for a document that does not fit schema version 1; either way every problem
 * is reported at once in `details.issues`, each with file, line and column.
 */
export function parseManifest(source: string, options: ParseManifestOptions = {}): ManifestDocument {
  const located = readSource(source, {
    ...options,
    what: 'manifest',
    code: 'MANIFEST_PARSE_ERROR',
    fix: 'correct the syntax at the position shown (YAML: indentation, quotes, brackets; JSON: commas, quotes)',
  });
  const manifest = validateSource(located, ManifestSchema, {
    what: 'manifest',
    code: 'MANIFEST_INVALID',
    fix: MANIFEST_FIX,
    extraIssues: (value) =>
      crossFieldIssues(value, (keyPath, target) => ({
        ...(located.path === undefined ? {} : { path: located.path }),
        ...located.locate(keyPath, target),
      })),
  });
  return {
    manifest,
    ...(located.path === undefined ? {} : { path: located.path }),
    source,
    format: located.format,
    locate: located.locate,
  };
}

/** Reads and parses a manifest file. Throws `MANIFEST_NOT_FOUND` when there is no such file. */
export async function loadManifest(path: string): Promise<ManifestDocument> {
  const absolute = resolve(path);
  let source: string;
  try {
    source = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new BulkheadError(
        'MANIFEST_NOT_FOUND',
        `Manifest ${path} does not exist. Fix: check the path, or create one with \`bulkhead init\`.`,
        {
          path,
          fix: 'bulkhead init',
          cause: error,
        },
      );
    }
    throw new BulkheadError(
      'MANIFEST_NOT_FOUND',
      `Cannot read manifest ${path}: ${(error as Error).message}. Fix: check the file's permissions.`,
      {
        path,
        cause: error,
      },
    );
  }
  return parseManifest(source, { path });
}
