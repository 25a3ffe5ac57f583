import { createRequire } from 'node:module';
import { BulkheadError, type BulkheadErrorCode } from '@bulkhead/core';
import * as v from 'valibot';
import type { Node } from 'yaml';
import { knownKeys } from './schema.js';

const require = createRequire(import.meta.url);
let yamlModule: typeof import('yaml') | undefined;

/**
 * The yaml package, loaded on the first file read: loading it costs about 30 ms, and `bulkhead run` on
 * the built-in default manifest with no policy file reads none. Loaded with require() because the
 * functions that read a source are synchronous (yaml's Node entry is CommonJS, so it is the same
 * module an import would give).
 */
function yaml(): typeof import('yaml') {
  yamlModule ??= require('yaml') as typeof import('yaml');
  return yamlModule;
}

/** A 1-based position in a source file. */
export interface SourceLocation {
  line: number;
  column: number;
}

/** A segment of a key path: an object key or an array index. */
export type KeySegment = string | number;

/** One problem found in a manifest (or policy), with where it is. */
export interface ManifestIssue {
  /** What is wrong and what was expected, without the location prefix. */
  message: string;
  /** The file, when the source came from one. */
  path?: string;
  line?: number;
  column?: number;
  /** Dotted key path of the offending value, e.g. `network.allow[1]`; empty for the document itself. */
  keyPath: string;
  /** What would have been valid there. */
  expected?: string;
  /** The closest valid key or value, for a typo. */
  suggestion?: string;
}

export type SourceFormat = 'yaml' | 'json';

/** A parsed YAML or JSON source that can say where each value was written. */
export interface LocatedSource {
  value: unknown;
  path?: string;
  source: string;
  format: SourceFormat;
  /** Where the value (or, with `target: 'key'`, the key) at this key path was written. */
  locate(keyPath: string | readonly KeySegment[], target?: 'key' | 'value'): SourceLocation | undefined;
}

/** Dotted form of a key path: `network.allow[1]`. */
export function formatKeyPath(segments: readonly KeySegment[]): string {
  let text = '';
  for (const segment of segments) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text ? `.${segment}` : segment;
  }
  return text;
}

/** `network.allow[1]` back to segments. */
export function parseKeyPath(keyPath: string): KeySegment[] {
  const segments: KeySegment[] = [];
  for (const match of keyPath.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (match[2] !== undefined) segments.push(Number(match[2]));
    else if (match[1] !== undefined) segments.push(match[1]);
  }
  return segments;
}

export function formatSourceFormat(path: string | undefined, format: SourceFormat | undefined): SourceFormat {
  if (format) return format;
  return path && /\.json$/i.test(path) ? 'json' : 'yaml';
}

/** `file:line:column: message`, the form editors and terminals turn into links. */
export function formatIssue(issue: ManifestIssue, fallbackName: string): string {
  const file = issue.path ?? fallbackName;
  const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.column ?? 1}`;
  return `${where}: ${issue.message}`;
}

export interface IssueErrorOptions {
  code: BulkheadErrorCode;
  /** What the source is, for the message: `manifest`, `policy`. */
  what: string;
  path?: string;
  fix: string;
}

/** One error for all the issues: located at the first, listing each as `file:line:column: message`. */
export function issuesError(issues: ManifestIssue[], options: IssueErrorOptions): BulkheadError {
  const sorted = [...issues].sort(
    (a, b) =>
      (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER) ||
      (a.column ?? 0) - (b.column ?? 0),
  );
  const first = sorted[0];
  const name = options.path ?? `<${options.what}>`;
  const heading =
    options.code.endsWith('PARSE_ERROR') ||
    sorted.every((issue) => issue.keyPath === '' && issue.line !== undefined)
      ? `Cannot read ${options.what} ${name}`
      : `Invalid ${options.what} ${name}`;
  const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
  const message = `${heading} (${count}):\n${sorted.map((issue) => `  ${formatIssue(issue, name)}`).join('\n')}\nFix: ${options.fix}`;
  return new BulkheadError(options.code, message, {
    ...(options.path === undefined ? {} : { path: options.path }),
    ...(first?.line === undefined ? {} : { line: first.line, column: first.column ?? 1 }),
    ...(first?.keyPath ? { capability: first.keyPath } : {}),
    fix: options.fix,
    details: { issues: sorted },
  });
}

function jsonSyntaxIssue(source: string, path: string | undefined): ManifestIssue | undefined {
  try {
    JSON.parse(source);
    return undefined;
  } catch (error) {
    const text = (error as Error).message;
    const position = /position (\d+)/.exec(text);
    const offset = position ? Number(position[1]) : source.length;
    const before = source.slice(0, offset).split('\n');
    return {
      message: `invalid JSON: ${text.replace(/\s*in JSON at position \d+.*$/, '').replace(/^JSON\.parse: /, '')}`,
      ...(path === undefined ? {} : { path }),
      line: before.length,
      column: (before[before.length - 1]?.length ?? 0) + 1,
      keyPath: '',
    };
  }
}

function yamlMessage(code: string, message: string, source: string, offset: number): string {
  const bare = message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
  if (code === 'DUPLICATE_KEY') {
    const key = /^["']?([^"':\n]*)/.exec(source.slice(offset))?.[1]?.trim();
    return `duplicate key${key ? ` '${key}'` : ''}: each key may appear only once in a mapping`;
  }
  return `invalid YAML: ${bare}`;
}

/**
 * Reads YAML or JSON keeping the position of every node. Syntax errors (including duplicate keys)
 * become one error with every problem located.
 */
export function readSource(
  source: string,
  options: { path?: string; format?: SourceFormat; what: string; code: BulkheadErrorCode; fix: string },
): LocatedSource {
  const format = formatSourceFormat(options.path, options.format);
  const { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const document = parseDocument(source, { lineCounter, prettyErrors: true, uniqueKeys: true, strict: true });
  const position = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const issues: ManifestIssue[] = [];
  if (format === 'json') {
    const issue = jsonSyntaxIssue(source, options.path);
    if (issue) issues.push(issue);
  }
  for (const error of document.errors) {
    // JSON.parse has already said what is wrong with JSON syntax; YAML's view adds duplicates only.
    if (format === 'json' && issues.length > 0 && error.code !== 'DUPLICATE_KEY') continue;
    issues.push({
      message: yamlMessage(error.code, error.message, source, error.pos[0]),
      ...(options.path === undefined ? {} : { path: options.path }),
      ...position(error.pos[0]),
      keyPath: '',
    });
  }
  if (issues.length > 0) {
    throw issuesError(issues, {
      code: options.code,
      what: options.what,
      fix: options.fix,
      ...(options.path === undefined ? {} : { path: options.path }),
    });
  }

  const find = (
    segments: readonly KeySegment[],
  ): { node?: Node | null; key?: Node | null; parent?: Node | null } => {
    let node = document.contents as Node | null;
    let key: Node | null | undefined;
    let parent: Node | null | undefined;
    for (const segment of segments) {
      if (isAlias(node)) node = node.resolve(document) as Node | null;
      parent = node;
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => (isScalar(item.key) ? String(item.key.value) : String(item.key)) === String(segment),
        );
        if (!pair) return { parent };
        key = pair.key as Node | null;
        node = pair.value as Node | null;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment] as Node | null | undefined;
        if (item === undefined) return { parent };
        key = undefined;
        node = item;
      } else {
        return { parent };
      }
    }
    return { node, key, parent };
  };

  return {
    value: document.toJS({ maxAliasCount: 100 }),
    ...(options.path === undefined ? {} : { path: options.path }),
    source,
    format,
    locate(keyPath, target = 'value') {
      const segments = typeof keyPath === 'string' ? parseKeyPath(keyPath) : keyPath;
      const found = find(segments);
      const chosen = target === 'key' && found.key ? found.key : (found.node ?? found.key);
      if (chosen?.range) return position(chosen.range[0]);
      // A missing key is reported where it should have been written: at its parent mapping.
      if (found.parent?.range) return position(found.parent.range[0]);
      return { line: 1, column: 1 };
    },
  };
}

function valueAt(value: unknown, segments: readonly KeySegment[]): unknown {
  let current = value;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function describeReceived(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null)
    return "null (in YAML an empty value or a bare ~ is null; write '~' in quotes for your home folder)";
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A suggestion only when it is plausibly what was meant. */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const lower = input.toLowerCase();
  const exact = candidates.find((candidate) => candidate.toLowerCase() === lower);
  if (exact) return exact;
  // Loaded only when there is a typo to suggest a fix for (a CommonJS module, like yaml above).
  const { closest, distance } = require('fastest-levenshtein') as typeof import('fastest-levenshtein');
  const best = closest(lower, candidates as string[]);
  return distance(lower, best.toLowerCase()) <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined;
}

/**
 * Validates a located source against a valibot schema, turning every issue (not only the first) into
 * a located, explained one. Unknown keys get the closest known key as a suggestion.
 */
export function validateSource<TSchema extends v.GenericSchema>(
  located: LocatedSource,
  schema: TSchema,
  options: {
    what: string;
    code: BulkheadErrorCode;
    fix: string;
    extraIssues?: (value: unknown) => ManifestIssue[];
  },
): v.InferOutput<TSchema> {
  const keys = knownKeys(schema);
  const result = v.safeParse(schema, located.value, { abortEarly: false, abortPipeEarly: true });
  const issues: ManifestIssue[] = [];
  const at = (segments: readonly KeySegment[], target: 'key' | 'value' = 'value') => ({
    ...(located.path === undefined ? {} : { path: located.path }),
    ...located.locate(segments, target),
  });

  const listsReported = new Set<string>();
  if (!result.success) {
    for (const issue of result.issues) {
      const segments = (issue.path ?? []).map((item) => item.key as KeySegment);
      const keyPath = formatKeyPath(segments);
      const parentPath = formatKeyPath(segments.slice(0, -1));
      const last = segments[segments.length - 1];
      // valibot takes a list for an object with keys 0, 1, ...: say "found a list" once instead.
      if (issue.type === 'strict_object' && Array.isArray(valueAt(located.value, segments.slice(0, -1)))) {
        if (listsReported.has(parentPath)) continue;
        listsReported.add(parentPath);
        issues.push({
          message: parentPath
            ? `${parentPath}: expected a mapping of keys to values; found a list`
            : `the ${options.what} must be a mapping of keys to values, starting with 'version: 1'; found a list`,
          ...at(segments.slice(0, -1)),
          keyPath: parentPath,
        });
        continue;
      }
      if (segments.length === 0 && (issue.type === 'strict_object' || issue.type === 'object')) {
        issues.push({
          message: `the ${options.what} must be a mapping of keys to values, starting with 'version: 1'; found ${describeReceived(issue.input)}`,
          ...at([]),
          keyPath: '',
        });
        continue;
      }
      if (issue.type === 'strict_object' && issue.expected === 'never') {
        const allowed = keys.get(parentPath) ?? [];
        const suggestion = suggest(String(last), allowed);
        const where = parentPath ? ` in '${parentPath}'` : '';
        issues.push({
          message: `unknown key '${String(last)}'${where}${suggestion ? `; did you mean '${suggestion}'?` : ''} Allowed here: ${allowed.join(', ')}`,
          ...at(segments, 'key'),
          keyPath,
          expected: allowed.join(' | '),
          ...(suggestion ? { suggestion } : {}),
        });
        continue;
      }
      if (issue.type === 'strict_object' && issue.received === 'undefined') {
        const message =
          keyPath === 'version'
            ? `missing 'version': add 'version: 1' as the first line`
            : `missing required key '${keyPath}'`;
        issues.push({ message, ...at(segments.slice(0, -1)), keyPath, expected: String(last) });
        continue;
      }
      let suggestion: string | undefined;
      if (issue.type === 'picklist' && typeof issue.input === 'string') {
        // The issue carries the options only as its `expected` text: ("process" | "session" | ...).
        const choices = [...(issue.expected ?? '').matchAll(/"([^"]*)"/g)].map((match) => match[1] ?? '');
        suggestion = suggest(issue.input, choices);
      }
      issues.push({
        // A check's message already quotes the value it refused.
        message: `${keyPath || options.what}: ${issue.message}${issue.type === 'check' ? '' : `; got ${describeReceived(issue.input)}`}${suggestion ? `. Did you mean '${suggestion}'?` : ''}`,
        ...at(segments),
        keyPath,
        ...(issue.expected ? { expected: issue.expected } : {}),
        ...(suggestion ? { suggestion } : {}),
      });
    }
  }
  issues.push(...(options.extraIssues?.(located.value) ?? []));
  if (issues.length > 0) {
    throw issuesError(issues, {
      code: options.code,
      what: options.what,
      fix: options.fix,
      ...(located.path === undefined ? {} : { path: located.path }),
    });
  }
  return (result as v.SafeParseResult<TSchema> & { output: v.InferOutput<TSchema> }).output;
}
