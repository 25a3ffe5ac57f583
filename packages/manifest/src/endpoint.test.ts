import { describe, expect, it } from 'vitest';
import { endpointCovers, formatEndpoint, parseEndpoint } from './endpoint.js';

function endpoints(input: string) {
  const result = parseEndpoint(input);
  if (!result.ok) throw new Error(`expected '${input}' to parse: ${result.reason}`);
  return result.endpoints.map(formatEndpoint);
}

function reason(input: string): string {
  const result = parseEndpoint(input);
  if (result.ok) throw new Error(`expected '${input}' to be refused`);
  return result.reason;
}

describe('parseEndpoint', () => {
  it('host:port and bare hosts (443 and 80)', () => {
    expect(endpoints('api.example.com:8443')).toEqual(['api.example.com:8443']);
    expect(endpoints('api.example.com')).toEqual(['api.example.com:443', 'api.example.com:80']);
    expect(endpoints('localhost:3000')).toEqual(['localhost:3000']);
  });

  it('lower-cases hosts, drops a trailing dot, and turns IDNs into punycode', () => {
    expect(endpoints('API.Example.COM.:443')).toEqual(['api.example.com:443']);
    expect(endpoints('bücher.example:443')).toEqual(['xn--bcher-kva.example:443']);
    expect(endpoints('*.Bücher.example:443')).toEqual(['*.xn--bcher-kva.example:443']);
  });

  it('wildcards only as the whole first label', () => {
    expect(endpoints('*.example.com:443')).toEqual(['*.example.com:443']);
    expect(reason('api.*.example.com:443')).toContain("'*' is only allowed as the whole first label");
    expect(reason('*:443')).toContain("set 'internet: true'");
    expect(reason('*')).toContain('every host');
  });

  it('IPv4 and IPv6 literals', () => {
    expect(endpoints('127.0.0.1:5432')).toEqual(['127.0.0.1:5432']);
    expect(endpoints('[::1]:443')).toEqual(['[::1]:443']);
    expect(endpoints('[0:0:0:0:0:0:0:1]:443')).toEqual(['[::1]:443']);
    expect(endpoints('2001:db8::1')).toEqual(['[2001:db8::1]:443', '[2001:db8::1]:80']);
    expect(endpoints('[2001:DB8::1]')).toEqual(['[2001:db8::1]:443', '[2001:db8::1]:80']);
  });

  it('CIDRs with an optional port, host bits cleared', () => {
    expect(endpoints('10.1.2.3/8:5432')).toEqual(['10.0.0.0/8:5432']);
    expect(endpoints('192.168.0.0/16')).toEqual(['192.168.0.0/16:443', '192.168.0.0/16:80']);
    expect(endpoints('[2001:db8::1/32]:443')).toEqual(['[2001:db8::/32]:443']);
    expect(endpoints('fd00::/8')).toEqual(['[fd00::/8]:443', '[fd00::/8]:80']);
    expect(endpoints('0.0.0.0/0:443')).toEqual(['0.0.0.0/0:443']);
  });

  it('refuses what is not an endpoint, saying why', () => {
    expect(reason('')).toContain('empty');
    expect(reason('https://api.example.com/v1')).toContain("without a scheme, e.g. 'api.example.com'");
    expect(reason('api.example.com:0')).toContain('outside 1-65535');
    expect(reason('api.example.com:http')).toContain("'http' is not a port number");
    expect(reason('10.0.0.0/33')).toContain("'/33' is not a prefix length for IPv4 (0-32)");
    expect(reason('999.1.1.1:80')).toContain('looks like an IP address');
    expect(reason('2001:db8::zz')).toContain('is not an IPv6 address');
    expect(reason('[::1')).toContain("missing ']'");
    expect(reason('[::1]443')).toContain("expected ':PORT' after ']'");
    expect(reason('exa mple.com')).toContain('spaces');
    expect(reason('-bad-.example')).toContain('not a valid host name');
  });
});

describe('endpointCovers (the policy ceiling)', () => {
  const covers = (outer: string, inner: string) => {
    const [a] = (parseEndpoint(outer) as { ok: true; endpoints: { host: string; port: number }[] }).endpoints;
    const [b] = (parseEndpoint(inner) as { ok: true; endpoints: { host: string; port: number }[] }).endpoints;
    return endpointCovers(a!, b!);
  };

  it('exact hosts and ports', () => {
    expect(covers('api.example.com:443', 'API.example.com:443')).toBe(true);
    expect(covers('api.example.com:443', 'api.example.com:80')).toBe(false);
  });

  it('a wildcard covers subdomains and narrower wildcards, never the bare domain or look-alikes', () => {
    expect(covers('*.example.com:443', 'a.b.example.com:443')).toBe(true);
    expect(covers('*.example.com:443', '*.b.example.com:443')).toBe(true);
    expect(covers('*.example.com:443', 'example.com:443')).toBe(false);
    expect(covers('*.example.com:443', 'evil-example.com:443')).toBe(false);
    expect(covers('*.b.example.com:443', '*.example.com:443')).toBe(false);
  });

  it('a CIDR covers addresses and CIDRs inside it, of its own family', () => {
    expect(covers('10.0.0.0/8:443', '10.20.30.40:443')).toBe(true);
    expect(covers('10.0.0.0/8:443', '10.20.0.0/16:443')).toBe(true);
    expect(covers('10.0.0.0/16:443', '10.0.0.0/8:443')).toBe(false);
    expect(covers('10.0.0.0/8:443', '11.0.0.1:443')).toBe(false);
    expect(covers('[2001:db8::/32]:443', '[2001:db8:1::5]:443')).toBe(true);
    expect(covers('0.0.0.0/0:443', '[::1]:443')).toBe(false);
    expect(covers('10.0.0.0/8:443', 'ten.example:443')).toBe(false);
  });
});
