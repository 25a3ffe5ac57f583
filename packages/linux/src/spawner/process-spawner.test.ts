import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessSpawner, parentPidOf, type SpawnerRequest } from './process-spawner.js';

const packageDirectory = fileURLToPath(new URL('../..', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../../node_modules/.bin/vite-node', import.meta.url));

function collect(stream: Socket | null | undefined): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    if (!stream) return resolve('');
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', () => resolve(text));
  });
}

async function run(spawner: ProcessSpawner, request: Partial<SpawnerRequest> & { args: string[] }) {
  const child = spawner.spawn({ file: '/bin/sh', cwd: '/', env: {}, stdioCount: 3, ...request });
  if (!child) throw new Error('the spawner did not take the request');
  const [stdout, stderr, exit] = await Promise.all([
    collect(child.stdout as Socket),
    collect(child.stderr as Socket),
    new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (code, signal) => resolve([code, signal])),
    ),
  ]);
  return { child, stdout, stderr, exit };
}

function alive(pid: number): boolean {
  try {
    // A zombie still answers kill(0): only a running process counts.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('ProcessSpawner', () => {
  let spawner: ProcessSpawner;
  beforeAll(async () => {
    const started = await ProcessSpawner.start();
    if (!started) throw new Error('the spawner could not start here');
    spawner = started;
  });
  afterAll(() => spawner.close());

  it('runs a program with its argv, environment, working directory and piped stdio', async () => {
    const child = spawner.spawn({
      file: '/bin/sh',
      args: ['-c', 'echo "$0 $1 $GREETING $(pwd)"; cat; echo oops >&2; exit 7', 'zero', 'one'],
      cwd: '/usr',
      env: { GREETING: 'hello', PATH: '/usr/bin:/bin' },
      stdioCount: 3,
    });
    expect(child).toBeDefined();
    const exit = new Promise((resolve) => child!.once('exit', (code, signal) => resolve([code, signal])));
    const [stdout, stderr] = [collect(child!.stdout as Socket), collect(child!.stderr as Socket)];
    child!.stdin!.end('from stdin\n');
    expect(await exit).toEqual([7, null]);
    expect(await stdout).toBe('zero one hello /usr\nfrom stdin\n');
    expect(await stderr).toBe('oops\n');
    expect(child!.exitCode).toBe(7);
    // Its parent is the spawner, not this process.
    expect(parentPidOf(child!)).not.toBe(process.pid);
    expect(parentPidOf(spawn('/bin/true'))).toBe(process.pid);
  });

  it('gives the child only its own fds, the extra ones duplex like spawn()', async () => {
    const child = spawner.spawn({
      file: '/bin/sh',
      args: ['-c', 'read line <&3; echo "got $line" >&3; ls /proc/self/fd'],
      cwd: '/',
      env: {},
      stdioCount: 4,
    })!;
    const extra = (child.stdio as unknown as Socket[])[3]!;
    const reply = collect(extra);
    const listing = collect(child.stdout as Socket);
    extra.write('ping\n');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(await reply).toBe('got ping\n');
    // 0-3, and the fd ls itself opened for the listing.
    expect((await listing).trim().split('\n').map(Number).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('reports a signal that ended the child, and kills on request', async () => {
    const child = spawner.spawn({ file: '/bin/sleep', args: ['30'], cwd: '/', env: {}, stdioCount: 3 })!;
    await new Promise((resolve) => child.once('spawn', resolve));
    expect(alive(child.pid!)).toBe(true);
    const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    expect(child.kill('SIGTERM')).toBe(true);
    expect(await exit).toEqual([null, 'SIGTERM']);
    expect(child.signalCode).toBe('SIGTERM');
    expect(child.kill('SIGKILL')).toBe(false);
  });

  it('fails like spawn() for a program that is not there, and declines a relative path', async () => {
    const child = spawner.spawn({
      file: '/nonexistent/program',
      args: [],
      cwd: '/',
      env: {},
      stdioCount: 3,
    })!;
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
    expect(error.code).toBe('ENOENT');
    expect(error.message).toBe('spawn /nonexistent/program ENOENT');
    expect(spawner.spawn({ file: 'sh', args: [], cwd: '/', env: {}, stdioCount: 3 })).toBeUndefined();
    // The spawner still serves the next request.
    expect((await run(spawner, { args: ['-c', 'echo still here'] })).stdout).toBe('still here\n');
  });

  // Switching to another uid takes root; an unprivileged caller never asks the spawner to.
  it.skipIf(process.getuid?.() !== 0)(
    'switches the child to the uid and gid asked, with no groups',
    async () => {
      const { stdout, exit } = await run(spawner, {
        args: ['-c', 'id -u; id -g; id -G'],
        uid: 65534,
        gid: 65534,
      });
      expect(exit).toEqual([0, null]);
      expect(stdout.trim().split('\n')).toEqual(['65534', '65534', '65534']);
    },
  );

  it('starts 50 children at once and reports every exit', async () => {
    const runs = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        run(spawner, { args: ['-c', `echo ${index}; exit ${index % 5}`] }),
      ),
    );
    expect(runs.map((result) => result.stdout)).toEqual(runs.map((_, index) => `${index}\n`));
    expect(runs.map((result) => result.exit[0])).toEqual(runs.map((_, index) => index % 5));
  });

  it('dies with the process that started it, and never keeps that process alive', async () => {
    // A caller killed while its child runs: the spawner goes with it.
    const killed = spawn(viteNode, ['src/spawner/fixtures/spawner-caller.ts', '30'], {
      cwd: packageDirectory,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve) =>
      killed.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())),
    );
    const pids = JSON.parse(line) as { spawner: number; sleep: number };
    expect(alive(pids.spawner)).toBe(true);
    killed.kill('SIGKILL');
    await new Promise((resolve) => killed.once('exit', resolve));
    for (let attempt = 0; attempt < 100 && alive(pids.spawner); attempt++)
      await new Promise((r) => setTimeout(r, 20));
    expect(alive(pids.spawner)).toBe(false);
    process.kill(pids.sleep, 'SIGKILL');

    // A caller whose child ended exits by itself: the spawner holds nothing open for it.
    const finished: ChildProcess = spawn(viteNode, ['src/spawner/fixtures/spawner-caller.ts', '0.1'], {
      cwd: packageDirectory,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const code = await new Promise((resolve) => finished.once('exit', resolve));
    expect(code).toBe(0);
    expect(existsSync(`/proc/${finished.pid}`)).toBe(false);
  }, 30_000);
});
