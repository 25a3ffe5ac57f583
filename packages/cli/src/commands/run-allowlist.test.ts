import { chmod, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate, startHttpsServer } from '../../../egress/src/test-support/loopback.js';
import {
  createDemoRepository,
  demoRegistryHandler,
  runGitHttpBackend,
} from '../../../egress/src/test-support/real-servers.js';
import { capturedIo, runCaptured } from '../captured-io.js';
import { main } from '../main.js';
import { processTierUnavailable } from '../process-tier-status.js';

// Issue 4's "done when": real, unmodified clients (curl, git, npm, Python's urllib) in a process-tier
// sandbox reach an allowed HTTPS server on the host's loopback through `--net` and `--resolve`, and
// are refused at once, with the rule named, by `--net none` and by an allow-list without that server.

const unavailable = await processTierUnavailable();
if (unavailable) console.warn(`skipping the allow-list runs of bulkhead run: ${unavailable}`);

type Server = { port: number; close(): Promise<void> };
let directory: string;
let repositoryFolder: string | undefined;
let certificate: ReturnType<typeof selfSignedCertificate>;
let api: Server;
let git: Server;
let registry: Server;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-allowlist-'));
  // The sandbox uid (nobody, for a root caller) enters the workspace and reads the certificate.
  await chmod(directory, 0o755);
  certificate = selfSignedCertificate(['api.test', 'git.test', 'registry.test']);
  await copyFile(certificate.certPath, join(directory, 'ca.pem'));
  await chmod(join(directory, 'ca.pem'), 0o644);
  api = await startHttpsServer(certificate, (_request, response) => response.end('hello from api.test\n'));
  repositoryFolder = await mkdtemp(join(tmpdir(), 'bulkhead-cli-git-'));
  const repositories = createDemoRepository(repositoryFolder, {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: directory,
  });
  git = await startHttpsServer(certificate, (request, response) =>
    runGitHttpBackend(repositories, request, response),
  );
  registry = await startHttpsServer(
    certificate,
    demoRegistryHandler(() => `https://registry.test:${registry.port}`),
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([api?.close(), git?.close(), registry?.close()]);
  certificate?.cleanup();
  if (directory) await rm(directory, { recursive: true, force: true });
  if (repositoryFolder) await rm(repositoryFolder, { recursive: true, force: true });
});

const bulkhead = (argv: string[]) => runCaptured(['run', ...argv], { cwd: directory });

const PYTHON_URLLIB =
  'import ssl, sys, urllib.request\n' +
  'context = ssl.create_default_context(cafile="ca.pem")\n' +
  'print(urllib.request.urlopen(sys.argv[1], context=context, timeout=10).read().decode(), end="")\n';

/** Every client in turn, each followed by its exit status, so one run shows them all. */
function clients(): string[] {
  const script = [
    `curl -sS -m 10 --cacert ca.pem https://api.test:${api.port}/; echo "curl=$?"`,
    `git -c http.sslCAInfo=$PWD/ca.pem ls-remote https://git.test:${git.port}/demo.git; echo "git=$?"`,
    `npm view demo-package version --registry=https://registry.test:${registry.port}/ --cafile=ca.pem --cache=/tmp/npm-cache --prefer-online --no-update-notifier --fetch-retries=0; echo "npm=$?"`,
    `/usr/bin/python3 -c '${PYTHON_URLLIB}' https://api.test:${api.port}/; echo "python=$?"`,
  ];
  return ['--', 'sh', '-c', script.join('\n')];
}

function resolveFlags(): string[] {
  return ['api.test', 'git.test', 'registry.test'].flatMap((name) => ['--resolve', `${name}:127.0.0.1`]);
}

function lastJson(stderr: string): Record<string, unknown> {
  return JSON.parse(stderr.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
}

describe.skipIf(unavailable !== undefined)('bulkhead run with an allow-list on the process tier', () => {
  it('lets curl, git, npm and urllib reach the allowed HTTPS server: --net name:port --resolve name:127.0.0.1', async () => {
    const result = await bulkhead([
      '--tier',
      'process',
      '--net',
      `api.test:${api.port},git.test:${git.port},registry.test:${registry.port}`,
      ...resolveFlags(),
      '--json',
      ...clients(),
    ]);
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toEqual([
      'hello from api.test',
      'curl=0',
      expect.stringMatching(/^[0-9a-f]{40}\tHEAD$/),
      expect.stringMatching(/^[0-9a-f]{40}\trefs\/heads\/main$/),
      'git=0',
      '1.2.3',
      'npm=0',
      'hello from api.test',
      'python=0',
    ]);
    expect(lastJson(result.stderr)).toMatchObject({ tier: 'process', exitStatus: 0, violations: [] });
  }, 60_000);

  it('refuses every client at once, naming the rule, on an allow-list without that server', async () => {
    const result = await bulkhead([
      '--tier',
      'process',
      '--net',
      `elsewhere.test:${api.port}`,
      ...resolveFlags(),
      '--json',
      ...clients(),
    ]);
    // Each client got the proxy's refusal, not a timeout: curl 56 (CONNECT answered 403), git 128,
    // npm 1 (E403), Python 1 (Tunnel connection failed: 403).
    expect(result.stdout).toContain('curl=56');
    expect(result.stdout).toContain('git=128');
    expect(result.stdout).toContain('npm=1');
    expect(result.stdout).toContain('python=1');
    expect(result.stderr).toMatch(/CONNECT tunnel failed, response 403/);
    expect(result.stderr).toMatch(/Tunnel connection failed: 403/);
    // The CLI says each refusal as it happens, with the rule, the host:port and the fix.
    const said = result.stderr.split('\n').filter((line) => line.startsWith('bulkhead: violation'));
    expect(said).toHaveLength(4);
    for (const line of said) {
      expect(line).toMatch(
        /^bulkhead: violation \(rule default-deny\): CONNECT to (api|git|registry)\.test:\d+ refused: no allow rule matches .*the allow list is elsewhere\.test:\d+.*Fix: add/,
      );
    }
    // An allow-list's refusals are named by the proxy: the no-network line is not said.
    expect(result.stderr).not.toContain('this sandbox has no network');
    const json = lastJson(result.stderr);
    expect(json.violations).toEqual([
      expect.objectContaining({ kind: 'network', host: 'api.test', port: api.port, protocol: 'connect' }),
      expect.objectContaining({ host: 'git.test', port: git.port, rule: 'default-deny' }),
      expect.objectContaining({ host: 'registry.test', port: registry.port }),
      expect.objectContaining({ host: 'api.test', port: api.port }),
    ]);
  }, 60_000);

  it("shows the refusal's reason and rule in the headers curl -v prints", async () => {
    const result = await bulkhead([
      '--net',
      `elsewhere.test:${api.port}`,
      ...resolveFlags(),
      '--',
      'curl',
      '-sS',
      '-v',
      '--cacert',
      'ca.pem',
      `https://api.test:${api.port}/`,
    ]);
    expect(result.status).toBe(56);
    expect(result.stderr).toMatch(/< HTTP\/1\.1 403 Forbidden/);
    expect(result.stderr).toMatch(/< x-bulkhead-refused: not-allowed/i);
    expect(result.stderr).toMatch(/< x-bulkhead-rule: default-deny/i);
  });

  it('with --net none, the clients fail at once: no proxy, no resolver, no route', async () => {
    const result = await bulkhead(['--tier', 'process', '--net', 'none', ...resolveFlags(), ...clients()]);
    expect(result.stderr).toContain("--resolve has no effect with network 'none'");
    expect(result.stdout).toMatch(/curl=6\n/);
    expect(result.stderr).toMatch(/Could not resolve host: api\.test/);
    expect(result.stdout).toMatch(/git=128\n/);
    expect(result.stdout).not.toMatch(/npm=0|python=0/);
  }, 60_000);

  describe('a failed run without any network says which rule refused it', () => {
    const NO_NETWORK = 'bulkhead: this sandbox has no network (network: none, from ';
    const curlAndPython = (port: number) => [
      '--',
      'sh',
      '-c',
      `curl -sS -m 10 --cacert ca.pem https://api.test:${port}/\n` +
        `/usr/bin/python3 -c '${PYTHON_URLLIB}' https://127.0.0.1:${port}/`,
    ];

    it("names --net none in one line after the payload's own errors, and keeps the exit status", async () => {
      const result = await bulkhead(['--tier', 'process', '--net', 'none', ...curlAndPython(api.port)]);
      // Python's urllib is the last command: its status (1) is the run's.
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/Could not resolve host: api\.test/);
      expect(result.stderr).toMatch(/urllib\.error\.URLError/);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines.at(-1)).toBe(
        `${NO_NETWORK}--net none): every connection and DNS lookup is refused. Allow endpoints with --net HOST:PORT,... or network.allow in the manifest.`,
      );
      expect(lines.filter((line) => line.startsWith(NO_NETWORK))).toHaveLength(1);
    }, 60_000);

    it("names the manifest's path when the manifest says network: none", async () => {
      const manifest = join(directory, 'offline.yaml');
      await writeFile(manifest, 'version: 1\nnetwork:\n  internet: false\n  allow: []\n');
      const result = await bulkhead(['-m', 'offline.yaml', ...curlAndPython(api.port)]);
      expect(result.status).toBe(1);
      expect(result.stderr.trimEnd().split('\n').at(-1)).toContain(
        `${NO_NETWORK}the manifest ${manifest}): every connection and DNS lookup is refused.`,
      );
    }, 60_000);

    it('says the network was defaulted when the manifest sets none', async () => {
      const manifest = join(directory, 'bare.yaml');
      await writeFile(manifest, 'version: 1\n');
      const result = await bulkhead(['-m', 'bare.yaml', '--', 'sh', '-c', 'exit 2']);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(
        `${NO_NETWORK}the default, as the manifest ${manifest} sets no network): every connection`,
      );
    });

    it('names the built-in default manifest when no manifest and no --net were given', async () => {
      const result = await bulkhead(['--', 'curl', '-sS', '-m', '10', `http://127.0.0.1:${api.port}/`]);
      // In its own network namespace nothing listens on that loopback port: refused at once (7).
      expect(result.status).toBe(7);
      expect(result.stderr).toMatch(/Failed to connect to 127\.0\.0\.1/);
      expect(result.stderr.trimEnd().split('\n').at(-1)).toContain(
        `${NO_NETWORK}the built-in default manifest):`,
      );
    }, 60_000);

    it('puts it in the JSON line, not in a line of its own, with --json', async () => {
      const result = await bulkhead(['--net', 'none', '--json', ...curlAndPython(api.port)]);
      expect(result.status).toBe(1);
      expect(result.stderr).not.toContain(NO_NETWORK);
      expect(lastJson(result.stderr)).toMatchObject({
        exitStatus: 1,
        noNetwork: {
          from: '--net none',
          message: expect.stringMatching(/^this sandbox has no network \(network: none, from --net none\)/),
        },
      });
    }, 60_000);

    it('says nothing when the run succeeds', async () => {
      const result = await bulkhead(['--net', 'none', '--json', '--', 'sh', '-c', 'echo offline']);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe('offline\n');
      expect(result.stderr).not.toContain('no network');
      expect(lastJson(result.stderr)).not.toHaveProperty('noNetwork');
    });

    it('says nothing with --tier none, whose command had the host network', async () => {
      const result = await bulkhead(['--tier', 'none', '--net', 'none', '--', 'sh', '-c', 'exit 3']);
      expect(result.status).toBe(3);
      expect(result.stderr).not.toContain('no network');
    });
  });

  it('documents --resolve in run --help', async () => {
    const io = capturedIo({ cwd: directory });
    expect(await main(['run', '--help'], io)).toBe(0);
    expect(io.output()).toContain('--resolve <name:address>');
    expect(io.output()).toContain('--resolve api.test:127.0.0.1');
  });

  it('refuses a malformed --resolve before running anything (125)', async () => {
    const result = await bulkhead(['--net', 'api.test:443', '--resolve', 'api.test', '--', 'echo', 'ran']);
    expect(result.status).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain("'api.test' is not a NAME:ADDRESS mapping");
  });
});
