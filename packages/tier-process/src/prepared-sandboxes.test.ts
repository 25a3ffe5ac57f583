import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Capabilities } from '@bulkhead/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createProcessProvider, type ProcessProvider } from './index.js';
import {
  capabilitiesFor,
  leftovers,
  makeWorkspace,
  processesWithMarker,
  uniqueMarker,
  waitFor,
} from './test-support.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = join(packageDirectory, '..', '..', 'node_modules', '.bin', 'vite-node');

async function launchAndRun(provider: ProcessProvider, capabilities: Capabilities, command: string[]) {
  const sandbox = await provider.launch({ command, capabilities });
  sandbox.stdin.end();
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  sandbox.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  sandbox.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const result = await sandbox.exited;
  await sandbox[Symbol.asyncDispose]();
  return {
    startup: sandbox.startup,
    result,
    stdout: Buffer.concat(stdout).toString(),
    stderr: Buffer.concat(stderr).toString(),
  };
}

describe('process tier: prepared sandboxes', () => {
  const providers: ProcessProvider[] = [];
  const provider = (options: Parameters<typeof createProcessProvider>[0] = {}) => {
    const made = createProcessProvider({ mode: 'namespace', ...options });
    providers.push(made);
    return made;
  };
  afterAll(async () => {
    for (const made of providers) await made.drainPreparedSandboxes();
  });

  it.each(['namespace', 'shim-only'] as const)(
    '%s mode: starts the next launch of the same view from a prepared sandbox that behaves like a cold one',
    async (mode) => {
      const workspace = await makeWorkspace();
      const tier = provider({ mode });
      const capabilities = capabilitiesFor(workspace, (base) => ({ ...base, env: { GREETING: 'hello' } }));
      const script = 'echo "$GREETING $(pwd)"; touch made-here; echo "$@"';
      const first = await launchAndRun(tier, capabilities, ['sh', '-c', script, 'sh', 'one', 'two words']);
      expect(first.startup).toBe('cold');
      const second = await launchAndRun(tier, capabilities, [
        'sh',
        '-c',
        script,
        'sh',
        'three',
        'four\nfive',
      ]);
      expect(second.startup).toBe('warm');
      expect(second.stdout).toBe(`hello ${workspace}\nthree four\nfive\n`);
      expect(second.result.exitCode).toBe(0);
      // Shim-only mode has no mount namespace to id-map a root caller's grant: the file is nobody's.
      const owner = mode === 'shim-only' && process.getuid?.() === 0 ? 65534 : process.getuid?.();
      expect((await stat(join(workspace, 'made-here'))).uid).toBe(owner);
      // Its limits are the launch's own, applied before the payload ran: a memory cap and no spawning.
      const capped = await launchAndRun(
        tier,
        { ...capabilities, resources: { ...capabilities.resources, memoryBytes: 64 * 1024 * 1024 } },
        ['python3', '-c', 'x = bytearray(256 * 1024 * 1024); print("survived")'],
      );
      expect(capped.startup).toBe('warm');
      expect(capped.result.oomKilled).toBe(true);
      expect(capped.stdout).not.toContain('survived');
      const noSpawn = await launchAndRun(
        tier,
        { ...capabilities, process: { ...capabilities.process, spawn: false } },
        ['sh', '-c', '/bin/true && echo forked'],
      );
      expect(noSpawn.startup).toBe('warm');
      expect(noSpawn.stdout).not.toContain('forked');
    },
    60_000,
  );

  it('namespace mode: does not use a prepared sandbox once a denied path appeared since: the new file stays unreadable', async () => {
    const workspace = await makeWorkspace();
    const secret = join(workspace, 'secret.txt');
    const tier = provider();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      filesystem: { ...base.filesystem, deny: [...base.filesystem.deny, secret] },
    }));
    const first = await launchAndRun(tier, capabilities, ['true']);
    expect(first.startup).toBe('cold');
    // The prepared sandbox's view was made while the denied file did not exist: it has no mask for it.
    await writeFile(secret, 'the secret\n', { mode: 0o644 });
    const second = await launchAndRun(tier, capabilities, ['cat', secret]);
    expect(second.startup).toBe('cold');
    expect(second.stdout).not.toContain('the secret');
    expect(second.result.exitCode).not.toBe(0);
  }, 30_000);

  it('namespace mode: prepares allow-listed sandboxes too, each refusal reported as the launch that took it', async () => {
    const workspace = await makeWorkspace();
    const tier = provider();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      network: { mode: 'allowlist', allow: [{ host: '192.0.2.1', port: 443 }] },
    }));
    const attempt = ['curl', '-sS', '-m', '5', 'https://blocked.test/'];
    const first = await launchAndRun(tier, capabilities, attempt);
    expect(first.startup).toBe('cold');
    const sandbox = await tier.launch({ command: attempt, capabilities, id: 'the-warm-one' });
    sandbox.stdin.end();
    sandbox.stdout.resume();
    sandbox.stderr.resume();
    const result = await sandbox.exited;
    await sandbox[Symbol.asyncDispose]();
    expect(sandbox.startup).toBe('warm');
    expect(result.exitCode).not.toBe(0);
    expect(result.violations.map((violation) => [violation.sandboxId, violation.host])).toEqual([
      ['the-warm-one', 'blocked.test'],
    ]);
  }, 30_000);

  it('namespace mode: a prepared sandbox shares the CPU like a cold one: its own CPU cgroup only with a CPU limit', async () => {
    const workspace = await makeWorkspace();
    const tier = provider();
    const cpuCgroupOf = (pid: number | string) =>
      readFileSync(`/proc/${pid}/cgroup`, 'utf8')
        .split('\n')
        .find((line) => /:cpu(,cpuacct)?:/.test(line));
    const cgroupInside = async (capabilities: Capabilities) => {
      const marker = uniqueMarker();
      const sandbox = await tier.launch({
        command: ['sh', '-c', 'echo ready; read line; :', marker],
        capabilities,
      });
      await new Promise<void>((resolve) => sandbox.stdout.once('data', () => resolve()));
      const [pid] = processesWithMarker(marker);
      const line = cpuCgroupOf(pid!);
      sandbox.stdin.end();
      sandbox.stderr.resume();
      await sandbox.exited;
      await sandbox[Symbol.asyncDispose]();
      return { line, startup: sandbox.startup };
    };
    const unlimited = capabilitiesFor(workspace);
    await cgroupInside(unlimited);
    const warm = await cgroupInside(unlimited);
    expect(warm.startup).toBe('warm');
    expect(warm.line).toBe(cpuCgroupOf('self'));
    const limited = { ...unlimited, resources: { ...unlimited.resources, cpus: 0.5 } };
    await cgroupInside(limited);
    const warmLimited = await cgroupInside(limited);
    expect(warmLimited.startup).toBe('warm');
    expect(warmLimited.line).not.toBe(cpuCgroupOf('self'));
  }, 30_000);

  it('prepares none with preparedSandboxes 0', async () => {
    const workspace = await makeWorkspace();
    const none = provider({ preparedSandboxes: 0 });
    for (let launch = 0; launch < 2; launch++)
      expect((await launchAndRun(none, capabilitiesFor(workspace), ['true'])).startup).toBe('cold');
  }, 30_000);

  it('leaves nothing once drained, and nothing after its caller exits', async () => {
    const workspace = await makeWorkspace();
    const tier = provider();
    await launchAndRun(tier, capabilitiesFor(workspace), ['true']);
    // The refill runs in the background: wait until its cgroups exist, then drain.
    const owner = `${process.pid}-prepared`;
    expect(await waitFor(async () => (await leftovers(owner)).length > 0)).toBe(true);
    for (const made of providers) await made.drainPreparedSandboxes();
    expect(await leftovers(owner)).toEqual([]);

    // A caller that exits normally with a prepared sandbox waiting.
    const { pid, preparedBeforeExit } = await exitingCaller('waiting');
    expect(preparedBeforeExit).toBeGreaterThan(0);
    expect(await leftovers(`${pid}-prepared`)).toEqual([]);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  }, 60_000);

  // process.exit() right after a launch lands while the next sandbox is being prepared: its id-mapped
  // copy of the workspace was a mount in the host's namespace, and its cgroups stayed, until the next
  // caller's reaper. Exit clean-up now covers what is half made, and what still runs.
  it.each([
    ['while the next sandbox is being prepared', 'preparing'],
    ['while its sandbox runs', 'running'],
  ] as const)(
    'leaves no mount, cgroup or folder when its caller exits %s',
    async (_, moment) => {
      const { pid, running } = await exitingCaller(moment);
      if (moment === 'running') expect(running).toBeGreaterThan(0);
      expect(await leftovers(`${pid}-`)).toEqual([]);
    },
    60_000,
  );
});

/** Runs fixtures/prepared-exit-caller.ts to its exit and returns its report. */
async function exitingCaller(
  moment: 'waiting' | 'preparing' | 'running',
): Promise<{ pid: number; preparedBeforeExit?: number; running?: number }> {
  const folder = await mkdtemp(join(tmpdir(), 'bulkhead-prepared-exit-'));
  const report = join(folder, 'report.json');
  try {
    const caller = spawn(
      viteNode,
      ['--config', 'vitest.config.ts', 'src/fixtures/prepared-exit-caller.ts', report, moment],
      { cwd: packageDirectory, stdio: 'ignore' },
    );
    const exitCode = await new Promise<number | null>((resolve) => caller.once('exit', resolve));
    expect(exitCode).toBe(0);
    return JSON.parse(await readFile(report, 'utf8'));
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
