import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressProxy, type EgressChannel, type EgressProxy } from './egress-proxy.js';
import { withProxyEnvironment } from './proxy-environment.js';
import { createStaticResolver } from './resolver.js';
import {
  selfSignedCertificate,
  startHttpServer,
  startHttpsServer,
  startRelay,
} from './test-support/loopback.js';
import { createDemoRepository, demoRegistryHandler, runGitHttpBackend } from './test-support/real-servers.js';

// Real, unmodified clients (curl, Python's urllib, git, npm) reach loopback test servers through the
// proxy. Names map to 127.0.0.1 through the pluggable resolver only. The relay stands in for the exec
// shim's in-namespace relay: 127.0.0.1:<port> -> the channel's unix socket.

const names = ['api.test', 'git.test', 'registry.test', 'blocked.test'];
let directory: string;
let proxy: EgressProxy;
let channel: EgressChannel;
let relay: Awaited<ReturnType<typeof startRelay>>;
let certificate: ReturnType<typeof selfSignedCertificate>;
let api: { port: number; close(): Promise<void> };
let plain: { port: number; close(): Promise<void> };
let gitServer: { port: number; close(): Promise<void> };
let registry: { port: number; close(): Promise<void> };
let blocked: { port: number; close(): Promise<void> };
let baseEnvironment: Record<string, string>;

function run(
  command: string,
  args: string[],
  environment: Record<string, string> = baseEnvironment,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Asynchronous on purpose: the proxy runs in this process and must keep serving meanwhile.
    execFile(
      command,
      args,
      { env: environment, timeout: 20_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'bh-egress-clients-'));
  certificate = selfSignedCertificate(names);
  baseEnvironment = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: join(directory, 'home'),
    LANG: 'C.UTF-8',
    GIT_CONFIG_NOSYSTEM: '1',
  };
  mkdirSync(baseEnvironment.HOME as string);

  api = await startHttpsServer(certificate, (_request, response) => response.end('hello from api.test\n'));
  blocked = await startHttpsServer(certificate, (_request, response) =>
    response.end('should never be seen\n'),
  );
  plain = await startHttpServer((request, response) => response.end(`plain ${request.url}\n`));

  const repositories = createDemoRepository(directory, baseEnvironment);
  gitServer = await startHttpsServer(certificate, (request, response) =>
    runGitHttpBackend(repositories, request, response),
  );

  registry = await startHttpsServer(
    certificate,
    demoRegistryHandler(() => `https://registry.test:${registry.port}`),
  );

  proxy = createEgressProxy({
    resolver: createStaticResolver(names.map((name) => `${name}:127.0.0.1`)),
    socketDirectory: join(directory, 'sockets'),
    connectTimeoutMs: 5000,
  });
  // Loopback servers: each allowed name needs its address allowed too, or the rebinding check refuses it.
  const allowed = [
    ['api.test', api.port],
    ['api.test', plain.port],
    ['git.test', gitServer.port],
    ['registry.test', registry.port],
  ] as const;
  channel = await proxy.openChannel({
    sandboxId: 'clients',
    allow: allowed.flatMap(([host, port]) => [
      { host, port },
      { host: '127.0.0.1', port },
    ]),
  });
  relay = await startRelay(channel.socketPath);
});

afterAll(async () => {
  await relay?.close();
  await proxy?.close();
  await Promise.all([api, blocked, plain, gitServer, registry].map((server) => server?.close()));
  certificate?.cleanup();
  rmSync(directory, { recursive: true, force: true });
});

function proxied(extra: Record<string, string> = {}): Record<string, string> {
  // An inherited proxy that would bypass ours must be replaced, not merely shadowed.
  return withProxyEnvironment(
    { ...baseEnvironment, FTP_PROXY: 'http://elsewhere:1', no_proxy: '*', ...extra },
    relay.url,
  );
}

describe('curl', () => {
  it('reaches an allowed HTTPS server with --proxy, HTTPS_PROXY and socks5h', async () => {
    const url = `https://api.test:${api.port}/`;
    const viaFlag = await run('curl', [
      '-sS',
      '-m',
      '10',
      '--cacert',
      certificate.certPath,
      '--proxy',
      relay.url,
      url,
    ]);
    expect(viaFlag).toMatchObject({ code: 0, stdout: 'hello from api.test\n' });
    const viaEnvironment = await run(
      'curl',
      ['-sS', '-m', '10', '--cacert', certificate.certPath, url],
      proxied(),
    );
    expect(viaEnvironment).toMatchObject({ code: 0, stdout: 'hello from api.test\n' });
    const viaSocks = await run('curl', [
      '-sS',
      '-m',
      '10',
      '--cacert',
      certificate.certPath,
      '--proxy',
      `socks5h://127.0.0.1:${relay.port}`,
      url,
    ]);
    expect(viaSocks).toMatchObject({ code: 0, stdout: 'hello from api.test\n' });
  });

  it('fetches a plain http:// URL through the proxy', async () => {
    const result = await run(
      'curl',
      ['-sS', '-m', '10', `http://api.test:${plain.port}/page?x=1`],
      proxied(),
    );
    expect(result).toMatchObject({ code: 0, stdout: '/page?x=1\n'.replace(/^/, 'plain ') });
  });

  it('is refused at once, with the rule named, for a host off the list', async () => {
    const before = channel.violations.length;
    const url = `https://blocked.test:${blocked.port}/`;
    const connect = await run(
      'curl',
      ['-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_connect}', '--cacert', certificate.certPath, url],
      proxied(),
    );
    expect(connect.code).toBe(56);
    expect(connect.stdout).toBe('403');
    const plainRefusal = await run(
      'curl',
      ['-sS', '-m', '10', '-i', `http://blocked.test:${plain.port}/`],
      proxied(),
    );
    expect(plainRefusal.stdout).toMatch(/^HTTP\/1\.1 403/);
    expect(plainRefusal.stdout).toMatch(/x-bulkhead-refused: not-allowed/i);
    expect(plainRefusal.stdout).toMatch(/no allow rule matches blocked\.test/);
    const socks = await run('curl', ['-sS', '-m', '10', '--proxy', `socks5h://127.0.0.1:${relay.port}`, url]);
    expect(socks.code).toBe(97);
    // curl 7.88 prints the SOCKS reply code: 2 is 'connection not allowed by ruleset'.
    expect(socks.stderr).toMatch(/SOCKS5 connection to blocked\.test\. \(2\)/);
    expect(channel.violations.slice(before).map((violation) => violation.protocol)).toEqual([
      'connect',
      'http',
      'socks5',
    ]);
  });
});

describe("Python's urllib", () => {
  const script = `
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[2])
try:
    print(urllib.request.urlopen(sys.argv[1], context=context, timeout=10).read().decode(), end='')
except Exception as error:
    print('ERROR', error)
`;
  it('reaches an allowed HTTPS server through HTTPS_PROXY', async () => {
    const result = await run(
      '/usr/bin/python3',
      ['-c', script, `https://api.test:${api.port}/`, certificate.certPath],
      proxied(),
    );
    expect(result.stdout).toBe('hello from api.test\n');
  });

  it('gets the refusal for a host off the list', async () => {
    const result = await run(
      '/usr/bin/python3',
      ['-c', script, `https://blocked.test:${blocked.port}/`, certificate.certPath],
      proxied(),
    );
    expect(result.stdout).toMatch(/ERROR .*Tunnel connection failed: 403/);
  });
});

describe('git over HTTPS', () => {
  it('lists the refs of a smart-HTTP repository through the proxy', async () => {
    const result = await run(
      'git',
      [
        '-c',
        `http.sslCAInfo=${certificate.certPath}`,
        'ls-remote',
        `https://git.test:${gitServer.port}/demo.git`,
      ],
      proxied(),
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^[0-9a-f]{40}\tHEAD\n[0-9a-f]{40}\trefs\/heads\/main\n$/);
  });

  it('is refused for a repository host off the list', async () => {
    const result = await run(
      'git',
      [
        '-c',
        `http.sslCAInfo=${certificate.certPath}`,
        'ls-remote',
        `https://blocked.test:${blocked.port}/demo.git`,
      ],
      proxied(),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/403/);
  });
});

describe('npm', () => {
  function npmArguments(registryHost: string, port: number): string[] {
    return [
      'view',
      'demo-package',
      'version',
      `--registry=https://${registryHost}:${port}/`,
      `--cafile=${certificate.certPath}`,
      `--cache=${join(directory, 'npm-cache')}`,
      '--prefer-online',
      '--no-update-notifier',
      '--fetch-retries=0',
    ];
  }

  it('views a package on an allowed registry through the proxy', async () => {
    writeFileSync(join(baseEnvironment.HOME as string, '.npmrc'), '');
    const result = await run('npm', npmArguments('registry.test', registry.port), proxied());
    expect(result.stdout.trim()).toBe('1.2.3');
  });

  it('is refused for a registry off the list', async () => {
    const result = await run('npm', npmArguments('blocked.test', blocked.port), proxied());
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/E403\b.*\n.*403 Forbidden - GET https:\/\/blocked\.test/);
  });
});
