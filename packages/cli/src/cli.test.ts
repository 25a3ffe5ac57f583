import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { capturedIo } from './captured-io.js';
import type { DoctorReport } from './commands/doctor.js';
import { main } from './main.js';
import { processTierUnavailable } from './process-tier-status.js';

/** The built binary, as `npm i -g bulkhead` would install it (vitest.global-setup.ts builds it). */
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function start(argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...argv], {
    cwd: tmpdir(),
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: 'pipe',
  });
}

async function finish(child: ChildProcess & { stdout: Readable; stderr: Readable }) {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

/** The first line the child writes to stdout. */
function firstLine(child: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      child.stdout.off('data', onData);
      resolve(buffered.slice(0, newline));
    };
    child.stdout.on('data', onData);
    child.once('close', () =>
      reject(new Error(`the CLI ended before printing a line (stdout: ${JSON.stringify(buffered)})`)),
    );
  });
}

/** Alive and not a zombie waiting for its parent. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('the bulkhead binary', () => {
  it('runs a command and exits with its status', async () => {
    const result = await finish(start(['run', '--tier', 'none', '--', 'sh', '-c', 'echo out; exit 42']));
    expect(result.code).toBe(42);
    expect(result.stdout).toBe('out\n');
  });

  it('streams its stdin through to the command', async () => {
    const child = start(['run', '--tier', 'none', '--', 'sh', '-c', 'wc -l']);
    child.stdin.end('one\ntwo\nthree\n');
    const result = await finish(child);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe('3');
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('on %s kills the sandbox, leaves nothing running and exits %i', async (signal, status) => {
    const child = start(['run', '--tier', 'none', '--', 'sh', '-c', 'sleep 300 & echo $!; wait']);
    const done = finish(child);
    const payload = Number(await firstLine(child));
    expect(isRunning(payload)).toBe(true);
    child.kill(signal);
    const result = await done;
    expect(result.code).toBe(status);
    expect(isRunning(payload)).toBe(false);
  });

  it('never hands the terminal to the command, and colours only a terminal without NO_COLOR', async () => {
    const payload =
      'test -t 0 || echo stdin-not-a-terminal; test -t 1 || echo stdout-not-a-terminal; cat; echo stdin-closed';
    // script(1) gives the CLI a real terminal on stdin, stdout and stderr.
    const inTerminal = (environment: NodeJS.ProcessEnv) =>
      finish(
        spawn(
          'script',
          ['-qec', `${process.execPath} ${CLI} run --tier none -- sh -c '${payload}'`, '/dev/null'],
          {
            cwd: tmpdir(),
            env: environment,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        ),
      );
    const { NO_COLOR: _noColor, ...environment } = process.env;
    const coloured = await inTerminal({ ...environment, TERM: 'xterm' });
    expect(coloured.code).toBe(0);
    expect(coloured.stdout).toContain('stdin-not-a-terminal');
    expect(coloured.stdout).toContain('stdout-not-a-terminal');
    // The command got an empty, closed stdin rather than waiting on the keyboard.
    expect(coloured.stdout).toContain('stdin-closed');
    expect(coloured.stdout).toContain('\u001b[');

    const plain = await inTerminal({ ...environment, TERM: 'xterm', NO_COLOR: '1' });
    expect(plain.stdout).toContain('WITHOUT ANY ISOLATION');
    expect(plain.stdout).not.toContain('\u001b[');
  });

  it('with -i forwards what is typed at the terminal, through a pipe', async () => {
    const child = spawn(
      'script',
      [
        '-qec',
        `${process.execPath} ${CLI} run -i --tier none -- sh -c 'test -t 0 || read line; echo "got:$line"'`,
        '/dev/null',
      ],
      {
        cwd: tmpdir(),
        env: { ...process.env, TERM: 'xterm', NO_COLOR: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    // A line, then Ctrl-D, as a person would type them.
    child.stdin.end('typed-line\n\u0004');
    const result = await finish(child);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('got:typed-line');
  });

  it('exits 141 and ends the command, as SIGPIPE would, when its reader goes away', async () => {
    const child = start(['run', '--tier', 'none', '--', 'yes']);
    child.stdout.once('data', () => child.stdout.destroy());
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(141);
  });

  it('prints its version', async () => {
    const result = await finish(start(['--version']));
    expect(result.code).toBe(0);
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(result.stdout.trim()).toBe(version);
  });
});

describe('the bulkhead binary, one bundle compiled with a V8 code cache', () => {
  let cacheHome: string;
  beforeAll(() => {
    cacheHome = mkdtempSync(join(tmpdir(), 'bulkhead-cli-cache-'));
  });
  afterAll(() => rmSync(cacheHome, { recursive: true, force: true }));

  const cacheFiles = (directory: string) =>
    existsSync(directory) ? readdirSync(directory).filter((name) => name.startsWith('cli-code-cache-')) : [];

  it('keeps its code cache in $XDG_RUNTIME_DIR/bulkhead, for the caller only, and reuses it', async () => {
    const env = { XDG_RUNTIME_DIR: cacheHome };
    expect((await finish(start(['--version'], env))).code).toBe(0);
    const directory = join(cacheHome, 'bulkhead');
    const [entry] = cacheFiles(directory);
    expect(entry).toBeDefined();
    const path = join(directory, entry ?? '');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const written = statSync(path).mtimeMs;
    // A second start takes its code from the file and leaves it as it was.
    expect((await finish(start(['--version'], env))).code).toBe(0);
    expect(cacheFiles(directory)).toEqual([entry]);
    expect(statSync(path).mtimeMs).toBe(written);
  });

  it('runs the same with a damaged cache, and replaces it', async () => {
    const env = { XDG_RUNTIME_DIR: cacheHome };
    await finish(start(['--version'], env));
    const directory = join(cacheHome, 'bulkhead');
    const path = join(directory, cacheFiles(directory)[0] ?? '');
    writeFileSync(path, 'not V8 code');
    const result = await finish(
      start(['run', '--tier', 'none', '--', 'sh', '-c', 'echo still; exit 7'], env),
    );
    expect(result.code).toBe(7);
    expect(result.stdout).toBe('still\n');
    expect(readFileSync(path).toString()).not.toBe('not V8 code');
  });

  it('runs the same when no cache can be written', async () => {
    const file = join(cacheHome, 'a-file');
    writeFileSync(file, '');
    const result = await finish(
      start(['run', '--tier', 'none', '--', 'sh', '-c', 'echo fine'], { XDG_RUNTIME_DIR: file }),
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('fine\n');
  });

  it('never hangs on a cache folder the kernel refuses oddly (under /proc)', async () => {
    // Node's recursive mkdir loops forever on /proc/missing/...: the binary must not use it.
    const child = start(['--version'], { XDG_RUNTIME_DIR: `/proc/bulkhead-missing-${process.pid}` });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const result = await finish(child);
    clearTimeout(timer);
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
  });

  it("sees the same tiers as the CLI's own modules: a tier plugin beside the bundled process tier loads", async () => {
    // The bundle carries @bulkhead/linux; a plugin (the session tier) loads its own copy beside it.
    const binary = JSON.parse((await finish(start(['doctor', '--json']))).stdout) as DoctorReport;
    const io = capturedIo({ cwd: tmpdir() });
    await main(['doctor', '--json'], io);
    const modules = JSON.parse(io.output()) as DoctorReport;
    const summary = (report: DoctorReport) =>
      report.tiers.map(({ tier, installed, available, reason }) => ({ tier, installed, available, reason }));
    expect(summary(binary)).toEqual(summary(modules));
  });
});

/** Processes whose command line is exactly `argv`, anywhere on the host. */
function processesRunning(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted && isRunning(Number(entry)))
        found.push(Number(entry));
    } catch {
      // It ended while we looked.
    }
  }
  return found;
}

const unavailable = await processTierUnavailable();

describe.skipIf(unavailable !== undefined)('the bulkhead binary on the process tier', () => {
  it('on SIGTERM kills the whole sandbox, leaves nothing running and exits 143', async () => {
    // A duration no other process uses, so that the payload can be found from outside its pid namespace.
    const payload = ['sleep', `${300_000 + process.pid}`];
    const child = start(['run', '--', 'sh', '-c', `${payload.join(' ')} & echo started; wait`]);
    const done = finish(child);
    expect(await firstLine(child)).toBe('started');
    await vi.waitFor(() => expect(processesRunning(payload).length).toBe(1));
    child.kill('SIGTERM');
    const result = await done;
    expect(result.code).toBe(143);
    expect(processesRunning(payload)).toEqual([]);
  });
});
