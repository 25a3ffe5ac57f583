// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell their variables ${...}
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CompileOptions, compileManifest } from './compile.js';
import { parseManifest } from './manifest-document.js';
import {
  createPolicy,
  DEFAULT_POLICY_PATH,
  loadPolicy,
  loadPolicySync,
  type Policy,
  parsePolicy,
} from './policy.js';

const POLICY_FILE = '/etc/bulkhead/policy.yaml';
const MANIFEST_FILE = '/projects/demo/bulkhead.yaml';

const policy = parsePolicy(
  [
    'version: 1',
    'minimumTier: session',
    'maxMemory: 2GiB',
    'maxTimeout: 30m',
    'maxProcesses: 100',
    'internet: forbidden',
    'allowedEndpoints: ["*.example.com:443", "10.0.0.0/8:5432"]',
    'deniedPaths: [~/.ssh, /srv/secrets]',
    '',
  ].join('\n'),
  { path: POLICY_FILE },
);

const OPTIONS: CompileOptions = { cwd: '/projects/demo', home: '/home/dev', env: {}, policy };

function compile(yaml: string, options: Partial<CompileOptions> = {}) {
  return compileManifest(parseManifest(`version: 1\n${yaml}`, { path: MANIFEST_FILE }), {
    ...OPTIONS,
    ...options,
  });
}

function violation(yaml: string, options: Partial<CompileOptions> = {}): BulkheadError {
  try {
    compile(yaml, options);
  } catch (error) {
    expect(BulkheadError.hasCode(error, 'POLICY_VIOLATION')).toBe(true);
    return error as BulkheadError;
  }
  throw new Error('expected a policy violation');
}

describe('the policy ceiling, rule by rule', () => {
  it('minimumTier: a weaker tier is refused; no tier gets the minimum', () => {
    const error = violation('tier: process\n');
    expect([error.path, error.line, error.column]).toEqual([MANIFEST_FILE, 2, 7]);
    expect(error.details?.rule).toBe('minimumTier');
    expect(error.message).toContain(
      `${MANIFEST_FILE}:2:7: tier: 'process' is weaker than the organisation policy's minimum tier 'session' (rule 'minimumTier' of ${POLICY_FILE}:2:1)`,
    );
    expect(compile('').minimumTier).toBe('session');
    expect(compile('tier: microvm\n').minimumTier).toBe('microvm');
  });

  it('maxMemory: more is refused; the default is lowered to the maximum with a warning', () => {
    const error = violation('tier: session\nresources:\n  memory: 4GiB\n');
    expect([error.line, error.column]).toEqual([4, 11]);
    expect(error.message).toContain(
      `resources.memory: 4 GiB is more than the organisation policy's maximum of 2 GiB (rule 'maxMemory' of ${POLICY_FILE}:3:1)`,
    );
    expect(compile('resources: { memory: 2GiB }\n').capabilities.resources.memoryBytes).toBe(2 * 2 ** 30);
    const small = compileManifest(undefined, {
      ...OPTIONS,
      policy: createPolicy({ version: 1, maxMemory: '512MB' }),
    });
    expect(small.capabilities.resources.memoryBytes).toBe(512e6);
    expect(small.warnings.join('\n')).toContain(
      "resources.memory defaults to 1 GiB, lowered to the organisation policy's maximum of 512 MB",
    );
  });

  it('maxTimeout', () => {
    const error = violation('resources: { timeout: 2h }\n');
    expect(error.details?.rule).toBe('maxTimeout');
    expect(error.message).toContain(
      `resources.timeout: 2h is more than the organisation policy's maximum of 30m (rule 'maxTimeout' of ${POLICY_FILE}:4:1)`,
    );
    expect(compile('resources: { timeout: 30m }\n').capabilities.resources.timeoutMs).toBe(1_800_000);
  });

  it('maxProcesses: more is refused; the default 256 is lowered to 100', () => {
    const error = violation('processes: { max: 1000 }\n');
    expect(error.message).toContain(
      `processes.max: 1000 processes is more than the organisation policy's maximum of 100 processes (rule 'maxProcesses' of ${POLICY_FILE}:5:1)`,
    );
    expect(compile('').capabilities.process.maxProcesses).toBe(100);
  });

  it('internet: forbidden', () => {
    const error = violation('network:\n  internet: true\n');
    expect([error.line, error.column]).toEqual([3, 3]);
    expect(error.message).toContain(`(rule 'internet' of ${POLICY_FILE}:6:1)`);
  });

  it('allowedEndpoints: every endpoint must fall within the ceiling', () => {
    const error = violation(
      'network:\n  allow:\n    - api.example.com:443\n    - evil-example.com:443\n    - 10.1.2.3:5432\n    - 10.1.2.3\n',
    );
    const messages = (error.details!.violations as { message: string; line: number }[]).map(
      (item) => `${item.line} ${item.message}`,
    );
    expect(messages).toEqual([
      expect.stringContaining(
        "5 network.allow[1]: evil-example.com:443 is not among the endpoints the organisation policy allows (*.example.com:443, 10.0.0.0/8:5432) (rule 'allowedEndpoints'",
      ),
      expect.stringContaining('7 network.allow[3]: 10.1.2.3:443 is not among'),
      expect.stringContaining('7 network.allow[3]: 10.1.2.3:80 is not among'),
    ]);
    expect(error.message).toContain(`${POLICY_FILE}:7:1`);
    expect(
      compile('network: { allow: ["a.example.com:443", "10.9.9.9:5432"] }\n').capabilities.network.allow,
    ).toHaveLength(2);
  });

  it('allowedEndpoints also rules out the whole internet', () => {
    const open = createPolicy({ version: 1, allowedEndpoints: ['api.example.com:443'] });
    const error = violation('network: { internet: true }\n', { policy: open });
    expect(error.details?.rule).toBe('allowedEndpoints');
    expect(error.message).toContain('the organisation policy allows only listed endpoints');
  });

  it('deniedPaths: added to deny, grants inside them refused, default grants inside them dropped', () => {
    const compiled = compile('filesystem: { read: ["~"] }\n');
    expect(compiled.capabilities.filesystem.deny).toContain('/home/dev/.ssh');
    expect(compiled.pathOrigins?.['/home/dev/.ssh']).toBe('policy');
    const error = violation('filesystem:\n  write: [~/.ssh/known_hosts]\n');
    expect([error.line, error.column]).toEqual([3, 11]);
    expect(error.message).toContain(
      `filesystem.write[0]: '/home/dev/.ssh/known_hosts' is inside /home/dev/.ssh, which the organisation policy always denies (rule 'deniedPaths' of ${POLICY_FILE}:8:1)`,
    );
    const inSecrets = compileManifest(undefined, { ...OPTIONS, cwd: '/srv/secrets/project' });
    expect(inSecrets.capabilities.filesystem.write).toEqual([]);
    expect(inSecrets.warnings.join('\n')).toContain('the organisation policy always denies /srv/secrets');
  });

  it('reports every violation at once, naming the policy file in the heading', () => {
    const error = violation('tier: process\nresources: { memory: 8GiB, timeout: 5h }\n');
    expect((error.details!.violations as unknown[]).length).toBe(3);
    expect(error.message.split('\n')[0]).toBe(
      `Manifest ${MANIFEST_FILE} asks for more than the organisation policy ${POLICY_FILE} allows (3 problems):`,
    );
    expect(error.fix).toContain('organisation policy');
  });

  it('a manifest within the ceiling compiles unchanged', () => {
    const compiled = compile(
      'tier: session\nresources: { memory: 1GiB, timeout: 10m }\nprocesses: { max: 50 }\n',
    );
    expect(compiled.capabilities.resources.memoryBytes).toBe(2 ** 30);
    expect(compiled.warnings).toEqual([]);
  });
});

describe('policy files', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-policy-'));
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('a policy with mistakes is POLICY_INVALID, every problem located', () => {
    try {
      parsePolicy('version: 1\nmaxMemmory: 1GiB\ninternet: no\n', { path: POLICY_FILE });
      throw new Error('expected a failure');
    } catch (error) {
      expect(BulkheadError.hasCode(error, 'POLICY_INVALID')).toBe(true);
      const message = (error as BulkheadError).message;
      expect(message).toContain(`${POLICY_FILE}:2:1: unknown key 'maxMemmory'; did you mean 'maxMemory'?`);
      expect(message).toContain(`${POLICY_FILE}:3:11: internet: expected 'allowed' or 'forbidden'; got "no"`);
    }
  });

  it('paths in a policy cannot use ${env:...}: the user controls the environment', () => {
    expect(() => parsePolicy('version: 1\ndeniedPaths: ["${env:HOME}/.ssh"]\n')).toThrow(
      /cannot use \$\{\.\.\.\} variables/,
    );
  });

  it('loadPolicy: BULKHEAD_POLICY names the file; a missing named file is an error', async () => {
    const path = join(folder, 'policy.yaml');
    await writeFile(path, 'version: 1\nmaxProcesses: 10\n');
    const loaded = (await loadPolicy(undefined, { BULKHEAD_POLICY: path })) as Policy;
    expect(loaded.policy.maxProcesses).toBe(10);
    expect(loaded.path).toBe(path);
    expect(loadPolicySync(path)?.policy.maxProcesses).toBe(10);
    await expect(
      loadPolicy(undefined, { BULKHEAD_POLICY: join(folder, 'missing.yaml') }),
    ).rejects.toMatchObject({
      code: 'POLICY_INVALID',
      message: expect.stringContaining('Fix: create it, or unset BULKHEAD_POLICY'),
    });
  });

  it('a named policy that cannot be read is an error, never "no policy"', async () => {
    // A folder stands in for an unreadable file: as root, permissions would not stop the read.
    await expect(loadPolicy(folder)).rejects.toMatchObject({ code: 'POLICY_INVALID', path: folder });
    expect(() => loadPolicySync(folder)).toThrow(/Cannot read the organisation policy/);
  });

  it.skipIf(existsSync(DEFAULT_POLICY_PATH))(
    'without BULKHEAD_POLICY and without /etc/bulkhead/policy.yaml there is no policy',
    async () => {
      // Skipped only on a host whose administrator installed a policy: that file then applies here.
      expect(await loadPolicy(undefined, {})).toBeNull();
      expect(loadPolicySync(undefined, {})).toBeNull();
    },
  );

  it('compileManifest loads the policy itself when none is passed', async () => {
    const path = join(folder, 'strict.yaml');
    await writeFile(path, 'version: 1\ninternet: forbidden\n');
    const manifest = parseManifest('version: 1\nnetwork: { internet: true }\n');
    expect(() =>
      compileManifest(manifest, { cwd: '/projects/demo', env: { BULKHEAD_POLICY: path } }),
    ).toThrow(/rule 'internet' of .*strict\.yaml:2:1/);
    expect(
      compileManifest(manifest, { cwd: '/projects/demo', env: { BULKHEAD_POLICY: path }, policy: null })
        .capabilities.network.mode,
    ).toBe('open');
  });
});
