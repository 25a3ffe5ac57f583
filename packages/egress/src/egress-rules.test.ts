import { describe, expect, it } from 'vitest';
import { classifyAddress } from './address-ranges.js';
import { compilePolicy, judgeDestination } from './egress-policy.js';
import { matchEndpoint, normalizeHost, parseRule } from './egress-rules.js';
import { createStaticResolver, parseResolveEntry, rulesForResolveEntries } from './resolver.js';

describe('normalizeHost', () => {
  it.each([
    ['API.Example.COM.', 'api.example.com', 0],
    ['Bücher.example', 'xn--bcher-kva.example', 0],
    ['[::FFFF:127.0.0.1]', '::ffff:7f00:1', 6],
    ['0:0::1', '::1', 6],
    ['2130706433', '127.0.0.1', 4],
    ['0x7f.1', '127.0.0.1', 4],
    ['0177.0.0.1', '127.0.0.1', 4],
  ])('%s -> %s', (raw, host, family) => {
    expect(normalizeHost(raw)).toEqual({ host, family });
  });

  it.each(['', 'a..b', 'ex ample.com', '-bad.example', 'fe80::1%eth0', `${'a'.repeat(64)}.example`])(
    'refuses %j',
    (raw) => {
      expect(normalizeHost(raw)).toBeUndefined();
    },
  );
});

describe('rules', () => {
  it('matches a wildcard on subdomains only, never the domain itself nor a look-alike', () => {
    const rule = parseRule({ host: '*.Example.com', port: 443 });
    expect(rule.text).toBe('*.example.com:443');
    expect(matchEndpoint(rule, 'api.example.com', 443)).toBe(true);
    expect(matchEndpoint(rule, 'a.b.EXAMPLE.com.', 443)).toBe(true);
    expect(matchEndpoint(rule, 'example.com', 443)).toBe(false);
    expect(matchEndpoint(rule, 'evil-example.com', 443)).toBe(false);
    expect(matchEndpoint(rule, 'example.com.evil.test', 443)).toBe(false);
    expect(matchEndpoint(rule, 'api.example.com', 80)).toBe(false);
  });

  it('matches IP literals and CIDRs by address, whatever the spelling', () => {
    expect(matchEndpoint('203.0.113.0/24:443', '203.0.113.77', 443)).toBe(true);
    expect(matchEndpoint('203.0.113.0/24:443', '203.0.114.1', 443)).toBe(false);
    expect(matchEndpoint('[2001:db8::/32]:443', '2001:DB8:0:0::5', 443)).toBe(true);
    expect(matchEndpoint({ host: '2001:db8::1', port: 443 }, '[2001:db8:0::1]', 443)).toBe(true);
    expect(matchEndpoint('127.0.0.1:80', '::ffff:127.0.0.1', 80)).toBe(true);
    expect(matchEndpoint('127.0.0.1:80', '2130706433', 80)).toBe(true);
  });

  it('never lets a name rule cover an address or an address rule cover a name', () => {
    expect(matchEndpoint('localhost:80', '127.0.0.1', 80)).toBe(false);
    expect(matchEndpoint('127.0.0.1:80', 'localhost', 80)).toBe(false);
  });

  it.each([
    [{ host: 'exa*mple.com', port: 443 }, /wildcard/],
    [{ host: '*', port: 443 }, /wildcard/],
    [{ host: 'example.com', port: 0 }, /port/],
    [{ host: 'example.com', port: 70000 }, /port/],
    [{ host: '10.0.0.0/33', port: 443 }, /prefix/],
    [{ host: 'ex ample.com', port: 443 }, /neither/],
    ['example.com', /host:port/],
  ])('rejects %j with a reason', (rule, reason) => {
    expect(() => parseRule(rule)).toThrow(reason);
    try {
      parseRule(rule);
    } catch (error) {
      expect(error).toMatchObject({ code: 'EGRESS_RULE_INVALID', capability: 'network.allowlist' });
      expect((error as { fix?: string }).fix).toMatch(/example\.com:443/);
    }
  });
});

describe('classifyAddress', () => {
  it.each([
    ['169.254.169.254', 'cloud-metadata'],
    ['fd00:ec2::254', 'cloud-metadata'],
    ['127.0.0.53', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['64:ff9b::a00:1', 'private'],
    ['10.1.2.3', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['100.64.0.1', 'shared-address-space'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
  ])('%s is %s', (address, range) => {
    expect(classifyAddress(address)).toBe(range);
  });

  it.each(['203.0.113.9', '172.32.0.1', '2001:db8::1', '8.8.8.8'])('%s is ordinary', (address) => {
    expect(classifyAddress(address)).toBeUndefined();
  });
});

describe('judgeDestination', () => {
  const resolver = createStaticResolver({
    'mixed.test': ['127.0.0.1', '203.0.113.5'],
    'private.test': ['10.0.0.5'],
  });

  it('keeps only the public addresses of a name that also resolves to private ones', async () => {
    const decision = await judgeDestination(
      compilePolicy([{ host: 'mixed.test', port: 443 }]),
      'mixed.test',
      443,
      resolver,
    );
    expect(decision).toMatchObject({
      outcome: 'allowed',
      addresses: ['203.0.113.5'],
      rule: 'mixed.test:443',
    });
  });

  it('names the allowed ports when only the port is wrong', async () => {
    const decision = await judgeDestination(
      compilePolicy([{ host: 'mixed.test', port: 443 }]),
      'mixed.test',
      22,
      resolver,
    );
    expect(decision).toMatchObject({ outcome: 'refused', reason: 'not-allowed' });
    expect(decision.outcome === 'refused' && decision.message).toMatch(
      /only on port 443.*Fix: add 'mixed\.test:22'/,
    );
  });

  it('reports a name that does not resolve as unresolved, not as a violation', async () => {
    const decision = await judgeDestination(
      compilePolicy([{ host: 'gone.test', port: 443 }]),
      'gone.test',
      443,
      resolver,
    );
    expect(decision).toMatchObject({ outcome: 'unresolved' });
  });

  it('refuses private addresses unless a CIDR allows them', async () => {
    const refused = await judgeDestination(
      compilePolicy([{ host: 'private.test', port: 443 }]),
      'private.test',
      443,
      resolver,
    );
    expect(refused).toMatchObject({
      outcome: 'refused',
      reason: 'private-address',
      rule: 'private-address:private',
    });
    const allowed = await judgeDestination(
      compilePolicy([
        { host: 'private.test', port: 443 },
        { host: '10.0.0.0/8', port: 443 },
      ]),
      'private.test',
      443,
      resolver,
    );
    expect(allowed).toMatchObject({ outcome: 'allowed', addresses: ['10.0.0.5'] });
  });
});

describe('resolve entries', () => {
  it('parses NAME:ADDRESS with IPv4 and IPv6 addresses', () => {
    expect(parseResolveEntry('Registry.Test:127.0.0.1')).toEqual({
      host: 'registry.test',
      address: '127.0.0.1',
    });
    expect(parseResolveEntry('registry.test:[::1]')).toEqual({ host: 'registry.test', address: '::1' });
    expect(parseResolveEntry('registry.test:::1')).toEqual({ host: 'registry.test', address: '::1' });
    expect(() => parseResolveEntry('registry.test')).toThrow(/NAME:ADDRESS/);
    expect(() => parseResolveEntry('registry.test:other.test')).toThrow(/NAME:ADDRESS/);
  });

  it('answers mapped names and fails others with ENOTFOUND', async () => {
    const resolve = createStaticResolver(['a.test:127.0.0.1', 'a.test:::1']);
    expect(await resolve('A.test.')).toEqual(['127.0.0.1', '::1']);
    await expect(resolve('b.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('rulesForResolveEntries', () => {
  it('allows the mapped address on the ports its name is allowed, so the mapping passes the rebinding check', async () => {
    const allow = [
      { host: 'registry.test', port: 443 },
      { host: '*.cdn.test', port: 8443 },
      { host: 'other.test', port: 80 },
    ];
    const entries = ['registry.test:127.0.0.1', 'a.cdn.test:::1', 'unused.test:10.0.0.1'];
    const extra = rulesForResolveEntries(allow, entries);
    expect(extra).toEqual([
      { host: '127.0.0.1', port: 443 },
      { host: '::1', port: 8443 },
    ]);
    const resolve = createStaticResolver(entries);
    const without = await judgeDestination(compilePolicy(allow), 'registry.test', 443, resolve);
    expect(without).toMatchObject({ outcome: 'refused', reason: 'private-address' });
    const withRules = await judgeDestination(
      compilePolicy([...allow, ...extra]),
      'registry.test',
      443,
      resolve,
    );
    expect(withRules).toMatchObject({ outcome: 'allowed', addresses: ['127.0.0.1'] });
  });
});
