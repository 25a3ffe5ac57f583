import {
  BulkheadError,
  type Capabilities,
  createNoneProvider,
  findUnenforceable,
  type IsolationProvider,
  ProviderRegistry,
  TIER_STRENGTH,
  type TierName,
} from '@bulkhead/core';

export interface KnownTier {
  tier: TierName;
  /** The npm package that provides it. */
  packageName: string;
  /** The factory the package exports. */
  factory: string;
}

/**
 * The tiers the CLI knows by name, in the order `doctor` lists them. Each lives in its own optional package: the CLI is
 * the one place that plugs them in, so a tier that is not installed is reported, never a crash.
 */
export const KNOWN_TIERS: readonly KnownTier[] = [
  { tier: 'process', packageName: '@bulkhead/tier-process', factory: 'createProcessProvider' },
  { tier: 'session', packageName: '@bulkhead/tier-session', factory: 'createSessionProvider' },
  { tier: 'microvm', packageName: '@bulkhead/tier-microvm', factory: 'createMicrovmProvider' },
  { tier: 'wsl', packageName: '@bulkhead/tier-wsl', factory: 'createWslProvider' },
];

export type TierInstallation =
  | { tier: TierName; packageName: string; installed: true; provider: IsolationProvider }
  | { tier: TierName; packageName: string; installed: false; reason: string; fix: string };

export interface InstalledTiers {
  /** Every installed tier plus `none`, which the ladder never picks on its own. */
  registry: ProviderRegistry;
  /** One entry per known tier, installed or not, in ladder order. */
  installations: TierInstallation[];
}

function isModuleNotFound(error: unknown, packageName: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  const mentionsPackage = typeof message === 'string' && message.includes(packageName);
  return (
    mentionsPackage &&
    (code === 'ERR_MODULE_NOT_FOUND' ||
      code === 'MODULE_NOT_FOUND' ||
      /Cannot find (module|package)|Failed to load url/.test(String(message)))
  );
}

function findFactory(
  module: Record<string, unknown>,
  known: KnownTier,
): ((options?: unknown) => IsolationProvider) | undefined {
  const named = module[known.factory];
  if (typeof named === 'function') return named as (options?: unknown) => IsolationProvider;
  // A tier that spells its factory differently (createMicroVmProvider) still plugs in.
  for (const [name, value] of Object.entries(module)) {
    if (typeof value === 'function' && /^create\w*Provider$/.test(name)) {
      return value as (options?: unknown) => IsolationProvider;
    }
  }
  return undefined;
}

export type ModuleImporter = (specifier: string) => Promise<Record<string, unknown>>;

const importModule: ModuleImporter = (specifier) => import(specifier);

/** Options the CLI hands a tier's factory, by tier (e.g. the process tier's egress resolver). */
export type TierFactoryOptions = Partial<Record<TierName, Record<string, unknown>>>;

async function loadTier(
  known: KnownTier,
  importer: ModuleImporter,
  factoryOptions?: Record<string, unknown>,
): Promise<TierInstallation> {
  const base = { tier: known.tier, packageName: known.packageName };
  let module: Record<string, unknown>;
  try {
    module = await importer(known.packageName);
  } catch (error) {
    if (isModuleNotFound(error, known.packageName)) {
      return { ...base, installed: false, reason: 'not installed', fix: `npm i ${known.packageName}` };
    }
    return {
      ...base,
      installed: false,
      reason: `installed but failed to load: ${(error as Error).message ?? String(error)}`,
      fix: `reinstall it: npm i ${known.packageName}`,
    };
  }
  const factory = findFactory(module, known);
  if (!factory) {
    return {
      ...base,
      installed: false,
      reason: `installed but exports no ${known.factory}() (it may be a version this CLI does not know)`,
      fix: `install versions of bulkhead and ${known.packageName} that agree`,
    };
  }
  try {
    return {
      ...base,
      installed: true,
      provider: factoryOptions === undefined ? factory() : factory(factoryOptions),
    };
  } catch (error) {
    return {
      ...base,
      installed: false,
      reason: `its provider could not be created: ${BulkheadError.isInstance(error) || error instanceof Error ? error.message : String(error)}`,
      fix: `reinstall it: npm i ${known.packageName}`,
    };
  }
}

function registerInstallation(registry: ProviderRegistry, installation: TierInstallation): TierInstallation {
  if (!installation.installed) return installation;
  try {
    registry.register(installation.provider);
    return installation;
  } catch (error) {
    // A provider of another spec version is as unusable as a missing one, and said so.
    return {
      tier: installation.tier,
      packageName: installation.packageName,
      installed: false,
      reason: `installed but unusable: ${(error as Error).message}`,
      fix: `install versions of bulkhead and ${installation.packageName} that agree`,
    };
  }
}

/** Loads every known tier that is installed, and registers it with `none`. `doctor` needs them all. */
export async function loadInstalledTiers(
  importer: ModuleImporter = importModule,
  factoryOptions: TierFactoryOptions = {},
): Promise<InstalledTiers> {
  const loaded = await Promise.all(
    KNOWN_TIERS.map((known) => loadTier(known, importer, factoryOptions[known.tier])),
  );
  const registry = new ProviderRegistry([createNoneProvider()]);
  const installations = loaded.map((installation) => registerInstallation(registry, installation));
  return { registry, installations };
}

export interface TiersForLaunchOptions {
  capabilities: Capabilities;
  /** The tier the user named (`--tier`): only its package is loaded; `none` loads no package. */
  tier?: TierName;
  /** Without a named tier: the weakest acceptable tier, where the ladder starts. */
  minimumTier?: TierName;
  importer?: ModuleImporter;
  factoryOptions?: TierFactoryOptions;
}

const strengthOf = (tier: TierName): number =>
  TIER_STRENGTH[tier as keyof typeof TIER_STRENGTH] ?? Number.POSITIVE_INFINITY;

/**
 * The tiers one launch needs, loaded one package at a time in ladder order (weakest first, from the
 * minimum tier up) and only until one of them is available and enforces every capability here: a run
 * the process tier can serve never imports the session or micro-VM tiers, which cost start-up time.
 * When none can, every tier from the minimum up has been loaded, so the ladder's error names each one
 * and why it was ruled out. A named tier loads only its own package.
 */
export async function loadTiersForLaunch(options: TiersForLaunchOptions): Promise<InstalledTiers> {
  const importer = options.importer ?? importModule;
  const registry = new ProviderRegistry([createNoneProvider()]);
  const installations: TierInstallation[] = [];
  const load = async (known: KnownTier) => {
    const installation = registerInstallation(
      registry,
      await loadTier(known, importer, options.factoryOptions?.[known.tier]),
    );
    installations.push(installation);
    return installation;
  };
  if (options.tier !== undefined) {
    const known = KNOWN_TIERS.find((candidate) => candidate.tier === options.tier);
    if (known) await load(known);
    return { registry, installations };
  }
  const minimum = strengthOf(options.minimumTier ?? 'process');
  const ladder = KNOWN_TIERS.filter((known) => strengthOf(known.tier) >= minimum).sort(
    (left, right) => strengthOf(left.tier) - strengthOf(right.tier),
  );
  for (const known of ladder) {
    const installation = await load(known);
    if (!installation.installed) continue;
    try {
      const probe = await registry.probe(known.tier);
      if (probe.available && findUnenforceable(options.capabilities, probe).length === 0) break;
    } catch {
      // The ladder says why when it asks again; the next tier may serve meanwhile.
    }
  }
  return { registry, installations };
}

/** The error for a tier that is named but cannot be used because its package is missing. */
export function tierNotInstalledError(
  installation: Extract<TierInstallation, { installed: false }>,
): BulkheadError {
  return new BulkheadError(
    'TIER_UNAVAILABLE',
    `Tier '${installation.tier}' cannot be used: ${installation.packageName} is ${installation.reason}.`,
    { tier: installation.tier, fix: installation.fix },
  );
}

/**
 * Refuses to go on when no isolating tier the ladder may use is installed: nothing could enforce the
 * manifest. `minimumTier` above the process tier names the packages that would serve it.
 */
export function assertSomeTierInstalled(
  installations: readonly TierInstallation[],
  minimumTier: TierName = 'process',
): void {
  if (installations.some((installation) => installation.installed)) return;
  if (minimumTier !== 'process' && installations.length > 0) {
    const packages = installations.map((installation) => installation.packageName);
    throw new BulkheadError(
      'TIER_UNAVAILABLE',
      `No tier at or above '${minimumTier}' (the manifest's minimum) is installed, so nothing can enforce the manifest.`,
      { tier: minimumTier, fix: `npm i ${packages.join(' or ')}` },
    );
  }
  throw new BulkheadError(
    'TIER_UNAVAILABLE',
    'No isolation tier is installed, so nothing can enforce the manifest.',
    {
      fix: 'npm i @bulkhead/tier-process (or, to debug without any isolation, name it: --tier none)',
    },
  );
}
