import { lookup } from 'node:dns/promises';
import { BulkheadError } from '@bulkhead/core';
import type { EgressResolver } from './egress-policy.js';
import { type EgressRule, normalizeHost, parseRule } from './egress-rules.js';

/** The system resolver (`/etc/hosts`, then DNS), every address in the order the system gives. */
export const systemResolver: EgressResolver = async (host) => {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
};

/**
 * Splits a `NAME:ADDRESS` mapping as the CLI's `--resolve` takes it (the address may be IPv6, with
 * or without brackets).
 */
export function parseResolveEntry(text: string): { host: string; address: string } {
  const colon = text.indexOf(':');
  const name = normalizeHost(colon > 0 ? text.slice(0, colon) : '');
  const address = normalizeHost(colon > 0 ? text.slice(colon + 1) : '');
  if (name?.family !== 0 || !address || address.family === 0) {
    throw new BulkheadError('EGRESS_RESOLVE_INVALID', `'${text}' is not a NAME:ADDRESS mapping.`, {
      fix: "write it as 'registry.test:127.0.0.1' or 'registry.test:[::1]'",
    });
  }
  return { host: name.host, address: address.host };
}

/**
 * A resolver that answers the given names from a fixed table (names normalised, so `API.test.`
 * finds `api.test`) and hands every other name to `fallback`, or fails with ENOTFOUND without one.
 * Takes `NAME:ADDRESS` strings or a table of name -> addresses.
 */
export function createStaticResolver(
  entries: readonly string[] | Record<string, readonly string[]>,
  fallback?: EgressResolver,
): EgressResolver {
  const table = new Map<string, string[]>();
  const pairs = Array.isArray(entries)
    ? (entries as readonly string[]).map(parseResolveEntry)
    : Object.entries(entries as Record<string, readonly string[]>).flatMap(([host, addresses]) =>
        addresses.map((address) => parseResolveEntry(`${host}:${address}`)),
      );
  for (const { host, address } of pairs) table.set(host, [...(table.get(host) ?? []), address]);
  return async (host) => {
    const key = normalizeHost(host)?.host ?? host;
    const found = table.get(key);
    if (found) return [...found];
    if (fallback) return fallback(host);
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  };
}

/**
 * The address rules that let `--resolve NAME:ADDRESS` mappings pass the rebinding check: for each
 * allow rule that covers a mapped NAME, the same port on its ADDRESS. The person who mapped a test
 * name to 127.0.0.1 meant it; without these, the proxy refuses that name as DNS rebinding. (They
 * also make ADDRESS:PORT reachable by its literal, which is the same destination.)
 */
export function rulesForResolveEntries(
  allow: readonly EgressRule[],
  entries: readonly string[],
): EgressRule[] {
  const rules = allow.map((rule) => parseRule(rule));
  const extra = new Map<string, EgressRule>();
  for (const { host, address } of entries.map(parseResolveEntry)) {
    for (const rule of rules) {
      if (rule.matches({ host, family: 0 }, rule.port)) {
        extra.set(`${address} ${rule.port}`, { host: address, port: rule.port });
      }
    }
  }
  return [...extra.values()];
}
