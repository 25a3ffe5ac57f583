import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Violation } from '@bulkhead/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEgressProxy, type EgressChannel, type EgressProxy, getEgressProxy } from './egress-proxy.js';
import { createStaticResolver } from './resolver.js';
import {
  closeServer,
  httpConnect,
  listen,
  readUntil,
  type SocksAddress,
  socksConnect,
  startEchoServer,
  startHttpServer,
} from './test-support/loopback.js';

// Test names map to loopback only through the pluggable resolver; no test touches the system's DNS.
const resolver = createStaticResolver([
  'echo.test:127.0.0.1',
  'api.example.com:127.0.0.1',
  'example.com:127.0.0.1',
  'evil-example.com:127.0.0.1',
  'other.test:127.0.0.1',
  'rebind.test:127.0.0.1',
  'metadata.test:169.254.169.254',
  'denied.example.com:127.0.0.1',
]);

let directory: string;
let proxy: EgressProxy;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
let web: Awaited<ReturnType<typeof startHttpServer>>;
const opened: EgressChannel[] = [];

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'bh-egress-'));
  proxy = createEgressProxy({
    resolver,
    socketDirectory: join(directory, 'sockets'),
    connectTimeoutMs: 3000,
  });
  echo = await startEchoServer();
  web = await startHttpServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      response.setHeader('content-type', 'text/plain');
      response.end(
        `${request.method} ${request.url} host=${request.headers.host} te=${request.headers['transfer-encoding'] ?? '-'} proxy-header=${request.headers['proxy-connection'] ?? '-'} body=${body}`,
      );
    });
  });
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((channel) => channel.close()));
});

afterAll(async () => {
  await proxy.close();
  await echo.close();
  await web.close();
  rmSync(directory, { recursive: true, force: true });
});

async function open(
  allow: string[],
  deny: string[] = [],
): Promise<{ channel: EgressChannel; seen: Violation[] }> {
  const seen: Violation[] = [];
  const toEndpoint = (text: string) => {
    const index = text.lastIndexOf(':');
    return { host: text.slice(0, index).replace(/^\[|\]$/g, ''), port: Number(text.slice(index + 1)) };
  };
  const channel = await proxy.openChannel({
    sandboxId: `sandbox-${opened.length + 1}`,
    allow: allow.map(toEndpoint),
    deny: deny.map(toEndpoint),
    onViolation: (violation) => seen.push(violation),
  });
  opened.push(channel);
  return { channel, seen };
}

async function echoRoundTrip(socket: import('node:net').Socket): Promise<string> {
  const greeting = await readUntil(socket, (data) => data.includes('\n'));
  socket.write('ping\n');
  const echoed = await readUntil(socket, (data) => data.includes('ping\n'));
  socket.destroy();
  return greeting.toString() + echoed.toString();
}

describe('HTTP CONNECT', () => {
  it('tunnels to an allowed name, connecting to the address the resolver gave', async () => {
    const { channel } = await open([`echo.test:${echo.port}`, `127.0.0.1:${echo.port}`]);
    const { status, socket } = await httpConnect(channel.socketPath, `echo.test:${echo.port}`);
    expect(status).toBe(200);
    expect(await echoRoundTrip(socket)).toBe('hello\nping\n');
    expect(channel.violations).toEqual([]);
  });

  it('tunnels to an allowed IPv4 literal and an allowed IPv6 literal', async () => {
    const echo6 = await startEchoServer('::1');
    try {
      const { channel } = await open([`127.0.0.1:${echo.port}`, `[::1]:${echo6.port}`]);
      const ipv4 = await httpConnect(channel.socketPath, `127.0.0.1:${echo.port}`);
      expect(ipv4.status).toBe(200);
      expect(await echoRoundTrip(ipv4.socket)).toBe('hello\nping\n');
      const ipv6 = await httpConnect(channel.socketPath, `[0:0::1]:${echo6.port}`);
      expect(ipv6.status).toBe(200);
      expect(await echoRoundTrip(ipv6.socket)).toBe('hello\nping\n');
    } finally {
      await echo6.close();
    }
  });

  it('matches names after normalising case and a trailing dot', async () => {
    const { channel } = await open([`echo.test:${echo.port}`, `127.0.0.1:${echo.port}`]);
    const { status, socket } = await httpConnect(channel.socketPath, `ECHO.Test.:${echo.port}`);
    expect(status).toBe(200);
    socket.destroy();
  });

  it('delivers everything an upstream sent before it closed', async () => {
    const size = 16 << 20;
    const bulk = createServer((socket) => socket.end(Buffer.alloc(size, 7)));
    const port = await listen(bulk);
    try {
      const { channel } = await open([`echo.test:${port}`, `127.0.0.1:${port}`]);
      const { status, socket } = await httpConnect(channel.socketPath, `echo.test:${port}`);
      expect(status).toBe(200);
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.resume();
      await once(socket, 'end');
      expect(received).toBe(size);
    } finally {
      await closeServer(bulk);
    }
  });

  it('answers an unreachable allowed destination with 502, not a hang', async () => {
    const closed = await startEchoServer();
    const port = closed.port;
    await closed.close();
    const { channel } = await open([`echo.test:${port}`, `127.0.0.1:${port}`]);
    const { status, head } = await httpConnect(channel.socketPath, `echo.test:${port}`);
    expect(status).toBe(502);
    expect(head).toMatch(/x-bulkhead-error: upstream-failed/i);
    expect(channel.violations).toEqual([]);
  });
});

describe('time boxes', () => {
  it('answers 504 when an allowed destination never completes the handshake', async () => {
    // A listener with a full accept queue drops further SYNs: a real black hole on loopback.
    const holder = spawn('/usr/bin/python3', [
      '-c',
      "import socket,sys,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)",
    ]);
    try {
      const [line] = await once(holder.stdout, 'data');
      const port = Number(String(line).trim());
      const filler = connect(port, '127.0.0.1');
      await once(filler, 'connect');
      const impatient = createEgressProxy({
        resolver,
        socketDirectory: join(directory, 'sockets'),
        connectTimeoutMs: 300,
      });
      const channel = await impatient.openChannel({
        sandboxId: 'black-hole',
        allow: [
          { host: 'echo.test', port },
          { host: '127.0.0.1', port },
        ],
      });
      const tunnel = await httpConnect(channel.socketPath, `echo.test:${port}`);
      expect(tunnel.status).toBe(504);
      expect(tunnel.body).toMatch(/did not answer within 300 ms/);
      const socks = await socksConnect(channel.socketPath, { type: 'domain', host: 'echo.test' }, port);
      expect(socks.reply).toBe(0x06);
      socks.socket.destroy();
      filler.destroy();
      await impatient.close();
    } finally {
      holder.kill();
    }
  });

  it('answers 502 when the resolver does not answer in time', async () => {
    const silent = createEgressProxy({
      resolver: () => new Promise(() => {}),
      socketDirectory: join(directory, 'sockets'),
      connectTimeoutMs: 200,
    });
    const channel = await silent.openChannel({
      sandboxId: 'silent-dns',
      allow: [{ host: 'echo.test', port: 443 }],
    });
    const tunnel = await httpConnect(channel.socketPath, 'echo.test:443');
    expect(tunnel.status).toBe(502);
    expect(tunnel.head).toMatch(/x-bulkhead-error: unresolved/i);
    expect(channel.violations).toEqual([]);
    await silent.close();
  });
});

describe('refusals: immediate, explained, and reported as violations', () => {
  type Case = {
    name: string;
    allow: (port: number) => string[];
    deny?: (port: number) => string[];
    target: (port: number) => string;
    reason: string;
    rule: RegExp;
  };
  const cases: Case[] = [
    {
      name: 'a name that is not allowed',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      target: (port) => `other.test:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'the allowed port on another host',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      target: (port) => `api.example.com:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'an allowed host on another port',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      target: (port) => `echo.test:${port + 1}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: "'evil-example.com' against '*.example.com'",
      allow: (port) => [`*.example.com:${port}`, `127.0.0.1:${port}`],
      target: (port) => `evil-example.com:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: "'example.com' itself against '*.example.com'",
      allow: (port) => [`*.example.com:${port}`, `127.0.0.1:${port}`],
      target: (port) => `example.com:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'a raw IPv4 literal that is not allowed',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      target: (port) => `127.0.0.2:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'a numeric spelling of a loopback address (2130706433)',
      allow: (port) => [`echo.test:${port}`],
      target: (port) => `2130706433:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'an IPv6 literal that is not allowed',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      target: (port) => `[::1]:${port}`,
      reason: 'not-allowed',
      rule: /^default-deny$/,
    },
    {
      name: 'an allowed name that resolves to 127.0.0.1 (rebinding)',
      allow: (port) => [`rebind.test:${port}`],
      target: (port) => `rebind.test:${port}`,
      reason: 'private-address',
      rule: /^private-address:loopback$/,
    },
    {
      name: 'an allowed name that resolves to the cloud metadata address',
      allow: () => ['metadata.test:80'],
      target: () => 'metadata.test:80',
      reason: 'private-address',
      rule: /^private-address:cloud-metadata$/,
    },
    {
      name: 'a name a deny rule covers, although a wildcard allows it',
      allow: (port) => [`*.example.com:${port}`, `127.0.0.1:${port}`],
      deny: (port) => [`denied.example.com:${port}`],
      target: (port) => `denied.example.com:${port}`,
      reason: 'denied',
      rule: /^deny denied\.example\.com:\d+$/,
    },
    {
      name: 'an allowed name whose address a deny rule covers',
      allow: (port) => [`echo.test:${port}`, `127.0.0.1:${port}`],
      deny: (port) => [`127.0.0.0/8:${port}`],
      target: (port) => `echo.test:${port}`,
      reason: 'denied',
      rule: /^deny 127\.0\.0\.0\/8:\d+$/,
    },
  ];

  for (const testCase of cases) {
    it(`refuses ${testCase.name} over CONNECT, SOCKS5 and plain HTTP`, async () => {
      const port = echo.port;
      const { channel, seen } = await open(testCase.allow(port), testCase.deny?.(port) ?? []);
      const target = testCase.target(port);
      const separator = target.lastIndexOf(':');
      const host = target.slice(0, separator).replace(/^\[|\]$/g, '');
      const targetPort = Number(target.slice(separator + 1));

      const viaConnect = await httpConnect(channel.socketPath, target);
      expect(viaConnect.status).toBe(403);
      expect(viaConnect.head).toMatch(new RegExp(`x-bulkhead-refused: ${testCase.reason}`, 'i'));
      expect(viaConnect.body).toContain('refused');
      expect(viaConnect.body).toMatch(/Rule: /);

      const socksAddress: SocksAddress = host.includes(':')
        ? { type: 'ipv6', host }
        : /^\d+\.\d+\.\d+\.\d+$/.test(host)
          ? { type: 'ipv4', host }
          : { type: 'domain', host };
      const viaSocks = await socksConnect(channel.socketPath, socksAddress, targetPort);
      expect(viaSocks.reply).toBe(0x02);
      viaSocks.socket.destroy();

      const viaHttp = await plainRequest(channel.socketPath, `http://${target}/path`);
      expect(viaHttp.status).toBe(403);
      expect(viaHttp.headers['x-bulkhead-refused']).toBe(testCase.reason);
      expect(viaHttp.body).toMatch(/Rule: /);

      expect(channel.violations.map((violation) => violation.protocol)).toEqual([
        'connect',
        'socks5',
        'http',
      ]);
      expect(seen).toEqual(channel.violations);
      for (const violation of channel.violations) {
        expect(violation).toMatchObject({ sandboxId: channel.sandboxId, kind: 'network', port: targetPort });
        expect(violation.rule).toMatch(testCase.rule);
        expect(violation.message).toMatch(/refused/);
        expect(Number.isNaN(Date.parse(violation.time))).toBe(false);
      }
    });
  }

  it('allows an allowed name resolving to loopback when the address itself is allowed', async () => {
    const { channel } = await open([`rebind.test:${echo.port}`, `127.0.0.0/8:${echo.port}`]);
    const { status, socket } = await httpConnect(channel.socketPath, `rebind.test:${echo.port}`);
    expect(status).toBe(200);
    socket.destroy();
  });

  it('keeps rules and violations per channel', async () => {
    const first = await open([`echo.test:${echo.port}`, `127.0.0.1:${echo.port}`]);
    const second = await open([`other.test:${echo.port}`, `127.0.0.1:${echo.port}`]);
    const allowedInFirst = await httpConnect(first.channel.socketPath, `echo.test:${echo.port}`);
    const refusedInSecond = await httpConnect(second.channel.socketPath, `echo.test:${echo.port}`);
    allowedInFirst.socket.destroy();
    expect(allowedInFirst.status).toBe(200);
    expect(refusedInSecond.status).toBe(403);
    expect(first.channel.violations).toEqual([]);
    expect(second.channel.violations).toHaveLength(1);
    expect(second.channel.violations[0]?.sandboxId).toBe(second.channel.sandboxId);
  });

  it('hands a channel opened ahead of its sandbox to the sandbox that takes it', async () => {
    const { channel, seen } = await open([`other.test:${echo.port}`]);
    const taken: Violation[] = [];
    channel.assign({ sandboxId: 'the-taker', onViolation: (violation) => taken.push(violation) });
    const refused = await httpConnect(channel.socketPath, `echo.test:${echo.port}`);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('for sandbox the-taker');
    expect(seen).toEqual([]);
    expect(taken.map((violation) => violation.sandboxId)).toEqual(['the-taker']);
    expect(channel.sandboxId).toBe('the-taker');
  });
});

describe('SOCKS5', () => {
  it('connects by domain name (remote resolution), IPv4 and IPv6 address types', async () => {
    const echo6 = await startEchoServer('::1');
    try {
      const { channel } = await open([
        `echo.test:${echo.port}`,
        `127.0.0.1:${echo.port}`,
        `[::1]:${echo6.port}`,
      ]);
      const byName = await socksConnect(channel.socketPath, { type: 'domain', host: 'echo.test' }, echo.port);
      expect(byName.reply).toBe(0);
      expect(await echoRoundTrip(byName.socket)).toBe('hello\nping\n');
      const byIPv4 = await socksConnect(channel.socketPath, { type: 'ipv4', host: '127.0.0.1' }, echo.port);
      expect(byIPv4.reply).toBe(0);
      expect(await echoRoundTrip(byIPv4.socket)).toBe('hello\nping\n');
      const byIPv6 = await socksConnect(channel.socketPath, { type: 'ipv6', host: '::1' }, echo6.port);
      expect(byIPv6.reply).toBe(0);
      expect(await echoRoundTrip(byIPv6.socket)).toBe('hello\nping\n');
    } finally {
      await echo6.close();
    }
  });

  it('keeps the bytes of a client that sends greeting, request and data in one write', async () => {
    const { channel } = await open([`echo.test:${web.port}`, `127.0.0.1:${web.port}`]);
    const socket = connect(channel.socketPath);
    const name = Buffer.from('echo.test');
    socket.write(
      Buffer.concat([
        Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]),
        name,
        Buffer.from([web.port >> 8, web.port & 255]),
        Buffer.from(`GET /eager HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n`),
      ]),
    );
    const received = (await readUntil(socket, () => false)).toString('latin1');
    expect(received.slice(0, 4)).toBe('\x05\x00\x05\x00');
    expect(received).toContain('GET /eager host=echo.test');
  });

  it('answers host unreachable for an allowed name that does not resolve', async () => {
    const { channel } = await open([`nowhere.test:${echo.port}`]);
    const { reply, socket } = await socksConnect(
      channel.socketPath,
      { type: 'domain', host: 'nowhere.test' },
      echo.port,
    );
    socket.destroy();
    expect(reply).toBe(0x04);
    expect(channel.violations).toEqual([]);
  });
});

function plainRequest(
  socketPath: string,
  url: string,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      socketPath,
      path: url,
      method: options.method ?? 'GET',
      headers: { host: URL.canParse(url) ? new URL(url).host : 'localhost', ...options.headers },
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

describe('plain HTTP with absolute URIs', () => {
  it('forwards requests, drops hop-by-hop headers and streams chunked bodies', async () => {
    const { channel } = await open([`echo.test:${web.port}`, `127.0.0.1:${web.port}`]);
    const get = await plainRequest(channel.socketPath, `http://echo.test:${web.port}/a?b=c`, {
      headers: { 'proxy-connection': 'keep-alive' },
    });
    expect(get.status).toBe(200);
    expect(get.body).toBe(`GET /a?b=c host=echo.test:${web.port} te=- proxy-header=- body=`);

    const chunked = await plainRequest(channel.socketPath, `http://echo.test:${web.port}/upload`, {
      method: 'POST',
      body: 'chunked-body',
      headers: { 'transfer-encoding': 'chunked' },
    });
    expect(chunked.body).toBe(
      `POST /upload host=echo.test:${web.port} te=chunked proxy-header=- body=chunked-body`,
    );
  });

  it('sends the host of the judged URI, not a different Host header the client chose', async () => {
    const { channel } = await open([`echo.test:${web.port}`, `127.0.0.1:${web.port}`]);
    const fronted = await plainRequest(channel.socketPath, `http://echo.test:${web.port}/`, {
      headers: { host: 'not-allowed.test' },
    });
    expect(fronted.body).toBe(`GET / host=echo.test:${web.port} te=- proxy-header=- body=`);
  });

  it('serves several requests, to different hosts, on one kept-alive connection', async () => {
    const { channel } = await open([`echo.test:${web.port}`, `127.0.0.1:${web.port}`]);
    const socket = connect(channel.socketPath);
    const request = (target: string) =>
      `GET ${target} HTTP/1.1\r\nHost: ${new URL(target).host}\r\nConnection: keep-alive\r\n\r\n`;
    // Pipelined, so the first byte and the rest arrive together: the protocol detection must not lose any.
    socket.write(request(`http://echo.test:${web.port}/one`) + request(`http://other.test:${web.port}/two`));
    const first = await readUntil(
      socket,
      (data) => /refused/.test(data.toString()) && data.toString().includes('Rule:'),
    );
    const text = first.toString();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('GET /one host=echo.test');
    expect(text).toMatch(/HTTP\/1\.1 403 Forbidden/);
    socket.write(request(`http://127.0.0.1:${web.port}/three`));
    const third = await readUntil(socket, (data) => data.toString().includes('/three'));
    expect(third.toString()).toMatch(/^HTTP\/1\.1 200/);
    socket.destroy();
    expect(channel.violations.map((violation) => violation.host)).toEqual(['other.test']);
  });

  it('forwards an upgrade (WebSocket-style) request to an allowed host and refuses one off the list', async () => {
    const upgrading = await startHttpServer((_request, response) => response.end());
    upgrading.server.on('upgrade', (request, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: demo\r\nConnection: Upgrade\r\nX-Path: ${request.url}\r\n\r\n`,
      );
      socket.pipe(socket);
    });
    try {
      const { channel } = await open([`echo.test:${upgrading.port}`, `127.0.0.1:${upgrading.port}`]);
      const upgrade = (host: string) =>
        `GET http://${host}:${upgrading.port}/socket HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: demo\r\n\r\n`;
      const allowed = connect(channel.socketPath);
      allowed.write(upgrade('echo.test'));
      const switched = await readUntil(allowed, (data) => data.includes('\r\n\r\n'));
      expect(switched.toString()).toMatch(/^HTTP\/1\.1 101[\s\S]*X-Path: \/socket/);
      allowed.write('over the upgraded connection');
      expect((await readUntil(allowed, (data) => data.includes('connection'))).toString()).toBe(
        'over the upgraded connection',
      );
      allowed.destroy();
      const refused = connect(channel.socketPath);
      refused.write(upgrade('other.test'));
      const answer = await readUntil(refused, (data) => data.includes('Rule:'));
      expect(answer.toString()).toMatch(/^HTTP\/1\.1 403[\s\S]*x-bulkhead-refused: not-allowed/i);
      refused.destroy();
      expect(channel.violations).toMatchObject([{ host: 'other.test', protocol: 'http' }]);
    } finally {
      await upgrading.close();
    }
  });

  it('refuses a request that is not in absolute form with 400', async () => {
    const { channel } = await open([`echo.test:${web.port}`]);
    const response = await plainRequest(channel.socketPath, '/relative');
    expect(response.status).toBe(400);
    expect(response.body).toMatch(/absolute URI/);
  });
});

describe('channels', () => {
  it('creates the socket in a private directory with the requested mode, and removes it at close', async () => {
    const channel = await proxy.openChannel({ sandboxId: 'modes', allow: [], socketMode: 0o666 });
    expect(statSync(join(directory, 'sockets')).mode & 0o777).toBe(0o700);
    expect(statSync(channel.socketPath).mode & 0o777).toBe(0o666);
    expect(statSync(channel.socketPath).isSocket()).toBe(true);
    await channel.close();
    expect(existsSync(channel.socketPath)).toBe(false);
  });

  it('removes sockets left behind by a process that no longer runs', async () => {
    const sockets = join(directory, 'sockets');
    const gone = spawn('true');
    await once(gone, 'exit');
    const stale = join(sockets, `egress-${gone.pid}-crashed-0a1b2c.sock`);
    const alive = join(sockets, `egress-${process.pid}-alive-0a1b2c.sock`);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(stale, '');
    writeFileSync(alive, '');
    const fresh = createEgressProxy({ resolver, socketDirectory: sockets });
    await fresh.openChannel({ sandboxId: 'after-crash', allow: [] });
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(alive)).toBe(true);
    rmSync(alive);
    await fresh.close();
  });

  it("turns away connections beyond the channel's limit", async () => {
    const channel = await proxy.openChannel({ sandboxId: 'limited', allow: [], maxConnections: 2 });
    opened.push(channel);
    const held = [connect(channel.socketPath), connect(channel.socketPath)];
    await Promise.all(held.map((socket) => once(socket, 'connect')));
    const extra = connect(channel.socketPath);
    extra.on('error', () => {});
    // Without the limit the proxy would wait for this client's first byte and never close it.
    await once(extra, 'close');
    for (const socket of held) socket.destroy();
  });

  it('ends the open tunnels of a channel when it closes', async () => {
    const { channel } = await open([`echo.test:${echo.port}`, `127.0.0.1:${echo.port}`]);
    const { socket } = await httpConnect(channel.socketPath, `echo.test:${echo.port}`);
    await readUntil(socket, (data) => data.includes('\n'));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await channel.close();
    await ended;
    expect(proxy.channels).not.toContain(channel);
  });

  it('rejects an invalid rule when the channel opens', async () => {
    await expect(
      proxy.openChannel({ sandboxId: 'bad', allow: [{ host: 'exa*mple.com', port: 443 }] }),
    ).rejects.toMatchObject({ code: 'EGRESS_RULE_INVALID' });
    await expect(
      proxy.openChannel({ sandboxId: 'bad', allow: [{ host: 'example.com', port: 0 }] }),
    ).rejects.toMatchObject({
      code: 'EGRESS_RULE_INVALID',
    });
  });

  it('refuses a socket directory that others can enter', async () => {
    const open = join(directory, 'world-open');
    const { mkdirSync, chmodSync } = await import('node:fs');
    mkdirSync(open);
    chmodSync(open, 0o755);
    const unsafe = createEgressProxy({ resolver, socketDirectory: open });
    await expect(unsafe.openChannel({ sandboxId: 'x', allow: [] })).rejects.toMatchObject({
      code: 'EGRESS_SOCKET_DIRECTORY_UNSAFE',
    });
    await unsafe.close();
  });

  it('shares one proxy per process and refuses conflicting options', async () => {
    const shared = getEgressProxy({ resolver, socketDirectory: join(directory, 'shared') });
    expect(getEgressProxy()).toBe(shared);
    expect(() => getEgressProxy({ connectTimeoutMs: 1 })).toThrow(/other options/);
    await shared.close();
    expect(getEgressProxy({ resolver, socketDirectory: join(directory, 'shared') })).not.toBe(shared);
    await getEgressProxy().close();
  });
});
