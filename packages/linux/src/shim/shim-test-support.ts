import { execFileSync, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { BulkheadError, Capabilities } from '@bulkhead/core';
import { ensureShim } from './ensure-shim.js';
import { planShim, type ShimPlanOptions } from './plan-shim.js';
import { readShimStatus } from './shim-status.js';

/** Test support: runs a command under the shim the way a tier does. Not part of the package's API. */

export const SYSTEM_READ_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'];

export function testCapabilities(overrides: {
  read?: string[];
  write?: string[];
  deny?: string[];
  network?: Capabilities['network']['mode'];
  spawn?: boolean;
  workdir: string;
}): Capabilities {
  return {
    filesystem: {
      read: [...SYSTEM_READ_PATHS, ...(overrides.read ?? [])],
      write: overrides.write ?? [],
      deny: ['/etc/shadow', ...(overrides.deny ?? [])],
    },
    network: { mode: overrides.network ?? 'none', allow: [] },
    process: { spawn: overrides.spawn ?? true, maxProcesses: 256 },
    resources: { memoryBytes: 1 << 30, timeoutMs: 30_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: {},
    workdir: overrides.workdir,
  };
}

export interface ShimRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  status: string;
  error: BulkheadError | undefined;
}

export interface RunOptions {
  input?: string;
  uid?: number;
  gid?: number;
  /** Programs run before the shim (e.g. a launcher that ignores signals first). */
  launcher?: string[];
  /** Run the command without the shim: the control that shows a test can fail. */
  bare?: boolean;
  /** The shim's path as the launcher's child sees it (bind-mounted into a namespace). */
  shimPath?: string;
  env?: Record<string, string>;
}

function collect(stream: Readable | Writable | null | undefined): Promise<string> {
  const readable = stream as Readable | null | undefined;
  if (!readable) return Promise.resolve('');
  const chunks: Buffer[] = [];
  readable.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    readable.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    readable.on('error', reject);
  });
}

/** Runs `command` under the shim with raw fd contents (for malformed plans) and raw arguments. */
export async function runShimRaw(
  args: string[],
  fds: Buffer[],
  statusFd: number,
  command: string[],
  options: RunOptions = {},
): Promise<ShimRun> {
  const shim = await ensureShim();
  const stdio = ['pipe', 'pipe', 'pipe', ...fds.map(() => 'pipe' as const), 'pipe'] as const;
  const argv = [
    ...(options.launcher ?? []),
    ...(options.bare ? [] : [options.shimPath ?? shim, ...args, '--']),
    ...command,
  ];
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: [...stdio],
    env: options.env ?? { PATH: '/usr/bin:/bin' },
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  fds.forEach((data, index) => {
    const pipe = child.stdio[3 + index] as Writable;
    pipe.on('error', () => {}); // the shim may refuse before reading everything
    pipe.end(data);
  });
  const stdin = child.stdin!;
  stdin.on('error', () => {});
  stdin.end(options.input ?? '');
  const [stdout, stderr, status, [exitCode, signal]] = await Promise.all([
    collect(child.stdout),
    collect(child.stderr),
    collect(child.stdio[statusFd]),
    new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (code, signalName) => resolve([code, signalName])),
    ),
  ]);
  return { exitCode, signal, stdout, stderr, status, error: readShimStatus(Buffer.from(status)) };
}

/** Runs `command` without the shim (with the same stdio), as a control. */
export function runBare(command: string[], options: RunOptions = {}): Promise<ShimRun> {
  return runShimRaw([], [], 3, command, { ...options, bare: true });
}

export async function runShim(
  command: string[],
  plan: ShimPlanOptions,
  options: RunOptions = {},
): Promise<ShimRun> {
  const planned = planShim(plan);
  return runShimRaw(planned.args, planned.fds, planned.statusFd, command, options);
}

/** A Python snippet run with Debian's interpreter (not a pyenv shim on PATH). */
export function python(code: string): string[] {
  return ['/usr/bin/python3', '-c', code];
}

export interface ThrowawayUser {
  name: string;
  uid: number;
  gid: number;
  remove(): void;
}

/** A real, unprivileged account for the duration of a test file (needs root). */
export function createThrowawayUser(prefix: string): ThrowawayUser {
  const name = `${prefix}-${process.pid}`;
  execFileSync('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', name]);
  return {
    name,
    uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })),
    gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })),
    remove: () => execFileSync('userdel', ['--remove', name], { stdio: 'ignore' }),
  };
}
