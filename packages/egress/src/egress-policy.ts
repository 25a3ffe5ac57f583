import { classifyAddress } from './address-ranges.js';
import {
  type EgressRule,
  formatEndpoint,
  type NormalizedHost,
  normalizeHost,
  type ParsedRule,
  parseRule,
} from './egress-rules.js';

/** Resolves a host name to IP addresses, like `dns.lookup(host, { all: true })`. */
export type EgressResolver = (host: string) => Promise<string[]>;

/** The allow and deny rules of one sandbox, validated. */
export interface EgressPolicy {
  readonly allow: readonly ParsedRule[];
  readonly deny: readonly ParsedRule[];
}

/** Why a destination was refused; also the value of the `X-Bulkhead-Refused` header. */
export type RefusalReason = 'not-allowed' | 'denied' | 'private-address' | 'invalid-target';

export type EgressDecision =
  | { outcome: 'allowed'; host: string; port: number; addresses: string[]; rule: string }
  | { outcome: 'refused'; host: string; port: number; reason: RefusalReason; rule: string; message: string }
  /** Allowed by the rules but the name did not resolve: a failure, not a violation. */
  | { outcome: 'unresolved'; host: string; port: number; message: string };

/** Validates the rules once, at channel creation, so a bad rule fails the launch, not a request. */
export function compilePolicy(allow: readonly EgressRule[], deny: readonly EgressRule[] = []): EgressPolicy {
  return { allow: allow.map((rule) => parseRule(rule)), deny: deny.map((rule) => parseRule(rule)) };
}

function listRules(rules: readonly ParsedRule[]): string {
  if (rules.length === 0) return 'empty';
  const shown = rules.slice(0, 6).map((rule) => rule.text);
  return rules.length > shown.length ? `${shown.join(', ')}, ...` : shown.join(', ');
}

/**
 * Decides whether the sandbox may connect to `rawHost:port`, resolving a name with `resolve` and
 * returning the exact addresses to connect to (never look the name up again: a second answer could
 * differ). Deny rules win over allow rules, for names and for the addresses they resolve to.
 */
export async function judgeDestination(
  policy: EgressPolicy,
  rawHost: string,
  port: number,
  resolve: EgressResolver,
): Promise<EgressDecision> {
  const target = normalizeHost(rawHost);
  if (!target || !Number.isInteger(port) || port < 1 || port > 65535) {
    const shown = formatEndpoint(rawHost, port);
    return {
      outcome: 'refused',
      host: rawHost,
      port,
      reason: 'invalid-target',
      rule: 'invalid-target',
      message: `'${shown}' is not a valid host name or IP address with a port 1-65535`,
    };
  }
  const { host } = target;
  const shown = formatEndpoint(host, port);
  const refuse = (reason: RefusalReason, rule: string, message: string): EgressDecision => ({
    outcome: 'refused',
    host,
    port,
    reason,
    rule,
    message,
  });

  const denyRule = policy.deny.find((rule) => rule.matches(target, port));
  if (denyRule)
    return refuse('denied', `deny ${denyRule.text}`, `${shown} is refused by the deny rule ${denyRule.text}`);

  if (target.family !== 0) {
    const allowRule = policy.allow.find((rule) => rule.matches(target, port));
    if (allowRule) return { outcome: 'allowed', host, port, addresses: [host], rule: allowRule.text };
    return refuse(
      'not-allowed',
      'default-deny',
      `${shown} is a raw IP address that no allow rule names (name rules never cover addresses; the allow list is ${listRules(policy.allow)}). Fix: add '${shown}' to network.allow`,
    );
  }

  const allowRule = policy.allow.find((rule) => rule.matches(target, port));
  if (!allowRule) {
    const otherPorts = policy.allow
      .filter((rule) => rule.port !== port && rule.matches(target, rule.port))
      .map((rule) => rule.port);
    const hint = otherPorts.length
      ? `; this host is allowed only on port ${otherPorts.join(', ')}`
      : `; the allow list is ${listRules(policy.allow)}`;
    return refuse(
      'not-allowed',
      'default-deny',
      `no allow rule matches ${shown}${hint}. Fix: add '${shown}' to network.allow`,
    );
  }

  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      outcome: 'unresolved',
      host,
      port,
      message: `${host} did not resolve (${code ?? String(error)})`,
    };
  }
  const usable: string[] = [];
  let firstRefusal: EgressDecision | undefined;
  for (const raw of addresses) {
    const address = normalizeHost(raw);
    if (!address || address.family === 0) continue;
    const addressDeny = policy.deny.find((rule) => rule.matches(address, port));
    if (addressDeny) {
      firstRefusal ??= refuse(
        'denied',
        `deny ${addressDeny.text}`,
        `${host} resolves to ${address.host}, which the deny rule ${addressDeny.text} refuses`,
      );
      continue;
    }
    const range = classifyAddress(address.host);
    if (range && !addressAllowed(policy, address, port)) {
      firstRefusal ??= refuse(
        'private-address',
        `private-address:${range}`,
        `${host} resolves to ${address.host} (${range}), which no allow rule names: refused as possible DNS rebinding. Fix: if that is intended, add '${formatEndpoint(address.host, port)}' to network.allow`,
      );
      continue;
    }
    usable.push(address.host);
  }
  if (usable.length === 0) {
    return (
      firstRefusal ?? { outcome: 'unresolved', host, port, message: `${host} resolved to no usable address` }
    );
  }
  return { outcome: 'allowed', host, port, addresses: usable, rule: allowRule.text };
}

function addressAllowed(policy: EgressPolicy, address: NormalizedHost, port: number): boolean {
  return policy.allow.some(
    (rule) => (rule.kind === 'address' || rule.kind === 'network') && rule.matches(address, port),
  );
}
