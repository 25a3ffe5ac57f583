import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Capabilities,
  type IsolationProvider,
  type LaunchSpec,
  run,
  type SandboxResult,
} from '@bulkhead/core';
import type { IdRange } from './identity-pool.js';
import {
  createSessionProvider,
  type SessionProvider,
  type SessionProviderOptions,
} from './session-provider.js';

export const callerIsRoot = process.getuid?.() === 0;

/**
 * The tests' own transient ids, apart from the default range, so that sandboxes other programs run
 * on this host at the same time (a benchmark) never count as the tests' leftovers.
 */
export const TEST_TRANSIENT_IDS: IdRange = { firstUid: 2_100_000_000, firstGid: 2_100_000_000, count: 4096 };

/**
 * Ranges of their own for the tests that keep sessions prepared ahead: a prepared session holds an
 * id and files of it while other test files, running at the same time, check that nothing of
 * TEST_TRANSIENT_IDS is left (and prepared-sessions.test.ts checks its own range the same way).
 */
export const CONFORMANCE_TEST_TRANSIENT_IDS: IdRange = {
  firstUid: 2_100_100_000,
  firstGid: 2_100_100_000,
  count: 4096,
};
export const PREPARED_TEST_TRANSIENT_IDS: IdRange = {
  firstUid: 2_100_200_000,
  firstGid: 2_100_200_000,
  count: 4096,
};

export function inTestRange(uid: number, range: IdRange = TEST_TRANSIENT_IDS): boolean {
  return uid >= range.firstUid && uid < range.firstUid + range.count;
}

/**
 * The session provider the tests use: their own ids, no audit log unless asked, and no sessions
 * prepared ahead unless asked (a prepared session holds an id and files of that id until it is used
 * or drained, which the tests that count leftovers would find; prepared-sessions.test.ts and the
 * conformance suite run with them, in ranges of their own).
 */
export function testSessionProvider(options: SessionProviderOptions = {}) {
  return createSessionProvider({
    auditLog: false,
    transientIds: TEST_TRANSIENT_IDS,
    preparedSandboxes: 0,
    ...options,
  });
}
export const SYSTEM_READ_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'];
/** Debian's interpreter, not a pyenv shim on PATH (which lives under /root). */
export const PYTHON = '/usr/bin/python3';

/** A fresh workspace the caller owns, open for the sandbox to enter. */
export async function makeWorkspace(prefix = 'bulkhead-session-test-'): Promise<string> {
  const workspace = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  await chmod(workspace, 0o755);
  return workspace;
}

export function sessionCapabilities(
  workspace: string,
  adjust: (base: Capabilities) => Capabilities = (base) => base,
): Capabilities {
  return adjust({
    filesystem: { read: [...SYSTEM_READ_PATHS], write: [workspace], deny: [] },
    network: { mode: 'none', allow: [] },
    process: { spawn: true, maxProcesses: 128 },
    resources: { memoryBytes: 512 * 1024 * 1024, timeoutMs: 30_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: workspace,
  });
}

export function runIn(
  provider: IsolationProvider,
  capabilities: Capabilities,
  command: string[],
  input?: string,
) {
  return run({
    providers: [provider],
    tier: provider.tier,
    capabilities,
    command,
    ...(input === undefined ? {} : { input }),
  });
}

/**
 * Live host pids whose real uid is `uid`. Zombies are left out: they run nothing and hold nothing,
 * and the pid namespace's init, killed with its sandbox, waits as one until the host's init reaps it.
 */
export async function processesOf(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    const zombie = /^State:\s+Z/m.test(status);
    if (real !== undefined && Number(real) === uid && !zombie) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Files and folders under `roots` owned by a uid or gid of the tests' transient range (find never follows
 * symbolic links and stays on one filesystem).
 */
export function transientlyOwned(roots: string[], range: IdRange = TEST_TRANSIENT_IDS): string[] {
  const first = range.firstUid;
  const last = first + range.count - 1;
  // find exits non-zero for a root that vanished meanwhile; what it printed still counts.
  const { stdout } = spawnSync(
    'find',
    [
      ...roots,
      '-xdev',
      // Id-mapped views of live sandboxes' grants (the process tier's staging): their files are the
      // caller's on disk and only appear as a sandbox uid's through the mapping.
      '-path',
      '/run/bulkhead/mounts',
      '-prune',
      '-o',
      '(',
      '(',
      '-uid',
      `+${first - 1}`,
      '-uid',
      `-${last + 1}`,
      ')',
      '-o',
      '(',
      '-gid',
      `+${first - 1}`,
      '-gid',
      `-${last + 1}`,
      ')',
      ')',
      '-print',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  return stdout.split('\n').filter(Boolean);
}

/** What a stream carries, read to its end (or until it is closed). */
function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    stream.once('end', () => resolve(text));
    stream.once('close', () => resolve(text));
  });
}

/**
 * Launches through the session provider itself (which says whether the launch was warm), with stdin
 * closed, reads both outputs to their end, and disposes the sandbox.
 */
export async function launchToEnd(
  provider: SessionProvider,
  spec: LaunchSpec,
): Promise<{ startup: 'cold' | 'warm'; result: SandboxResult; stdout: string; stderr: string }> {
  const sandbox = await provider.launch(spec);
  sandbox.stdin.end();
  const [result, stdout, stderr] = await Promise.all([
    sandbox.exited,
    readAll(sandbox.stdout),
    readAll(sandbox.stderr),
  ]);
  await sandbox[Symbol.asyncDispose]();
  return { startup: sandbox.startup, result, stdout, stderr };
}
