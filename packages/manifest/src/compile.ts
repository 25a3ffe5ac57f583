import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import {
  BulkheadError,
  type Capabilities,
  capabilitiesDigest,
  type Endpoint,
  TIER_STRENGTH,
  type TierName,
} from '@bulkhead/core';
import * as v from 'valibot';
import {
  DEFAULT_ENV_INHERIT,
  DEFAULT_MAX_PROCESSES,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_TIMEOUT_MS,
  presentSystemReadPaths,
  presentSystemSecretPaths,
} from './defaults.js';
import { endpointCovers, formatEndpoint, parseEndpoint } from './endpoint.js';
import { crossFieldIssues, type ManifestDocument } from './manifest-document.js';
import { OVERRIDDEN_KEYS } from './overrides.js';
import {
  expandPath,
  isWithin,
  type PathContext,
  type PathEntry,
  resolvePathRules,
  ruleFor,
} from './paths.js';
import { loadPolicySync, type Policy } from './policy.js';
import { ManifestSchema, type ManifestV1 } from './schema.js';
import { formatKeyPath, issuesError, type ManifestIssue, type SourceLocation } from './source-document.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from './units.js';

export interface CompileOptions {
  /** Working directory of the payload. Default: `process.cwd()`. */
  cwd?: string;
  /** Folder relative manifest paths resolve against. Default: the manifest's folder, else `cwd`. */
  baseDir?: string;
  /** What `${workspace}` means and what is writable by default. Default: `cwd`. */
  workspace?: string;
  /** What `~` means. Default: `os.homedir()`. */
  home?: string;
  /** The caller's environment, for `env.inherit` and `${env:NAME}`. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /**
   * The organisation policy. Default (undefined): loaded from `$BULKHEAD_POLICY` or
   * `/etc/bulkhead/policy.yaml`, so forgetting to pass it cannot skip the ceiling. `null`: none.
   */
  policy?: Policy | null;
}

/** Where a compiled path rule came from. */
export type RuleOrigin = 'default' | 'manifest' | 'policy' | 'command line';

export interface CompiledManifest {
  capabilities: Capabilities;
  /** The weakest tier that may run it: the manifest's `tier`, else the policy's, else `process`. */
  minimumTier: TierName;
  /** `capabilitiesDigest(capabilities)`. */
  digest: string;
  /** Dotted keys whose value came from the defaults, e.g. `resources.memory`. */
  defaulted: string[];
  /** Things worth knowing that are not errors (a default narrowed by the policy, a workdir not granted). */
  warnings: string[];
  /** For each path in `capabilities.filesystem`, where its rule came from. */
  pathOrigins?: Record<string, RuleOrigin>;
}

/** Every leaf a manifest may set that has a default; `defaulted` lists those it did not set. */
const DEFAULTABLE_KEYS = [
  'tier',
  'filesystem.read',
  'filesystem.write',
  'filesystem.deny',
  'network.internet',
  'network.allow',
  'processes.spawn',
  'processes.max',
  'resources.memory',
  'resources.timeout',
  'resources.cpus',
  'resources.gpus',
  'devices.clipboard',
  'devices.audio',
  'devices.webcam',
  'devices.display',
  'devices.input',
  'env.inherit',
  'env.set',
] as const;

interface PolicyViolation extends ManifestIssue {
  rule: string;
  policyPath?: string;
  policyLine?: number;
  policyColumn?: number;
}

function isDocument(input: ManifestDocument | ManifestV1 | undefined): input is ManifestDocument {
  return typeof input === 'object' && input !== null && 'manifest' in input && 'source' in input;
}

function getIn(value: unknown, dotted: string): unknown {
  let current = value;
  for (const key of dotted.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function strength(tier: string): number {
  return TIER_STRENGTH[tier as keyof typeof TIER_STRENGTH] ?? 0;
}

/**
 * Compiles a manifest (or, without one, the default manifest) to provider-neutral capabilities:
 * paths expanded and resolved, endpoints parsed, sizes and durations converted, defaults filled in,
 * and the organisation policy applied as a ceiling. Throws `MANIFEST_INVALID` for what can only be
 * checked now (an unset `${env:NAME}`) and `POLICY_VIOLATION` for a manifest that asks for more than
 * the policy allows; both name file, line and column.
 */
export function compileManifest(
  input?: ManifestDocument | ManifestV1,
  options: CompileOptions = {},
): CompiledManifest {
  const document = isDocument(input) ? input : undefined;
  const written: unknown = document ? document.manifest : (input ?? { version: 1 });
  const overridden = (written as { [OVERRIDDEN_KEYS]?: Set<string> })[OVERRIDDEN_KEYS] ?? new Set<string>();
  const where = (
    keyPath: string,
    target: 'key' | 'value' = 'value',
  ): Partial<SourceLocation> & { path?: string } => {
    if (overridden.has(keyPath) || !document) return {};
    return {
      ...(document.path === undefined ? {} : { path: document.path }),
      ...document.locate(keyPath, target),
    };
  };
  // Validated again even for a parsed document: command-line overrides may have changed it.
  const validation = v.safeParse(ManifestSchema, written, { abortEarly: false, abortPipeEarly: true });
  if (!validation.success) {
    const issues = validation.issues.map((issue) => {
      const keyPath = formatKeyPath((issue.path ?? []).map((item) => item.key as string | number));
      const origin = overridden.has(keyPath) ? ' (from the command line)' : '';
      return { message: `${keyPath || 'manifest'}${origin}: ${issue.message}`, ...where(keyPath), keyPath };
    });
    throw issuesError(issues, {
      code: 'MANIFEST_INVALID',
      what: 'manifest',
      fix: 'correct the values above',
      ...(document?.path === undefined ? {} : { path: document.path }),
    });
  }
  const manifest: ManifestV1 = validation.output;

  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  const context: PathContext = {
    baseDir: resolve(options.baseDir ?? (document?.path ? dirname(resolve(document.path)) : cwd)),
    workspace: resolve(options.workspace ?? cwd),
    home: resolve(options.home ?? homedir()),
    env,
  };
  const policy = options.policy === undefined ? loadPolicySync(undefined, env) : options.policy;

  const issues: ManifestIssue[] = [];
  const violations: PolicyViolation[] = [];
  const warnings: string[] = [];
  const originOf = (keyPath: string): RuleOrigin => (overridden.has(keyPath) ? 'command line' : 'manifest');

  // Filesystem: defaults, the manifest's lists, the policy's denials; then one rule per path.
  const entries: (PathEntry & { origin: RuleOrigin; keyPath?: string })[] = [];
  for (const path of presentSystemReadPaths()) entries.push({ path, rule: 'read', origin: 'default' });
  for (const path of presentSystemSecretPaths()) entries.push({ path, rule: 'deny', origin: 'default' });
  const workspace = context.workspace;
  const home = context.home;
  if (workspace === '/' || workspace === '/root' || isWithin(home, workspace)) {
    // Granting "the current directory" here would grant the whole home folder (or more).
    warnings.push(
      `The workspace ${workspace} is your home folder, /root or an ancestor of it, so it is not writable by default. Fix: run from a project folder, or grant it explicitly with filesystem.write: ['${workspace}'].`,
    );
  } else {
    entries.push({ path: workspace, rule: 'write', origin: 'default' });
  }
  for (const rule of ['read', 'write', 'deny'] as const) {
    (manifest.filesystem?.[rule] ?? []).forEach((raw, index) => {
      const keyPath = `filesystem.${rule}[${index}]`;
      const expanded = expandPath(raw, context);
      if (!expanded.ok) {
        issues.push({ message: `${keyPath}: ${expanded.reason}`, ...where(keyPath), keyPath });
        return;
      }
      if (rule !== 'deny' && (expanded.path === '/' || expanded.path === home)) {
        warnings.push(
          `${keyPath} grants ${expanded.path === '/' ? 'the whole file system' : 'your whole home folder'} (${rule}); secrets such as ~/.ssh are then reachable unless denied.`,
        );
      }
      entries.push({ path: expanded.path, rule, origin: originOf(keyPath), keyPath });
    });
  }

  const policyWhere = (rule: string) => {
    if (!policy) return {};
    const location = policy.locate(rule, 'key');
    return {
      ...(policy.path === undefined ? {} : { policyPath: policy.path }),
      ...(location ? { policyLine: location.line, policyColumn: location.column } : {}),
    };
  };
  const policyName = (rule: string) => {
    const location = policy?.locate(rule, 'key');
    const file = policy?.path ?? 'the organisation policy';
    return `rule '${rule}' of ${location ? `${file}:${location.line}:${location.column}` : file}`;
  };
  const violate = (rule: string, keyPath: string, message: string, target: 'key' | 'value' = 'value') => {
    violations.push({
      message: `${keyPath}: ${message} (${policyName(rule)})`,
      ...where(keyPath, target),
      keyPath,
      rule,
      ...policyWhere(rule),
    });
  };

  if (policy?.policy.deniedPaths) {
    const policyContext: PathContext = {
      ...context,
      baseDir: policy.path ? dirname(resolve(policy.path)) : '/',
    };
    delete policyContext.env;
    const denied = policy.policy.deniedPaths.flatMap((raw) => {
      const expanded = expandPath(raw, policyContext);
      return expanded.ok ? [expanded.path] : [];
    });
    for (let index = entries.length - 1; index >= 0; index--) {
      const entry = entries[index]!;
      if (entry.rule === 'deny') continue;
      const inside = denied.find((path) => isWithin(entry.path, path));
      if (!inside) continue;
      if (entry.origin === 'default') {
        // A default grant the policy hides is dropped: the policy's deny must win, however specific.
        warnings.push(
          `${entry.path} is not granted by default: the organisation policy always denies ${inside}.`,
        );
        entries.splice(index, 1);
      } else {
        violate(
          'deniedPaths',
          entry.keyPath ?? `filesystem.${entry.rule}`,
          `'${entry.path}' is inside ${inside}, which the organisation policy always denies`,
        );
      }
    }
    for (const path of denied) entries.push({ path, rule: 'deny', origin: 'policy' });
  }

  const filesystem = resolvePathRules(entries);
  const pathOrigins: Record<string, RuleOrigin> = {};
  const originRank: Record<RuleOrigin, number> = { default: 0, manifest: 1, 'command line': 2, policy: 3 };
  for (const entry of entries) {
    const current = pathOrigins[entry.path];
    if (!current || originRank[entry.origin] > originRank[current]) pathOrigins[entry.path] = entry.origin;
  }
  const listed = new Set([...filesystem.read, ...filesystem.write, ...filesystem.deny]);
  for (const path of Object.keys(pathOrigins)) if (!listed.has(path)) delete pathOrigins[path];

  // Network.
  const allowWritten = manifest.network?.allow ?? [];
  const allow: { endpoint: Endpoint; keyPath: string }[] = [];
  allowWritten.forEach((raw, index) => {
    const keyPath = `network.allow[${index}]`;
    const parsed = parseEndpoint(raw);
    if (!parsed.ok) {
      issues.push({ message: `${keyPath}: ${parsed.reason}`, ...where(keyPath), keyPath });
      return;
    }
    for (const endpoint of parsed.endpoints) allow.push({ endpoint, keyPath });
  });
  issues.push(...crossFieldIssues(manifest, where));
  const unique = new Map<string, Endpoint>();
  for (const { endpoint } of allow) unique.set(formatEndpoint(endpoint), endpoint);
  const endpoints = [...unique.values()].sort((a, b) =>
    a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1,
  );
  const network: Capabilities['network'] =
    manifest.network?.internet === true
      ? { mode: 'open', allow: [] }
      : endpoints.length > 0
        ? { mode: 'allowlist', allow: endpoints }
        : { mode: 'none', allow: [] };
  if (policy) {
    const rules = policy.policy;
    if (network.mode === 'open' && rules.internet === 'forbidden') {
      violate(
        'internet',
        'network.internet',
        'the whole internet is asked for, but the organisation policy forbids it',
        'key',
      );
    } else if (network.mode === 'open' && rules.allowedEndpoints) {
      violate(
        'allowedEndpoints',
        'network.internet',
        'the whole internet is asked for, but the organisation policy allows only listed endpoints',
        'key',
      );
    }
    if (rules.allowedEndpoints) {
      const ceiling = rules.allowedEndpoints.flatMap((raw) => {
        const parsed = parseEndpoint(raw);
        return parsed.ok ? parsed.endpoints : [];
      });
      const reported = new Set<string>();
      for (const { endpoint, keyPath } of allow) {
        if (ceiling.some((outer) => endpointCovers(outer, endpoint))) continue;
        const key = `${keyPath} ${formatEndpoint(endpoint)}`;
        if (reported.has(key)) continue;
        reported.add(key);
        violate(
          'allowedEndpoints',
          keyPath,
          `${formatEndpoint(endpoint)} is not among the endpoints the organisation policy allows (${rules.allowedEndpoints.join(', ')})`,
        );
      }
    }
  }

  // Processes and resources, each capped by the policy.
  const capped = (
    keyPath: string,
    written: number | undefined,
    fallback: number,
    rule: 'maxProcesses' | 'maxMemory' | 'maxTimeout',
    maximum: number | undefined,
    format: (value: number) => string,
  ): number => {
    if (maximum === undefined) return written ?? fallback;
    if (written !== undefined) {
      if (written > maximum) {
        violate(
          rule,
          keyPath,
          `${format(written)} is more than the organisation policy's maximum of ${format(maximum)}`,
        );
      }
      return written;
    }
    if (fallback > maximum) {
      warnings.push(
        `${keyPath} defaults to ${format(fallback)}, lowered to the organisation policy's maximum of ${format(maximum)}.`,
      );
      return maximum;
    }
    return fallback;
  };
  const rules = policy?.policy;
  const maxProcesses = capped(
    'processes.max',
    manifest.processes?.max,
    DEFAULT_MAX_PROCESSES,
    'maxProcesses',
    rules?.maxProcesses,
    (value) => `${value} processes`,
  );
  const memoryBytes = capped(
    'resources.memory',
    manifest.resources?.memory === undefined ? undefined : parseSize(manifest.resources.memory),
    DEFAULT_MEMORY_BYTES,
    'maxMemory',
    rules?.maxMemory === undefined ? undefined : parseSize(rules.maxMemory),
    formatBytes,
  );
  const timeoutMs = capped(
    'resources.timeout',
    manifest.resources?.timeout === undefined ? undefined : parseDuration(manifest.resources.timeout),
    DEFAULT_TIMEOUT_MS,
    'maxTimeout',
    rules?.maxTimeout === undefined ? undefined : parseDuration(rules.maxTimeout),
    formatDuration,
  );
  const gpusWritten = manifest.resources?.gpus;
  const gpus: Capabilities['resources']['gpus'] = Array.isArray(gpusWritten)
    ? [...new Set(gpusWritten)].sort((a, b) => a - b)
    : (gpusWritten ?? 'none');

  // Tier.
  let minimumTier: TierName = manifest.tier ?? 'process';
  if (rules?.minimumTier) {
    if (manifest.tier === undefined) {
      minimumTier = rules.minimumTier;
    } else if (strength(manifest.tier) < strength(rules.minimumTier)) {
      violate(
        'minimumTier',
        'tier',
        `'${manifest.tier}' is weaker than the organisation policy's minimum tier '${rules.minimumTier}'`,
      );
    }
  }

  // Environment: only what is named is passed.
  const environment: Record<string, string> = {};
  for (const name of manifest.env?.inherit ?? DEFAULT_ENV_INHERIT) {
    const value = env[name];
    if (value !== undefined) environment[name] = value;
  }
  for (const [name, value] of Object.entries(manifest.env?.set ?? {})) {
    const keyPath = `env.set.${name}`;
    let failure: string | undefined;
    const text = String(value).replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_whole, variable: string) => {
      const found = env[variable];
      if (found === undefined)
        failure ??= `environment variable ${variable} is not set. Fix: set it, or write the value out`;
      return found ?? '';
    });
    if (failure) issues.push({ message: `${keyPath}: ${failure}`, ...where(keyPath), keyPath });
    else environment[name] = text;
  }

  if (issues.length > 0) {
    throw issuesError(issues, {
      code: 'MANIFEST_INVALID',
      what: 'manifest',
      fix: 'correct the entries above',
      ...(document?.path === undefined ? {} : { path: document.path }),
    });
  }
  if (violations.length > 0) throw policyViolationError(violations, document?.path, policy);

  const capabilities: Capabilities = {
    filesystem,
    network,
    process: { spawn: manifest.processes?.spawn ?? true, maxProcesses },
    resources: {
      memoryBytes,
      timeoutMs,
      ...(manifest.resources?.cpus === undefined ? {} : { cpus: manifest.resources.cpus }),
      gpus,
    },
    devices: {
      clipboard: manifest.devices?.clipboard ?? false,
      audio: manifest.devices?.audio ?? false,
      webcam: manifest.devices?.webcam ?? false,
      display: manifest.devices?.display ?? false,
      input: manifest.devices?.input ?? false,
    },
    env: environment,
    workdir: cwd,
    ...(manifest.identity ? { identity: { name: manifest.identity.name } } : {}),
  };

  const workdirRule = ruleFor(cwd, filesystem);
  if (workdirRule === 'deny') {
    warnings.push(
      `The working directory ${cwd} is not readable in the sandbox; the payload will fail to start there. Fix: grant it in filesystem.read or filesystem.write.`,
    );
  }

  return {
    capabilities,
    minimumTier,
    digest: capabilitiesDigest(capabilities),
    defaulted: DEFAULTABLE_KEYS.filter(
      (key) => getIn(manifest, key) === undefined && !(key === 'tier' && rules?.minimumTier),
    ),
    warnings,
    pathOrigins,
  };
}

function policyViolationError(
  violations: PolicyViolation[],
  manifestPath: string | undefined,
  policy: Policy | null,
): BulkheadError {
  const base = issuesError(violations, {
    code: 'POLICY_VIOLATION',
    what: 'manifest',
    fix: 'ask for no more than the organisation policy allows, or ask its administrator to change the rule named above',
    ...(manifestPath === undefined ? {} : { path: manifestPath }),
  });
  const first = (base.details!.issues as PolicyViolation[])[0]!;
  const message = base.message.replace(
    /^Invalid manifest (.*?) \(/,
    (_whole, name: string) =>
      `Manifest ${name} asks for more than the organisation policy${policy?.path ? ` ${policy.path}` : ''} allows (`,
  );
  return new BulkheadError('POLICY_VIOLATION', message, {
    ...(base.path === undefined ? {} : { path: base.path }),
    ...(base.line === undefined ? {} : { line: base.line, column: base.column ?? 1 }),
    capability: first.keyPath,
    fix: base.fix!,
    details: {
      ...base.details,
      rule: first.rule,
      policyPath: first.policyPath,
      policyLine: first.policyLine,
      violations: base.details?.issues,
    },
  });
}

/** The capabilities of the default manifest: what a sandbox gets when nothing is said. */
export function defaultCapabilities(options: CompileOptions = {}): Capabilities {
  return compileManifest(undefined, options).capabilities;
}
