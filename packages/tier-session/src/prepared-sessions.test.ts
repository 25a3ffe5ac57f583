import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Capabilities } from '@bulkhead/core';
import { runtimeDirectory, sandboxLeftovers } from '@bulkhead/linux';
import { afterAll, describe, expect, it } from 'vitest';
import type { IdentityRecord } from './identity-record.js';
import type { SessionProvider } from './session-provider.js';
import {
  callerIsRoot,
  inTestRange,
  launchToEnd,
  makeWorkspace,
  processesOf,
  PREPARED_TEST_TRANSIENT_IDS as RANGE,
  sessionCapabilities,
  testSessionProvider,
  transientlyOwned,
} from './test-support.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
const sessions = join(runtimeDirectory(), 'sessions');

function launchAndWait(provider: SessionProvider, capabilities: Capabilities, command: string[], id: string) {
  return launchToEnd(provider, { id, command, capabilities });
}

/** The folders of sessions this process prepared and nothing has used yet. */
async function preparedFolders(pid = process.pid): Promise<string[]> {
  return (await readdir(sessions)).filter((name) => name.startsWith(`${pid}-prepared-`));
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) return false;
    await delay(20);
  }
  return true;
}

async function testRangeLocks(): Promise<string[]> {
  const locks = await readdir(join(runtimeDirectory(), 'session-ids')).catch(() => [] as string[]);
  return locks.filter((name) => inTestRange(Number.parseInt(name, 10), RANGE));
}

async function liveTestRangeProcesses(): Promise<number[]> {
  const found: number[] = [];
  for (let uid = RANGE.firstUid; uid < RANGE.firstUid + 16; uid++) found.push(...(await processesOf(uid)));
  return found;
}

// As root: transient ids are a root caller's (an unprivileged caller's prepared sessions, with its
// subordinate ids, are unprivileged.test.ts's 'prepared' step).
describe.skipIf(!callerIsRoot)('sessions prepared ahead (root caller)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('runs the next launch in a session prepared for it: its own id, folders and audit record, the launch’s own limits', async () => {
    const workspace = await makeWorkspace();
    const auditFolder = await mkdtemp(join(tmpdir(), 'bulkhead-prepared-audit-'));
    const auditLog = join(auditFolder, 'audit.jsonl');
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    cleanups.push(() => rm(auditFolder, { recursive: true, force: true }));
    const provider = testSessionProvider({ preparedSandboxes: 1, transientIds: RANGE, auditLog });
    cleanups.push(() => provider.drainPreparedSandboxes());
    const capabilities = sessionCapabilities(workspace);
    const show = [
      'sh',
      '-c',
      'id -u; echo "$XDG_RUNTIME_DIR"; echo "$HOME"; ls -ld "$XDG_RUNTIME_DIR" | cut -c1-10',
    ];

    const first = await launchAndWait(provider, capabilities, show, 'first-sandbox');
    expect(first.result.exitCode, first.stderr).toBe(0);
    expect(first.startup).toBe('cold');
    expect(await waitFor(async () => (await preparedFolders()).length === 1)).toBe(true);

    const second = await launchAndWait(provider, capabilities, show, 'second-sandbox');
    expect(second.result.exitCode, second.stderr).toBe(0);
    expect(second.startup).toBe('warm');
    const [firstUid, firstRuntime] = first.stdout.trim().split('\n');
    const [secondUid, secondRuntime, , secondMode] = second.stdout.trim().split('\n');
    expect(inTestRange(Number(secondUid), RANGE)).toBe(true);
    // Prepared while the first still held its id: another one, and another private runtime folder.
    expect(secondUid).not.toBe(firstUid);
    expect(secondRuntime).not.toBe(firstRuntime);
    expect(secondMode).toBe('drwx------');
    // The audit log names the sandbox that ran, under the id it ran as.
    const records = (await readFile(auditLog, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as IdentityRecord);
    const secondRecords = records.filter((record) => record.sandboxId === 'second-sandbox');
    expect(secondRecords.map((record) => record.event)).toEqual(['start', 'end']);
    expect(secondRecords.every((record) => record.uid === Number(secondUid))).toBe(true);

    // A warm launch's process settings are its own, not those of the launch it was prepared after.
    expect(await waitFor(async () => (await preparedFolders()).length === 1)).toBe(true);
    const noSpawn = { ...capabilities, process: { spawn: false, maxProcesses: 1 } };
    const refused = await launchAndWait(provider, noSpawn, ['sh', '-c', '/bin/true; echo forked'], 'third');
    expect(refused.startup).toBe('warm');
    expect(refused.stdout).not.toContain('forked');
    expect(refused.result.exitCode).not.toBe(0);
    await provider.drainPreparedSandboxes();
  }, 60_000);

  it('opens a session of its own for another view, and leaves nothing once drained', async () => {
    const [workspace, other] = await Promise.all([makeWorkspace(), makeWorkspace()]);
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    cleanups.push(() => rm(other, { recursive: true, force: true }));
    const provider = testSessionProvider({ preparedSandboxes: 1, transientIds: RANGE });
    const first = await launchAndWait(provider, sessionCapabilities(workspace), ['true'], 'view-one');
    expect(first.result.exitCode, first.stderr).toBe(0);
    expect(await waitFor(async () => (await preparedFolders()).length === 1)).toBe(true);
    // Another write grant is another view: the prepared session is not it.
    const elsewhere = await launchAndWait(provider, sessionCapabilities(other), ['true'], 'view-two');
    expect(elsewhere.result.exitCode, elsewhere.stderr).toBe(0);
    expect(elsewhere.startup).toBe('cold');
    expect(await waitFor(async () => (await preparedFolders()).length === 2)).toBe(true);

    await provider.drainPreparedSandboxes();
    expect(await preparedFolders()).toEqual([]);
    expect(await testRangeLocks()).toEqual([]);
    expect(await liveTestRangeProcesses()).toEqual([]);
    // What a test process killed earlier left is reaped by a later launch, not here: this process's own.
    expect(transientlyOwned([workspace, other], RANGE)).toEqual([]);
    expect(
      transientlyOwned(['/tmp', '/run/bulkhead'], RANGE).filter((path) => path.includes(`${process.pid}-`)),
    ).toEqual([]);
  }, 60_000);

  it('ends with a caller that exits without draining: no process, id or folder of it remains', async () => {
    const { pid, preparedBeforeExit } = await exitingCaller('waiting');
    expect(preparedBeforeExit).toBe(1);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(await preparedFolders(pid)).toEqual([]);
    expect(await testRangeLocks()).toEqual([]);
    // The prepared sandbox's processes were killed at exit; give the kernel a moment to reap them.
    expect(await waitFor(async () => (await liveTestRangeProcesses()).length === 0)).toBe(true);
  }, 60_000);

  // process.exit() right after a launch lands while the next session is being prepared: its id's lock
  // file, its folder, its cgroups and its id-mapped copy stayed until the next caller's reaper.
  it('ends with a caller that exits while the next session is being prepared: nothing of it remains', async () => {
    const { pid } = await exitingCaller('preparing');
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect((await readdir(sessions)).filter((name) => name.startsWith(`${pid}-`))).toEqual([]);
    expect(await testRangeLocks()).toEqual([]);
    expect(await sandboxLeftovers(`${pid}-`)).toEqual([]);
    expect(await waitFor(async () => (await liveTestRangeProcesses()).length === 0)).toBe(true);
  }, 60_000);

  /** Runs fixtures/prepared-exit-caller.ts to its exit and returns its report. */
  async function exitingCaller(
    moment: 'waiting' | 'preparing',
  ): Promise<{ pid: number; preparedBeforeExit?: number }> {
    const folder = await mkdtemp(join(tmpdir(), 'bulkhead-prepared-session-exit-'));
    cleanups.push(() => rm(folder, { recursive: true, force: true }));
    const report = join(folder, 'report.json');
    const caller = spawn(
      viteNode,
      ['--config', 'vitest.config.ts', 'src/fixtures/prepared-exit-caller.ts', report, moment],
      { cwd: packageDirectory, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    caller.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exitCode = await new Promise<number | null>((resolve) => caller.once('exit', resolve));
    expect(exitCode, stderr).toBe(0);
    return JSON.parse(await readFile(report, 'utf8'));
  }
});
