import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Endpoint } from '@bulkhead/core';

/** The ports a host without one means: HTTPS and HTTP, the two an agent reaches by name. */
export const DEFAULT_PORTS = [443, 80] as const;

export type EndpointParseResult = { ok: true; endpoints: Endpoint[] } | { ok: false; reason: string };

const HOST_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** IPv6 literals compare equal however they are written: the URL parser compresses them. */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

function parsePort(text: string): number | string {
  if (!/^\d{1,5}$/.test(text)) return `'${text}' is not a port number`;
  const port = Number(text);
  if (port < 1 || port > 65535) return `port ${port} is outside 1-65535`;
  return port;
}

function ipv4ToBigInt(address: string): bigint {
  return address.split('.').reduce((total, part) => (total << 8n) + BigInt(Number(part)), 0n);
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups first.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail?.[1]) {
    const value = ipv4ToBigInt(tail[1]);
    text = `${text.slice(0, -tail[1].length)}${(value >> 16n).toString(16)}:${(value & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest === undefined ? [] : rest ? rest.split(':') : [];
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...restGroups];
  return groups.reduce((total, group) => (total << 16n) + BigInt(Number.parseInt(group, 16)), 0n);
}

function bigIntToIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => ((value >> shift) & 0xffn).toString()).join('.');
}

function bigIntToIPv6(value: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((value >> shift) & 0xffffn).toString(16));
  return canonicalIPv6(groups.join(':'));
}

interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
}

function parseCidr(text: string): Cidr | string {
  const [address = '', prefixText = ''] = text.split('/');
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  if (!family) return `'${address}' in '${text}' is not an IPv4 or IPv6 address`;
  const bits = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
    return `'/${prefixText}' is not a prefix length for IPv${family} (0-${bits})`;
  }
  const prefix = Number(prefixText);
  const value = family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  // Host bits are cleared so that 10.1.2.3/8 and 10.0.0.0/8 are one rule.
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { family, network: value & mask, prefix };
}

function formatCidr(cidr: Cidr): string {
  return `${cidr.family === 4 ? bigIntToIPv4(cidr.network) : bigIntToIPv6(cidr.network)}/${cidr.prefix}`;
}

function canonicalHostName(text: string): string | { error: string } {
  const wildcard = text.startsWith('*.');
  const rest = (wildcard ? text.slice(2) : text).replace(/\.$/, '');
  if (rest.includes('*')) {
    return { error: `'*' is only allowed as the whole first label, as in '*.example.com'` };
  }
  // A numeric last label makes the URL parser treat the name as an IPv4 address.
  if (/(^|\.)\d+$/.test(rest)) return { error: `'${rest}' looks like an IP address but is not a valid one` };
  const ascii = domainToASCII(rest);
  if (!ascii) return { error: `'${rest}' is not a valid host name` };
  const labels = ascii.split('.');
  if (ascii.length > 253 || !labels.every((label) => HOST_LABEL.test(label))) {
    return { error: `'${rest}' is not a valid host name` };
  }
  return wildcard ? `*.${ascii}` : ascii;
}

/**
 * One allow-list entry as written in a manifest, policy or CLI flag, to the endpoints it means:
 * `host:port`, `*.domain:port`, an IPv4 literal, `[v6]:port` or a bare IPv6 literal, a CIDR with an
 * optional port (`10.0.0.0/8:443`, `[2001:db8::/32]:443`). Without a port, 443 and 80.
 */
export function parseEndpoint(input: string): EndpointParseResult {
  const text = input.trim().toLowerCase();
  if (!text) return { ok: false, reason: 'the endpoint is empty' };
  if (text === '*' || text.startsWith('*:')) {
    return {
      ok: false,
      reason: `'*' would allow every host; to allow the whole internet set 'internet: true' and remove the allow list`,
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(text)) {
    return {
      ok: false,
      reason: `write the host and port without a scheme, e.g. '${text.replace(/^[a-z][a-z0-9+.-]*:\/\//, '').replace(/\/.*$/, '')}'`,
    };
  }
  if (/\s/.test(text)) return { ok: false, reason: 'an endpoint cannot contain spaces' };

  let hostPart: string;
  let portPart: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, reason: `missing ']' after the IPv6 address` };
    hostPart = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after && !after.startsWith(':'))
      return { ok: false, reason: `expected ':PORT' after ']', found '${after}'` };
    portPart = after ? after.slice(1) : undefined;
    if (!isIPv6(hostPart.split('/')[0] ?? ''))
      return { ok: false, reason: `'${hostPart}' in brackets is not an IPv6 address` };
  } else if ((text.match(/:/g) ?? []).length > 1) {
    // Two or more colons without brackets: an IPv6 literal or CIDR, which cannot carry a port.
    hostPart = text;
    if (!isIPv6(hostPart.split('/')[0] ?? '')) {
      return {
        ok: false,
        reason: `'${text}' is not an IPv6 address; to add a port to one write '[ADDRESS]:PORT'`,
      };
    }
  } else {
    const colon = text.lastIndexOf(':');
    hostPart = colon < 0 ? text : text.slice(0, colon);
    portPart = colon < 0 ? undefined : text.slice(colon + 1);
  }

  let ports: number[];
  if (portPart === undefined) {
    ports = [...DEFAULT_PORTS];
  } else {
    const port = parsePort(portPart);
    if (typeof port === 'string') return { ok: false, reason: port };
    ports = [port];
  }

  let host: string;
  if (hostPart.includes('/')) {
    const cidr = parseCidr(hostPart);
    if (typeof cidr === 'string') return { ok: false, reason: cidr };
    host = formatCidr(cidr);
  } else if (isIPv4(hostPart)) {
    host = hostPart;
  } else if (isIPv6(hostPart)) {
    host = canonicalIPv6(hostPart);
  } else {
    const name = canonicalHostName(hostPart);
    if (typeof name !== 'string') return { ok: false, reason: name.error };
    host = name;
  }
  return { ok: true, endpoints: ports.map((port) => ({ host, port })) };
}

/** `host:port`, with brackets around an IPv6 literal so it reads back as the same endpoint. */
export function formatEndpoint(endpoint: Endpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${host}:${endpoint.port}`;
}

function hostKind(host: string): { kind: 'ip' | 'cidr'; cidr: Cidr } | { kind: 'name'; name: string } {
  if (host.includes('/')) {
    const cidr = parseCidr(host);
    if (typeof cidr !== 'string') return { kind: 'cidr', cidr };
  }
  if (isIPv4(host)) return { kind: 'ip', cidr: { family: 4, network: ipv4ToBigInt(host), prefix: 32 } };
  if (isIPv6(host)) return { kind: 'ip', cidr: { family: 6, network: ipv6ToBigInt(host), prefix: 128 } };
  return { kind: 'name', name: host };
}

/**
 * Does `outer` allow everything `inner` allows? Used for the policy's endpoint ceiling: a wildcard
 * covers its subdomains (and narrower wildcards), a CIDR covers the addresses and CIDRs inside it.
 */
export function endpointCovers(outer: Endpoint, inner: Endpoint): boolean {
  if (outer.port !== inner.port) return false;
  if (outer.host === inner.host) return true;
  const a = hostKind(outer.host);
  const b = hostKind(inner.host);
  if (a.kind === 'name' && b.kind === 'name') {
    if (!a.name.startsWith('*.')) return false;
    const suffix = a.name.slice(1); // ".example.com"
    const name = b.name.startsWith('*.') ? b.name.slice(2) : b.name;
    return name.endsWith(suffix);
  }
  if (a.kind === 'cidr' && b.kind !== 'name') {
    if (a.cidr.family !== b.cidr.family || b.cidr.prefix < a.cidr.prefix) return false;
    const bits = a.cidr.family === 4 ? 32 : 128;
    const shift = BigInt(bits - a.cidr.prefix);
    return b.cidr.network >> shift === a.cidr.network >> shift;
  }
  if (a.kind === 'ip' && b.kind === 'ip')
    return a.cidr.family === b.cidr.family && a.cidr.network === b.cidr.network;
  return false;
}
