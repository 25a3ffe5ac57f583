import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCaptured } from '../captured-io.js';
import { describeViolation } from './run.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-run-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const run = (argv: string[], input?: string) =>
  runCaptured(['run', ...argv], { cwd: directory, ...(input === undefined ? {} : { input }) });

/** The `--json` line: the last line of stderr. */
function jsonLine(stderr: string): Record<string, unknown> {
  const lines = stderr.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? '') as Record<string, unknown>;
}

// These runs name the `none` tier so that they test the CLI itself, whatever tiers are installed;
// the real isolation runs are in run-process-tier.test.ts.
describe('bulkhead run --tier none', () => {
  it('exits 0 and streams stdout for a command that succeeds, with a loud warning', async () => {
    const result = await run(['--tier', 'none', '--', 'sh', '-c', 'echo hello; echo oops >&2']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('hello\n');
    expect(result.stderr).toContain('oops');
    expect(result.stderr).toContain('WITHOUT ANY ISOLATION');
  });

  it("passes the command's own exit status through", async () => {
    const result = await run(['--tier', 'none', '--', 'sh', '-c', 'exit 42']);
    expect(result.status).toBe(42);
  });

  it('exits 128+N when signal N killed the command', async () => {
    const result = await run(['--tier', 'none', '--', 'sh', '-c', 'kill -9 $$']);
    expect(result.status).toBe(128 + 9);
  });

  it('exits 124 when the timeout ended the command', async () => {
    const result = await run(['--tier', 'none', '--timeout', '1s', '--', 'sleep', '30']);
    expect(result.status).toBe(124);
    expect(result.stderr).toContain('timeout');
  });

  it('exits 127 when the command does not exist', async () => {
    const result = await run(['--tier', 'none', '--', 'bulkhead-no-such-command']);
    expect(result.status).toBe(127);
    expect(result.stderr).toContain('bulkhead-no-such-command: command not found');
  });

  it('exits 126 when the command is not executable', async () => {
    const script = join(directory, 'not-executable.sh');
    await writeFile(script, 'echo never\n', { mode: 0o644 });
    const result = await run(['--tier', 'none', '--', script]);
    expect(result.status).toBe(126);
  });

  it('pipes its stdin to the command', async () => {
    const result = await run(['--tier', 'none', '--', 'sh', '-c', 'tr a-z A-Z'], 'piped through\n');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('PIPED THROUGH\n');
  });

  it('streams large output whole, and the output written just before exit', async () => {
    const result = await run([
      '--tier',
      'none',
      '--',
      'sh',
      '-c',
      "head -c 5000000 /dev/zero | tr '\\0' a; echo; echo last",
    ]);
    expect(result.status).toBe(0);
    expect(result.stdout.length).toBe(5_000_000 + '\nlast\n'.length);
    expect(result.stdout.endsWith('a\nlast\n')).toBe(true);
  });

  it('takes options after the command as the command’s own', async () => {
    const result = await run(['--tier', 'none', 'sh', '-c', 'echo "$1"', 'sh', '--json']);
    expect(result.stdout).toBe('--json\n');
  });

  it('writes the result, id, tier and manifest digest as one JSON line to stderr with --json', async () => {
    const result = await run(['--tier', 'none', '--json', '--', 'sh', '-c', 'exit 3']);
    expect(result.status).toBe(3);
    const json = jsonLine(result.stderr);
    expect(json).toMatchObject({
      tier: 'none',
      exitCode: 3,
      exitStatus: 3,
      signal: null,
      timedOut: false,
      oomKilled: false,
    });
    expect(json.id).toEqual(expect.any(String));
    expect(json.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(json.durationMs).toEqual(expect.any(Number));
  });

  it('exits 125 with the located error and the fix when the manifest is bad', async () => {
    await writeFile(join(directory, 'bad.yaml'), 'version: 1\nnetwrok:\n  internet: true\n');
    const result = await run(['--tier', 'none', '-m', 'bad.yaml', '--', 'true']);
    expect(result.status).toBe(125);
    expect(result.stderr).toMatch(/bad\.yaml:2:1/);
    expect(result.stderr).toContain('network');
  });

  it('exits 125 and runs nothing when the manifest file does not exist', async () => {
    const result = await run(['--tier', 'none', '-m', 'missing.yaml', '--', 'sh', '-c', 'echo ran']);
    expect(result.status).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('missing.yaml');
  });

  it('exits 125 for a tier that does not exist, naming the known ones', async () => {
    const result = await run(['--tier', 'nonesuch', '--', 'true']);
    expect(result.status).toBe(125);
    expect(result.stderr).toContain("Unknown tier 'nonesuch'");
    expect(result.stderr).toContain('process');
  });

  it('exits 125 for a tier whose package is not installed, with the npm command', async () => {
    const result = await run(['--tier', 'wsl', '--', 'true']);
    expect(result.status).toBe(125);
    expect(result.stderr).toContain('npm i @bulkhead/tier-wsl');
  });

  it('exits 125 on a flag value the manifest rules refuse', async () => {
    const result = await run(['--tier', 'none', '--memory', 'lots', '--', 'sh', '-c', 'echo ran']);
    expect(result.status).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('resources.memory (from the command line)');
  });

  it('uses ./bulkhead.yaml when no manifest is named, and says so with --verbose', async () => {
    await writeFile(
      join(directory, 'bulkhead.yaml'),
      'version: 1\nenv:\n  set:\n    GREETING: from-the-manifest\n',
    );
    const result = await run(['--tier', 'none', '--verbose', '--', 'sh', '-c', 'echo "$GREETING"']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('from-the-manifest\n');
    expect(result.stderr).toContain(join(directory, 'bulkhead.yaml'));
  });

  it('says with --verbose when the built-in default manifest is used', async () => {
    const result = await run(['--tier', 'none', '--verbose', '--', 'true']);
    expect(result.stderr).toContain('built-in default manifest');
  });
});

describe('the line a violation is said in', () => {
  const base = { time: '2026-01-01T00:00:00.000Z', sandboxId: 'id', kind: 'network' };

  it('names the rule, and adds the host:port when the message does not say it', () => {
    expect(
      describeViolation({
        ...base,
        message: 'refused by the kernel',
        host: '::1',
        port: 443,
        rule: 'deny ::1',
      }),
    ).toBe('violation (rule deny ::1): refused by the kernel [[::1]:443]');
  });

  it("keeps the proxy's message, which names the host and port, as it is", () => {
    const message =
      'CONNECT to api.test:443 refused: no allow rule matches api.test:443; the allow list is a.test:443';
    expect(describeViolation({ ...base, message, host: 'api.test', port: 443, rule: 'default-deny' })).toBe(
      `violation (rule default-deny): ${message}`,
    );
  });

  it('says a violation without a rule or a host plainly', () => {
    expect(describeViolation({ ...base, kind: 'resource', message: 'a process was killed' })).toBe(
      'violation: a process was killed',
    );
  });
});
