import { isAbsolute, resolve, sep } from 'node:path';

/** What a manifest path may refer to besides itself. */
export interface PathContext {
  /** Folder relative paths resolve against (the manifest's folder). */
  baseDir: string;
  /** What `${workspace}` means (the current directory unless told otherwise). */
  workspace: string;
  /** What `~` means. */
  home: string;
  /** Where `${env:NAME}` looks; undefined when variables are not allowed (a policy file). */
  env?: Record<string, string | undefined>;
}

const VARIABLE = /\$\{([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Problems a path has whatever the environment: unknown `${...}` variables, `~user`, an unclosed
 * `${`. Undefined when the path is well formed.
 */
export function checkPathSyntax(raw: string): string | undefined {
  if (/^~[^/]/.test(raw)) {
    return `'${raw}': only '~' and '~/...' (your own home) are expanded; write the absolute path instead`;
  }
  for (const match of raw.matchAll(VARIABLE)) {
    const name = match[1] ?? '';
    if (name === 'workspace') continue;
    if (name.startsWith('env:')) {
      if (!ENV_NAME.test(name.slice(4)))
        return `'${raw}': '\${${name}}' does not name an environment variable (letters, digits, _)`;
      continue;
    }
    return `'${raw}': unknown variable '\${${name}}'; use \${workspace} or \${env:NAME}`;
  }
  if (raw.replace(VARIABLE, '').includes('${')) return `'${raw}': '\${' is not closed with '}'`;
  return undefined;
}

export type PathExpansion = { ok: true; path: string } | { ok: false; reason: string };

/** A manifest path to the absolute, normalised path it means. */
export function expandPath(raw: string, context: PathContext): PathExpansion {
  const syntax = checkPathSyntax(raw);
  if (syntax) return { ok: false, reason: syntax };
  let failure: string | undefined;
  let text = raw.replace(VARIABLE, (_whole, name: string) => {
    if (name === 'workspace') return context.workspace;
    const variable = name.slice(4);
    if (!context.env) {
      failure ??= `'${raw}': \${env:${variable}} is not allowed here`;
      return '';
    }
    const value = context.env[variable];
    if (value === undefined || value === '') {
      // Expanding to '' would turn '${env:X}/secrets' into '/secrets': refuse rather than guess.
      failure ??= `'${raw}': environment variable ${variable} is not set, so this path would resolve to '${raw.replace(VARIABLE, '') || '(nothing)'}'. Fix: set ${variable}, or write the path out`;
      return '';
    }
    return value;
  });
  if (failure) return { ok: false, reason: failure };
  if (text === '~' || text.startsWith('~/')) text = context.home + text.slice(1);
  return { ok: true, path: isAbsolute(text) ? resolve(text) : resolve(context.baseDir, text) };
}

/** Is `path` equal to `ancestor` or inside it? Both absolute and normalised. */
export function isWithin(path: string, ancestor: string): boolean {
  if (path === ancestor) return true;
  const prefix = ancestor.endsWith(sep) ? ancestor : ancestor + sep;
  return path.startsWith(prefix);
}

export type PathRule = 'read' | 'write' | 'deny';

/** At equal paths deny beats read beats write: naming a folder in `read` makes a written one read-only. */
const RULE_STRENGTH: Record<PathRule, number> = { deny: 3, read: 2, write: 1 };

export interface PathEntry {
  path: string;
  rule: PathRule;
}

/**
 * Resolves rules to the minimal, sorted read/write/deny lists that mean the same: one rule per path
 * (the strongest at equal paths), no entry that repeats what its nearest ancestor already says, and
 * no deny outside every grant (nothing there is reachable anyway). The most specific path wins.
 */
export function resolvePathRules(entries: PathEntry[]): { read: string[]; write: string[]; deny: string[] } {
  const byPath = new Map<string, PathRule>();
  for (const entry of entries) {
    const current = byPath.get(entry.path);
    if (!current || RULE_STRENGTH[entry.rule] > RULE_STRENGTH[current]) byPath.set(entry.path, entry.rule);
  }
  const paths = [...byPath.keys()].sort((a, b) => a.length - b.length || (a < b ? -1 : 1));
  const result = { read: [] as string[], write: [] as string[], deny: [] as string[] };
  for (const path of paths) {
    const rule = byPath.get(path)!;
    let inherited: PathRule = 'deny';
    let ancestorLength = -1;
    for (const [other, otherRule] of byPath) {
      if (other !== path && other.length > ancestorLength && isWithin(path, other)) {
        inherited = otherRule;
        ancestorLength = other.length;
      }
    }
    if (rule !== inherited) result[rule].push(path);
  }
  for (const list of Object.values(result)) list.sort();
  return result;
}

/** The rule that applies to `path` under resolved lists (one rule per path): the most specific wins. */
export function ruleFor(path: string, lists: { read: string[]; write: string[]; deny: string[] }): PathRule {
  let best: PathRule = 'deny';
  let bestLength = -1;
  for (const rule of ['write', 'read', 'deny'] as const) {
    for (const entry of lists[rule]) {
      if (isWithin(path, entry) && entry.length > bestLength) {
        best = rule;
        bestLength = entry.length;
      }
    }
  }
  return best;
}
