import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCaptured } from '../captured-io.js';
import { KNOWN_TIERS } from '../tiers.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-manifest-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const bulkhead = (...argv: string[]) => runCaptured(argv, { cwd: directory });

const GOOD = `version: 1
filesystem:
  deny: [./secrets]
network:
  allow: [api.example.com:443]
resources:
  memory: 256MB
`;

describe('bulkhead manifest check', () => {
  it('prints ok and exits 0 for a valid manifest', async () => {
    await writeFile(join(directory, 'good.yaml'), GOOD);
    const result = await bulkhead('manifest', 'check', 'good.yaml');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('good.yaml: ok');
  });

  it('exits 1 with the error located at file:line:column and the closest valid key', async () => {
    await writeFile(join(directory, 'typo.yaml'), 'version: 1\nresources:\n  memroy: 1GiB\n');
    const result = await bulkhead('manifest', 'check', 'typo.yaml');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/typo\.yaml:3:3/);
    expect(result.stderr).toContain('memory');
  });

  it('reports a wrong value where it stands and what was expected', async () => {
    await writeFile(join(directory, 'value.yaml'), 'version: 1\nprocesses:\n  spawn: maybe\n');
    const result = await bulkhead('manifest', 'check', 'value.yaml');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/value\.yaml:3:10/);
    expect(result.stderr).toContain('true or false');
  });

  it('checks every file it is given and fails if any fails', async () => {
    await writeFile(join(directory, 'good.yaml'), GOOD);
    await writeFile(join(directory, 'broken.yaml'), 'version: 1\nnetwork: [\n');
    const result = await bulkhead('manifest', 'check', 'good.yaml', 'broken.yaml');
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('good.yaml: ok');
    expect(result.stderr).toMatch(/broken\.yaml:\d+:\d+/);
  });

  it('exits 1 and names the file when it does not exist', async () => {
    const result = await bulkhead('manifest', 'check', 'absent.yaml');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('absent.yaml');
  });
});

describe('bulkhead manifest explain', () => {
  it('prints the compiled capabilities with the defaults marked', async () => {
    await writeFile(join(directory, 'good.yaml'), GOOD);
    const result = await bulkhead('manifest', 'explain', 'good.yaml');
    expect(result.status).toBe(0);
    const lines = result.stdout.split('\n');
    // Set by the manifest: no marker. Left to the defaults: marked.
    const line = (label: string) => lines.find((candidate) => candidate.trimStart().startsWith(`${label} `));
    expect(line('memory')).toMatch(/256 Mi?B$/);
    expect(line('timeout')).toMatch(/10m\s+\(default\)$/);
    expect(line('network')).toContain('allow-list');
    expect(line('allow')).toContain('api.example.com:443');
    expect(line('digest')).toMatch(/sha256:[0-9a-f]{64}/);
    expect(lines).toContain(`    deny   ${join(directory, 'secrets')}`);
    expect(result.stdout).toMatch(/deny\s+\/etc\/shadow\s+\(default\)/);
  });

  it('says, per tier, how each capability would be enforced here or why not', async () => {
    await writeFile(join(directory, 'good.yaml'), GOOD);
    const result = await bulkhead('manifest', 'explain', 'good.yaml');
    expect(result.stdout).toContain('Enforcement on this host, per tier:');
    for (const known of KNOWN_TIERS) expect(result.stdout).toMatch(new RegExp(`^  ${known.tier}:`, 'm'));
    expect(result.stdout).toMatch(/bulkhead run would (use tier|refuse)/);
  });

  it('explains the built-in default manifest when given no file', async () => {
    const result = await bulkhead('manifest', 'explain');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('built-in default manifest');
    expect(result.stdout).toContain('(default)');
  });

  it('exits 1 with the located error for a bad manifest', async () => {
    await writeFile(join(directory, 'bad.yaml'), 'version: 1\ntier: fortress\n');
    const result = await bulkhead('manifest', 'explain', 'bad.yaml');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/bad\.yaml:2:7/);
  });
});

describe('bulkhead manifest schema', () => {
  it('prints the JSON Schema of the manifest', async () => {
    const result = await bulkhead('manifest', 'schema');
    expect(result.status).toBe(0);
    const schema = JSON.parse(result.stdout) as { properties?: Record<string, unknown> };
    expect(Object.keys(schema.properties ?? {})).toEqual(
      expect.arrayContaining(['version', 'filesystem', 'network']),
    );
  });
});

describe('bulkhead manifest import-mxc', () => {
  it('prints a bulkhead.yaml that manifest check accepts, with the MXC command as a comment', async () => {
    const mxc = {
      version: '0.8.0-alpha',
      process: { commandLine: "python3 agent.py --name 'demo run'", timeout: 30000 },
      filesystem: { readwritePaths: ['/tmp/out'], deniedPaths: ['/tmp/out/secret'] },
    };
    await writeFile(join(directory, 'mxc.json'), JSON.stringify(mxc, null, 2));
    const result = await bulkhead('manifest', 'import-mxc', 'mxc.json');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      String.raw`# MXC's command: bulkhead run -m bulkhead.yaml -- /bin/sh -c 'python3 agent.py --name '\''demo run'\'''`,
    );
    await writeFile(join(directory, 'bulkhead.yaml'), result.stdout);
    const check = await bulkhead('manifest', 'check', 'bulkhead.yaml');
    expect(check.status).toBe(0);
    const explained = await bulkhead('manifest', 'explain', 'bulkhead.yaml');
    expect(explained.stdout).toContain('/tmp/out/secret');
    expect(explained.stdout).toMatch(/timeout\s+30s/);
  });

  it('exits 1 naming an MXC field that cannot be mapped, located in the file', async () => {
    await writeFile(
      join(directory, 'mxc.json'),
      '{\n  "version": "0.8.0-alpha",\n  "containment": "hypervisor"\n}\n',
    );
    const result = await bulkhead('manifest', 'import-mxc', 'mxc.json');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/mxc\.json:3:\d+/);
    expect(result.stderr).toContain('containment');
  });
});

describe('bulkhead init', () => {
  it('writes a commented starter bulkhead.yaml that manifest check accepts', async () => {
    const result = await bulkhead('init');
    expect(result.status).toBe(0);
    const written = await readFile(join(directory, 'bulkhead.yaml'), 'utf8');
    expect(written).toMatch(/^\s*#/m);
    const check = await bulkhead('manifest', 'check', 'bulkhead.yaml');
    expect(check.status).toBe(0);
    expect(check.stdout).toContain('ok');
  });

  it('refuses to overwrite an existing bulkhead.yaml without --force', async () => {
    await writeFile(join(directory, 'bulkhead.yaml'), '# mine\nversion: 1\n');
    const refused = await bulkhead('init');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('--force');
    expect(await readFile(join(directory, 'bulkhead.yaml'), 'utf8')).toBe('# mine\nversion: 1\n');

    const forced = await bulkhead('init', '--force');
    expect(forced.status).toBe(0);
    expect(await readFile(join(directory, 'bulkhead.yaml'), 'utf8')).not.toBe('# mine\nversion: 1\n');
  });
});
