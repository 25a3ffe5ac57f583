import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { BulkheadError, type Endpoint } from '@bulkhead/core';
import { embeddedIPv4 } from './address-ranges.js';

/** One allow or deny rule: the same shape as core's `Endpoint`. */
export interface EgressRule extends Endpoint {}

/** A destination host after normalisation: a lower-case punycode name or a canonical IP literal. */
export interface NormalizedHost {
  host: string;
  /** 0 for a name, 4 or 6 for an IP literal. */
  family: 0 | 4 | 6;
}

export type RuleKind = 'exact' | 'wildcard' | 'address' | 'network';

/** A validated rule, ready to match. */
export interface ParsedRule {
  readonly kind: RuleKind;
  /** Normalised host (`*.example.com`, `10.0.0.0/8`, `::1`, `api.example.com`). */
  readonly host: string;
  readonly port: number;
  /** `host:port` as a person writes it (`[::1]:443` for IPv6). */
  readonly text: string;
  /** Does this rule cover the (normalised) destination? */
  matches(target: NormalizedHost, port: number): boolean;
}

const labelPattern = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => labelPattern.test(label));
}

/**
 * Normalises a host as a client sent it: case, a trailing dot, IDN to punycode, IPv6 brackets and
 * zero compression, and the numeric IPv4 spellings a resolver would accept (`2130706433`,
 * `0x7f.1`) turned into the dotted address they mean, so that no spelling slips past a rule.
 * Returns undefined for something that is neither a valid name nor an IP literal.
 */
export function normalizeHost(rawHost: string): NormalizedHost | undefined {
  let host = rawHost.trim();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.includes('%')) {
    // A zone index (fe80::1%eth0) names an interface of the proxy's host, never a destination.
    if (isIPv6(host.slice(0, host.indexOf('%')))) return undefined;
  }
  if (isIPv6(host)) {
    const canonical = domainToASCII(`[${host}]`);
    return canonical ? { host: canonical.slice(1, -1), family: 6 } : undefined;
  }
  const ascii = domainToASCII(host);
  if (!ascii) return undefined;
  if (ascii.startsWith('[')) return { host: ascii.slice(1, -1), family: 6 };
  if (isIPv4(ascii)) return { host: ascii, family: 4 };
  const name = ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
  return isValidName(name) ? { host: name, family: 0 } : undefined;
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function invalidRule(text: string, reason: string): BulkheadError {
  return new BulkheadError('EGRESS_RULE_INVALID', `Egress rule '${text}' is invalid: ${reason}.`, {
    capability: 'network.allowlist',
    fix: "write rules as 'api.example.com:443', '*.example.com:443', '203.0.113.7:443', '[2001:db8::1]:443' or '203.0.113.0/24:443'",
  });
}

/**
 * Splits `host:port` (also `[ipv6]:port` and `[ipv6/prefix]:port`) into an endpoint. Used for rules
 * given as text on a command line.
 */
export function parseEndpointText(text: string): Endpoint {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const plain = /^([^:[\]]+):(\d+)$/.exec(text);
  const match = bracketed ?? plain;
  if (!match?.[1] || !match[2]) throw invalidRule(text, "expected 'host:port' (IPv6 in brackets)");
  return { host: match[1], port: Number(match[2]) };
}

/**
 * Validates and normalises one rule. Accepts an endpoint object or `host:port` text. Throws a
 * `BulkheadError` with code `EGRESS_RULE_INVALID` that says what is wrong.
 */
export function parseRule(rule: EgressRule | string): ParsedRule {
  const endpoint = typeof rule === 'string' ? parseEndpointText(rule) : rule;
  const text = typeof rule === 'string' ? rule : formatEndpoint(rule.host, rule.port);
  const { port } = endpoint;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidRule(text, `the port must be a whole number from 1 to 65535, not ${String(port)}`);
  }
  const rawHost = endpoint.host.trim();

  if (rawHost.includes('/')) {
    const [address = '', prefixText = ''] = rawHost.replace(/^\[|\]$/g, '').split('/');
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
    if (!family) throw invalidRule(text, `'${address}' in a CIDR must be an IPv4 or IPv6 address`);
    if (!(prefix >= 0 && prefix <= (family === 'ipv4' ? 32 : 128))) {
      throw invalidRule(text, `the prefix length must be 0-${family === 'ipv4' ? 32 : 128}`);
    }
    const list = new BlockList();
    list.addSubnet(address, prefix, family);
    const host = `${normalizeHost(address)?.host ?? address}/${prefix}`;
    return {
      kind: 'network',
      host,
      port,
      text: formatEndpoint(host, port),
      matches: (target, targetPort) =>
        targetPort === port && target.family !== 0 && checkAddress(list, target),
    };
  }

  if (rawHost.startsWith('*.')) {
    const base = normalizeHost(rawHost.slice(2));
    if (base?.family !== 0) {
      throw invalidRule(text, `'${rawHost.slice(2)}' after '*.' must be a domain name`);
    }
    const suffix = `.${base.host}`;
    const host = `*${suffix}`;
    return {
      kind: 'wildcard',
      host,
      port,
      text: formatEndpoint(host, port),
      matches: (target, targetPort) =>
        targetPort === port &&
        target.family === 0 &&
        target.host.endsWith(suffix) &&
        target.host.length > suffix.length,
    };
  }
  if (rawHost.includes('*')) {
    throw invalidRule(text, "a wildcard is only allowed as a whole leftmost label ('*.example.com')");
  }

  const normalized = normalizeHost(rawHost);
  if (!normalized) throw invalidRule(text, `'${rawHost}' is neither a host name nor an IP address`);
  if (normalized.family !== 0) {
    const list = new BlockList();
    list.addAddress(normalized.host, normalized.family === 4 ? 'ipv4' : 'ipv6');
    return {
      kind: 'address',
      host: normalized.host,
      port,
      text: formatEndpoint(normalized.host, port),
      matches: (target, targetPort) =>
        targetPort === port && target.family !== 0 && checkAddress(list, target),
    };
  }
  return {
    kind: 'exact',
    host: normalized.host,
    port,
    text: formatEndpoint(normalized.host, port),
    matches: (target, targetPort) =>
      targetPort === port && target.family === 0 && target.host === normalized.host,
  };
}

function checkAddress(list: BlockList, target: NormalizedHost): boolean {
  if (list.check(target.host, target.family === 4 ? 'ipv4' : 'ipv6')) return true;
  const embedded = embeddedIPv4(target.host);
  return embedded !== undefined && list.check(embedded, 'ipv4');
}

/**
 * Does `rule` cover `host:port`? The host is normalised first, so `API.Example.COM.` matches
 * `api.example.com:443`. A name rule never covers an IP literal and an IP rule never covers a name:
 * the proxy checks the addresses a name resolves to separately.
 */
export function matchEndpoint(rule: EgressRule | ParsedRule | string, host: string, port: number): boolean {
  const parsed = typeof rule === 'object' && 'matches' in rule ? rule : parseRule(rule);
  const target = normalizeHost(host);
  return target !== undefined && parsed.matches(target, port);
}
