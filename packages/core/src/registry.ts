import { type Capabilities, TIER_STRENGTH, type TierName } from './capabilities.js';
import { assertProviderCompatible, findUnenforceable } from './enforcement.js';
import { BulkheadError } from './errors.js';
import type { IsolationProvider, ProbeReport } from './provider.js';

export interface TierSelection {
  provider: IsolationProvider;
  probe: ProbeReport;
}

export interface SelectOptions {
  /** Use exactly this tier (the `none` tier is only ever used when named here). */
  tier?: TierName;
  /** The weakest tier acceptable; the weakest available tier at or above it is chosen. */
  minimumTier?: TierName;
}

/** Strength of a tier name: a built-in tier's place, or a registered provider's own. */
function strengthOf(tier: TierName, providers: Iterable<IsolationProvider>): number | undefined {
  if (tier in TIER_STRENGTH) return TIER_STRENGTH[tier as keyof typeof TIER_STRENGTH];
  for (const provider of providers) if (provider.tier === tier) return provider.strength;
  return undefined;
}

/**
 * The tiers known to a harness, and the ladder: given capabilities and a minimum tier, the weakest
 * available tier at or above it that enforces every capability on this host.
 */
export class ProviderRegistry {
  readonly #providers = new Map<TierName, IsolationProvider>();
  readonly #probes = new Map<TierName, Promise<ProbeReport>>();

  constructor(providers: Iterable<IsolationProvider> = []) {
    for (const provider of providers) this.register(provider);
  }

  register(provider: IsolationProvider): this {
    assertProviderCompatible(provider);
    this.#providers.set(provider.tier, provider);
    this.#probes.delete(provider.tier);
    return this;
  }

  get(tier: TierName): IsolationProvider | undefined {
    return this.#providers.get(tier);
  }

  /** Registered providers, weakest first. */
  list(): IsolationProvider[] {
    return [...this.#providers.values()].sort((a, b) => a.strength - b.strength);
  }

  /** The provider's probe, asked once per registry. */
  probe(tier: TierName): Promise<ProbeReport> {
    const provider = this.#require(tier);
    let probe = this.#probes.get(tier);
    if (!probe) {
      probe = provider.probe();
      this.#probes.set(tier, probe);
      probe.catch(() => this.#probes.delete(tier));
    }
    return probe;
  }

  async select(capabilities: Capabilities, options: SelectOptions = {}): Promise<TierSelection> {
    if (options.tier !== undefined) {
      const provider = this.#require(options.tier);
      return { provider, probe: await this.probe(options.tier) };
    }
    const minimumTier = options.minimumTier ?? 'process';
    const minimum = strengthOf(minimumTier, this.#providers.values());
    if (minimum === undefined) {
      throw this.#unknownTier(minimumTier);
    }
    const ruledOut: string[] = [];
    for (const provider of this.list()) {
      if (provider.strength <= 0) continue;
      if (provider.strength < minimum) {
        ruledOut.push(`${provider.tier}: weaker than the minimum tier '${minimumTier}'`);
        continue;
      }
      let probe: ProbeReport;
      try {
        probe = await this.probe(provider.tier);
      } catch (error) {
        ruledOut.push(`${provider.tier}: its probe failed (${(error as Error).message})`);
        continue;
      }
      if (!probe.available) {
        ruledOut.push(
          `${provider.tier}: unavailable: ${probe.reason ?? 'no reason given'}${probe.fix ? ` (fix: ${probe.fix})` : ''}`,
        );
        continue;
      }
      const missing = findUnenforceable(capabilities, probe);
      if (missing.length > 0) {
        ruledOut.push(
          `${provider.tier}: cannot enforce ${missing.map((item) => `${item.capability} (${item.reason}${item.fix ? `; fix: ${item.fix}` : ''})`).join(', ')}`,
        );
        continue;
      }
      return { provider, probe };
    }
    if (ruledOut.length === 0) ruledOut.push('no tier is registered');
    throw new BulkheadError(
      'NO_SUITABLE_TIER',
      `No tier at or above '${minimumTier}' can enforce these capabilities on this host:\n  - ${ruledOut.join('\n  - ')}`,
      { details: { ruledOut } },
    );
  }

  #require(tier: TierName): IsolationProvider {
    const provider = this.#providers.get(tier);
    if (!provider) throw this.#unknownTier(tier);
    return provider;
  }

  #unknownTier(tier: TierName): BulkheadError {
    const known = [...this.#providers.keys()].join(', ') || 'none registered';
    return new BulkheadError('UNKNOWN_TIER', `Tier '${tier}' is not registered. Available tiers: ${known}.`, {
      tier,
      fix: `install and register the provider package for '${tier}' (e.g. @bulkhead/tier-${tier})`,
    });
  }
}
