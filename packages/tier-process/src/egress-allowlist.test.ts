import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod as chmodFile, copyFile } from 'node:fs/promises';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import {
  BulkheadError,
  type Capabilities,
  type Endpoint,
  launch,
  type RunResult,
  run,
  type Violation,
} from '@bulkhead/core';
import { createEgressProxy, createStaticResolver } from '@bulkhead/egress';
import { runtimeDirectory } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeServer,
  listen,
  selfSignedCertificate,
  startHttpServer,
  startHttpsServer,
} from '../../egress/src/test-support/loopback.js';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, leftovers, makeWorkspace, uniqueMarker } from './test-support.js';

// Real sandboxes (namespace mode) on an allow-list, real clients inside them, real servers on the
// host's loopback. Test names reach those servers only through the provider's pluggable resolver.

const NAMES = ['api.test', 'blocked.test', 'www.example.com', 'evil-example.com', 'loopback.test'];
const resolver = createStaticResolver({
  'api.test': ['127.0.0.1'],
  'blocked.test': ['127.0.0.1'],
  'www.example.com': ['127.0.0.1'],
  'evil-example.com': ['127.0.0.1'],
  'loopback.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
});
// A proxy of the test's own, so that its channels can be counted; `{ resolver }` alone works too.
const proxy = createEgressProxy({ resolver });
const provider = createProcessProvider({ mode: 'namespace', egress: { proxy } });

let workspace: string;
let certificate: ReturnType<typeof selfSignedCertificate>;
let certificatePath: string;
let api: { port: number; close(): Promise<void> };
let plain: { port: number; close(): Promise<void> };
/** A host service the allow-list names only by a name that resolves to loopback. */
let other: { port: number; close(): Promise<void> };
/** A host service on every address (0.0.0.0), which an allow-list never names. */
let wildcard: { server: Server; port: number; received: string[] };
let allow: Endpoint[];

beforeAll(async () => {
  workspace = await makeWorkspace();
  certificate = selfSignedCertificate(NAMES);
  // The sandbox uid (nobody, for a root caller) reads the certificate from its workspace.
  certificatePath = join(workspace, 'test-ca.pem');
  await copyFile(certificate.certPath, certificatePath);
  await chmodFile(certificatePath, 0o644);
  api = await startHttpsServer(certificate, (request, response) =>
    response.end(`hello from ${request.headers.host?.split(':')[0]}\n`),
  );
  plain = await startHttpServer((request, response) => {
    const bytes = /^\/bytes\/(\d+)$/.exec(request.url ?? '')?.[1];
    if (bytes === undefined) return void response.end(`plain ${request.url}\n`);
    response.writeHead(200, { 'content-length': bytes });
    response.end(Buffer.alloc(Number(bytes), 120));
  });
  other = await startHttpsServer(certificate, (_request, response) => response.end('never\n'));
  const received: string[] = [];
  const server = createNetServer((socket: Socket) => {
    socket.on('data', (chunk) => received.push(chunk.toString()));
    socket.on('error', () => {});
  });
  wildcard = { server, port: await listen(server, '0.0.0.0'), received };
  allow = [
    { host: 'api.test', port: api.port },
    { host: 'api.test', port: plain.port },
    // Loopback servers: an allowed name that resolves to 127.0.0.1 passes only with the address allowed.
    { host: '127.0.0.1', port: api.port },
    { host: '127.0.0.1', port: plain.port },
    { host: '*.example.com', port: api.port },
    { host: 'loopback.test', port: other.port },
    { host: 'metadata.test', port: 80 },
  ];
}, 60_000);

afterAll(async () => {
  await proxy.close();
  await Promise.all([api?.close(), plain?.close(), other?.close()]);
  if (wildcard) await closeServer(wildcard.server);
  certificate?.cleanup();
});

function allowListed(adjust: (capabilities: Capabilities) => Capabilities = (value) => value): Capabilities {
  return capabilitiesFor(workspace, (base) =>
    adjust({
      ...base,
      network: { mode: 'allowlist', allow },
      // Inherited proxy settings that would point a client elsewhere, or around the proxy.
      env: { HTTPS_PROXY: 'http://elsewhere.invalid:1', no_proxy: '*', FTP_PROXY: 'http://x:1' },
    }),
  );
}

async function inSandbox(command: string[], capabilities = allowListed()) {
  const seen: Violation[] = [];
  const result = await run({
    providers: [provider],
    tier: 'process',
    capabilities,
    command,
    onViolation: (violation) => seen.push(violation),
  });
  return { ...result, seen };
}

function curl(...args: string[]): string[] {
  return ['curl', '-sS', '-m', '10', '--cacert', certificatePath, ...args];
}

/** curl through the HTTPS proxy variable, printing the CONNECT status it got. */
function curlStatus(url: string): string[] {
  return curl('-o', '/dev/null', '-w', '%{http_connect} %{http_code}', url);
}

function expectRefused(
  result: RunResult & { seen: Violation[] },
  expected: { host: string; port: number; protocol: string; rule?: RegExp },
): void {
  expect(result.violations).toHaveLength(1);
  expect(result.seen).toEqual(result.violations);
  const [violation] = result.violations;
  expect(violation).toMatchObject({
    kind: 'network',
    sandboxId: result.id,
    host: expected.host,
    port: expected.port,
    protocol: expected.protocol,
  });
  if (expected.rule) expect(violation?.rule).toMatch(expected.rule);
}

const PYTHON_URLLIB = `
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[2])
try:
    print(urllib.request.urlopen(sys.argv[1], context=context, timeout=10).read().decode(), end='')
except Exception as error:
    print('ERROR', error)
`;

describe('an allow-listed sandbox reaches allowed hosts through the proxy', () => {
  it('over CONNECT (HTTPS_PROXY), plain HTTP (HTTP_PROXY) and SOCKS5 with remote names', async () => {
    const result = await inSandbox([
      'sh',
      '-c',
      [
        `${curl(`https://api.test:${api.port}/`).join(' ')}`,
        `${curl(`http://api.test:${plain.port}/page?x=1`).join(' ')}`,
        `${curl('--socks5-hostname', '127.0.0.1:3128', `https://api.test:${api.port}/`).join(' ')}`,
        'echo "$HTTPS_PROXY $https_proxy $ALL_PROXY $no_proxy|"; env | grep -ci ftp_proxy',
      ].join('; '),
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      [
        'hello from api.test',
        'plain /page?x=1',
        'hello from api.test',
        'http://127.0.0.1:3128 http://127.0.0.1:3128 http://127.0.0.1:3128 |',
        '0',
        '',
      ].join('\n'),
    );
    expect(result.violations).toEqual([]);
    expect(result.enforcement['network.allowlist']).toEqual(
      expect.arrayContaining(['network-namespace', 'egress-proxy']),
    );
  });

  it("with Python's urllib, and under a subdomain wildcard", async () => {
    const result = await inSandbox([
      'sh',
      '-c',
      `/usr/bin/python3 -c "$1" https://api.test:${api.port}/ ${certificatePath}; /usr/bin/python3 -c "$1" https://www.example.com:${api.port}/ ${certificatePath}`,
      'sh',
      PYTHON_URLLIB,
    ]);
    expect(result.stdout).toBe('hello from api.test\nhello from www.example.com\n');
    expect(result.violations).toEqual([]);
  });
});

describe('an allow-listed sandbox is refused, at once and reported', () => {
  it('a name off the list', async () => {
    const result = await inSandbox(curlStatus(`https://blocked.test:${api.port}/`));
    expect(result.stdout).toBe('403 000');
    expectRefused(result, { host: 'blocked.test', port: api.port, protocol: 'connect' });
    expect(result.violations[0]?.message).toMatch(/no allow rule matches blocked\.test/);
  });

  it('the allowed port on another host, and the wildcard boundary (evil-example.com)', async () => {
    const result = await inSandbox(curlStatus(`https://evil-example.com:${api.port}/`));
    expect(result.stdout).toBe('403 000');
    expectRefused(result, { host: 'evil-example.com', port: api.port, protocol: 'connect' });
  });

  it('the refusal names the rule in a header curl -v shows, and over plain HTTP in the body', async () => {
    const result = await inSandbox(curl('-i', `http://blocked.test:${plain.port}/`));
    expect(result.stdout).toMatch(/^HTTP\/1\.1 403/);
    expect(result.stdout).toMatch(/x-bulkhead-refused: not-allowed/i);
    expect(result.stdout).toMatch(/Rule: /);
    expectRefused(result, { host: 'blocked.test', port: plain.port, protocol: 'http' });
  });

  it('a raw IPv4 literal off the list', async () => {
    const result = await inSandbox(curlStatus(`https://127.0.0.1:${other.port}/`));
    expect(result.stdout).toBe('403 000');
    expectRefused(result, { host: '127.0.0.1', port: other.port, protocol: 'connect' });
  });

  it('an IPv6 literal', async () => {
    const result = await inSandbox(curlStatus(`https://[::1]:${api.port}/`));
    expect(result.stdout).toBe('403 000');
    expectRefused(result, { host: '::1', port: api.port, protocol: 'connect' });
  });

  it('an allowed name that resolves to 127.0.0.1, which the list does not allow by address', async () => {
    const result = await inSandbox(curlStatus(`https://loopback.test:${other.port}/`));
    expect(result.stdout).toBe('403 000');
    expectRefused(result, { host: 'loopback.test', port: other.port, protocol: 'connect' });
    expect(result.violations[0]?.message).toMatch(/127\.0\.0\.1/);
  });

  it('the cloud metadata address, by name and by literal, over SOCKS5 and plain HTTP', async () => {
    const byName = await inSandbox(
      curl('--socks5-hostname', '127.0.0.1:3128', 'http://metadata.test/latest/meta-data/'),
    );
    expect(byName.exitCode).not.toBe(0);
    expectRefused(byName, { host: 'metadata.test', port: 80, protocol: 'socks5' });
    const byAddress = await inSandbox(curl('-i', 'http://169.254.169.254/latest/meta-data/'));
    expect(byAddress.stdout).toMatch(/^HTTP\/1\.1 403/);
    expectRefused(byAddress, { host: '169.254.169.254', port: 80, protocol: 'http' });
  });
});

// What does not go through the proxy at all: the kernel refuses it, so nothing reaches the proxy
// to be reported; the evidence is the host side, which never hears from the sandbox.
const RAW_ATTEMPTS = `
import errno, socket, sys
def attempt(label, action):
    try:
        action()
        print(label, 'SENT')
    except OSError as error:
        print(label, errno.errorcode.get(error.errno, error.errno))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'token', ('127.0.0.1', int(sys.argv[1])))
def dns():
    socket.getaddrinfo('api.test', 443)
def direct(host):
    return lambda: socket.create_connection((host, int(sys.argv[2])), timeout=5).sendall(b'token')
attempt('udp', udp)
try:
    dns()
    print('dns RESOLVED')
except socket.gaierror as error:
    print('dns', 'FAILED')
attempt('direct-loopback', direct('127.0.0.1'))
attempt('direct-host-address', direct(sys.argv[3]))
def abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b'\\0' + sys.argv[4].encode())
    s.sendall(b'token')
attempt('abstract', abstract)
`;

describe('an allow-listed sandbox has no other way out', () => {
  it('UDP, DNS, direct TCP ignoring the proxy variables, a host service on 0.0.0.0 and an abstract socket all fail', async () => {
    const udpReceived: string[] = [];
    const udp = createSocket('udp4');
    udp.on('message', (message) => udpReceived.push(message.toString()));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const abstractName = `bulkhead-egress-test-${process.pid}`;
    const abstractReceived: string[] = [];
    const abstract = createNetServer((socket) => {
      socket.on('data', (chunk) => abstractReceived.push(chunk.toString()));
    });
    await new Promise<void>((resolve) => abstract.listen(`\0${abstractName}`, resolve));
    // A non-loopback address of this host, where the 0.0.0.0 service also listens.
    const hostAddress =
      Object.values(networkInterfaces())
        .flat()
        .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address ?? '127.0.0.1';
    try {
      const result = await inSandbox([
        '/usr/bin/python3',
        '-c',
        RAW_ATTEMPTS,
        String(udp.address().port),
        String(wildcard.port),
        hostAddress,
        abstractName,
      ]);
      const lines = Object.fromEntries(
        result.stdout
          .trim()
          .split('\n')
          .map((line) => line.split(' ') as [string, string]),
      );
      expect(lines.udp).toMatch(/^E(PERM|ACCES)$/);
      expect(lines.dns).toBe('FAILED');
      // Landlock allows TCP connect to the relay's port only; and the empty namespace's loopback has
      // nothing else listening.
      expect(lines['direct-loopback']).toMatch(/^E(CONNREFUSED|ACCES|PERM)$/);
      expect(lines['direct-host-address']).toMatch(/^E(NETUNREACH|ACCES|PERM)$/);
      expect(lines.abstract).toMatch(/^E(PERM|ACCES|CONNREFUSED)$/);
      expect(udpReceived).toEqual([]);
      expect(abstractReceived).toEqual([]);
      expect(wildcard.received).toEqual([]);
    } finally {
      udp.close();
      abstract.close();
    }
  });
});

describe("an allow-listed sandbox's tunnels bypass the caller's process", () => {
  /** Bytes this process read through read(2) and the like: sockets included. */
  const bytesRead = () => Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);

  it('a 16 MiB download over CONNECT is moved by the relay in the sandbox, not read by the proxy', async () => {
    const size = 16 * 1024 * 1024;
    const before = bytesRead();
    const result = await inSandbox(
      curl('-p', '-o', '/dev/null', '-w', '%{size_download}', `http://api.test:${plain.port}/bytes/${size}`),
    );
    const read = bytesRead() - before;
    expect(result.stdout, result.stderr).toBe(String(size));
    // The proxy read the CONNECT request and the client's request; the body went around it.
    expect(read).toBeLessThan(size / 4);
  }, 30_000);
});

describe('an allow-listed sandbox leaves nothing', () => {
  it('its channel, socket link and folders are gone once it is disposed, also after a kill', async () => {
    const marker = uniqueMarker();
    const id = `egress-${marker.slice(-12)}`;
    const sandbox = await launch({
      providers: [provider],
      tier: 'process',
      capabilities: allowListed(),
      command: ['sh', '-c', `sleep 60; echo ${marker}`],
      id,
    });
    expect(proxy.channels.map((channel) => channel.sandboxId)).toEqual([id]);
    const socketPath = proxy.channels[0]?.socketPath ?? '';
    await sandbox.kill('SIGKILL');
    await sandbox.exited;
    await sandbox[Symbol.asyncDispose]();
    expect(proxy.channels).toEqual([]);
    expect(existsSync(socketPath)).toBe(false);
    expect(await leftovers(id, marker)).toEqual([]);
  });
});

// A root caller's sandbox uid reaches its socket through a link; when the proxy's sockets live on
// another filesystem than /run/bulkhead (a tmpfs /run, a disk /tmp), the link goes beside them.
const otherFilesystem = '/dev/shm';
const callerIsRoot = process.getuid?.() === 0;
const linkFallbackTestable =
  callerIsRoot &&
  existsSync(otherFilesystem) &&
  statSync(otherFilesystem).dev !== statSync(runtimeDirectory()).dev;

describe.skipIf(!linkFallbackTestable)(
  'a proxy whose sockets live on another filesystem (root caller)',
  () => {
    it('still reaches the allowed host, and leaves no link behind', async () => {
      const socketDirectory = join(otherFilesystem, `bulkhead-egress-test-${process.pid}`);
      const ownProxy = createEgressProxy({ resolver, socketDirectory });
      try {
        const ownProvider = createProcessProvider({ mode: 'namespace', egress: { proxy: ownProxy } });
        const result = await run({
          providers: [ownProvider],
          tier: 'process',
          capabilities: allowListed(),
          command: curl(`https://api.test:${api.port}/`),
        });
        expect(result.stdout).toBe('hello from api.test\n');
        // The sandbox prepared for the next launch holds a link of its own until it is drained.
        await ownProvider.drainPreparedSandboxes();
        expect(
          readdirSync(otherFilesystem).filter((entry) => entry.startsWith('bulkhead-egress-link-')),
        ).toEqual([]);
      } finally {
        await ownProxy.close();
        rmSync(socketDirectory, { recursive: true, force: true });
      }
    });
  },
);

describe('the egress options of the provider', () => {
  it('take a resolver or a proxy, not both', () => {
    let thrown: unknown;
    try {
      createProcessProvider({ egress: { proxy, resolver } });
    } catch (error) {
      thrown = error;
    }
    expect(BulkheadError.hasCode(thrown, 'INVALID_PROVIDER_OPTIONS')).toBe(true);
    expect((thrown as BulkheadError).fix).toContain('createEgressProxy({ resolver })');
  });
});
