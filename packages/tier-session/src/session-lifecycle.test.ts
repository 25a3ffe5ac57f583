import { execFileSync, spawn } from 'node:child_process';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BulkheadError, capabilitiesDigest, launch } from '@bulkhead/core';
import { runtimeDirectory } from '@bulkhead/linux';
import { type Span, type Tracer, type TracerProvider, trace } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import type { IdentityRecord } from './identity-record.js';
import {
  callerIsRoot,
  inTestRange,
  makeWorkspace,
  processesOf,
  runIn,
  sessionCapabilities,
  testSessionProvider,
  transientlyOwned,
} from './test-support.js';

async function liveTransientProcesses(): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    if (inTestRange(uid) && !/^State:\s+Z/m.test(status)) found.push(Number(entry));
  }
  return found;
}

const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the condition');
    await delay(50);
  }
}

async function readRecords(path: string): Promise<IdentityRecord[]> {
  return (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as IdentityRecord);
}

/** A tracer that keeps the attributes of the spans it makes: a fake of the OpenTelemetry SDK seam. */
function recordingTracerProvider(spans: Record<string, unknown>[]): TracerProvider {
  const tracer = {
    startSpan(name: string, options?: { attributes?: Record<string, unknown> }) {
      const attributes: Record<string, unknown> = { name, ...options?.attributes };
      spans.push(attributes);
      const span = {
        setAttributes(more: Record<string, unknown>) {
          Object.assign(attributes, more);
          return span;
        },
        setAttribute(key: string, value: unknown) {
          attributes[key] = value;
          return span;
        },
        setStatus: () => span,
        recordException: () => {},
        end: () => {
          attributes.ended = true;
        },
        isRecording: () => true,
        spanContext: () => ({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 1 }),
      };
      return span as unknown as Span;
    },
  } as unknown as Tracer;
  return { getTracer: () => tracer };
}

describe.skipIf(!callerIsRoot)('session lifecycle (root caller)', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('appends the identity record (name, uid, start/end, manifest digest, result) and sets it on the span', async () => {
    const workspace = await makeWorkspace();
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const auditLog = join(workspace, 'audit', 'audit.jsonl');
    const spans: Record<string, unknown>[] = [];
    trace.setGlobalTracerProvider(recordingTracerProvider(spans));
    cleanups.push(() => trace.disable());
    const capabilities = sessionCapabilities(workspace, (base) => ({
      ...base,
      identity: { name: 'review-bot' },
    }));
    const provider = testSessionProvider({ auditLog });
    await using sandbox = await launch({
      providers: [provider],
      capabilities,
      command: ['sh', '-c', 'id -u; exit 3'],
      minimumTier: 'session',
    });
    sandbox.stdin.end();
    const output = sandbox.stdout.toArray();
    const result = await sandbox.exited;
    const uid = Number(
      Buffer.concat((await output) as Buffer[])
        .toString()
        .trim(),
    );
    expect(result.exitCode).toBe(3);
    expect(result.enforcement.identity).toEqual(['uid-switch', 'user-namespace']);

    const records = await readRecords(auditLog);
    expect(records.map((record) => record.event)).toEqual(['start', 'end']);
    const end = records[1]!;
    expect(end).toMatchObject({
      sandboxId: sandbox.id,
      tier: 'session',
      identity: 'review-bot',
      uid,
      gid: uid,
      account: 'transient',
      manifestDigest: capabilitiesDigest(capabilities),
      result: { exitCode: 3, signal: null, timedOut: false, oomKilled: false },
    });
    expect(Date.parse(end.end!)).toBeGreaterThanOrEqual(Date.parse(end.start));
    const session = spans.find((span) => span.name === 'bulkhead.session');
    expect(session).toMatchObject({
      'bulkhead.identity.name': 'review-bot',
      'bulkhead.identity.uid': uid,
      'bulkhead.manifest.digest': capabilitiesDigest(capabilities),
      'bulkhead.exit.code': 3,
      ended: true,
    });
  });

  it("runs as the account identity.name names, one sandbox at a time, and files stay the caller's", async () => {
    const name = `bhsession${process.pid}`;
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    cleanups.push(() => execFileSync('userdel', [name], { stdio: 'ignore' }));
    const accountUid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
    const workspace = await makeWorkspace();
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const provider = testSessionProvider();
    const capabilities = sessionCapabilities(workspace, (base) => ({ ...base, identity: { name } }));
    await using first = await provider.launch({
      command: ['sh', '-c', 'id -u > by-account; read line'],
      capabilities,
    });
    await expect(provider.launch({ command: ['true'], capabilities })).rejects.toSatisfy((error) =>
      BulkheadError.hasCode(error, 'IDENTITY_IN_USE'),
    );
    first.stdin.end('\n');
    expect((await first.exited).exitCode).toBe(0);
    expect((await readFile(join(workspace, 'by-account'), 'utf8')).trim()).toBe(String(accountUid));
    expect(
      execFileSync('stat', ['-c', '%u', join(workspace, 'by-account')], { encoding: 'utf8' }).trim(),
    ).toBe('0');
    expect(await processesOf(accountUid)).toEqual([]);
    // A service account (uid below UID_MIN) is never switched to: the name is only recorded.
    const service = await runIn(
      provider,
      sessionCapabilities(workspace, (base) => ({ ...base, identity: { name: 'messagebus' } })),
      ['id', '-u'],
    );
    expect(inTestRange(Number(service.stdout.trim()))).toBe(true);
  });

  it('reaps what a crashed caller left: its X socket and lock, its session folder; its id is free again', async () => {
    const workspace = await makeWorkspace();
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const driver = spawn(
      viteNode,
      [
        '--config',
        'vitest.config.ts',
        fileURLToPath(new URL('./fixtures/crash-driver.ts', import.meta.url)),
        workspace,
      ],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const ready = await new Promise<string>((resolve, reject) => {
      let text = '';
      driver.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const line = /READY (\S+) (\d+) :(\d+)/.exec(text);
        if (line) resolve(line[0]);
      });
      driver.once('exit', (code) => reject(new Error(`the crash driver exited (${code}): ${text}`)));
    });
    const [, sandboxId, uid, display] = ready.split(' ');
    const socket = `/tmp/.X11-unix/X${display!.slice(1)}`;
    expect((await lstat(socket)).uid).toBe(Number(uid));
    const exited = new Promise((resolve) => driver.once('exit', resolve));
    driver.kill('SIGKILL');
    await exited;
    // bubblewrap's --die-with-parent ends the sandbox and its X server with their caller.
    await waitFor(async () => (await processesOf(Number(uid))).length === 0);
    const sessions = join(runtimeDirectory(), 'sessions');
    // A session folder is named `<owner pid>-<the sandbox id's first 8 characters>-<random>`.
    const ofSandbox = (name: string) => name.includes(`-${sandboxId!.slice(0, 8)}-`);
    const folder = (await readdir(sessions)).find(ofSandbox);
    expect(folder).toBeDefined();
    expect((await lstat(socket)).isSocket()).toBe(true);

    // The next session started in another process reaps them (this test's worker is another process).
    const result = await runIn(testSessionProvider(), sessionCapabilities(workspace), ['id', '-u']);
    expect(result.exitCode).toBe(0);
    expect(await lstat(socket).catch(() => 'gone')).toBe('gone');
    expect(await lstat(`/tmp/.X${display!.slice(1)}-lock`).catch(() => 'gone')).toBe('gone');
    expect((await readdir(sessions)).filter(ofSandbox)).toEqual([]);
    // Lowest first: the crashed caller's id came back as soon as the kernel dropped its lock.
    expect(Number(result.stdout.trim())).toBeLessThanOrEqual(Number(uid));
    expect(transientlyOwned([workspace, '/tmp', '/run/bulkhead'])).toEqual([]);
  });

  it('after 200 launches no id is leaked and nothing owned by a transient id remains', {
    timeout: 300_000,
  }, async () => {
    const workspace = await makeWorkspace();
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const provider = testSessionProvider();
    const uids = new Set<number>();
    const sandboxIds: string[] = [];
    const concurrency = 4;
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < 200) {
          const index = next++;
          const result = await runIn(provider, sessionCapabilities(workspace), [
            'sh',
            '-c',
            `id -u; echo ${index} > run-${index}; mkdir -p "$XDG_RUNTIME_DIR/x" "$HOME/y"; : > /dev/shm/z`,
          ]);
          expect(result.exitCode, result.stderr).toBe(0);
          uids.add(Number(result.stdout.trim()));
          sandboxIds.push(result.id);
        }
      }),
    );
    expect(uids.size).toBeGreaterThan(1);
    expect(await liveTransientProcesses()).toEqual([]);
    // Other programs may run session sandboxes on this host meanwhile: only the tests' ids and folders count.
    const locks = await readdir(join(runtimeDirectory(), 'session-ids'));
    expect(locks.filter((name) => inTestRange(Number.parseInt(name, 10)))).toEqual([]);
    const folders = await readdir(join(runtimeDirectory(), 'sessions')).catch(() => [] as string[]);
    expect(folders.filter((name) => sandboxIds.some((id) => name.startsWith(id)))).toEqual([]);
    expect(transientlyOwned([workspace, '/tmp', '/run', '/dev/shm', '/var/lib/bulkhead'])).toEqual([]);
    expect((await readdir(workspace)).filter((name) => name.startsWith('run-'))).toHaveLength(200);
  });
});
