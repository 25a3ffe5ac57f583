import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { landlockAbi } from '../landlock/landlock-abi.js';
import { ensureShim } from './ensure-shim.js';
import { planShim, type ShimPlanOptions } from './plan-shim.js';
import {
  createThrowawayUser,
  python,
  runBare,
  runShim,
  runShimRaw,
  type ThrowawayUser,
  testCapabilities,
} from './shim-test-support.js';

const ATTEMPT = `
import errno, os, socket, sys, ctypes
libc = ctypes.CDLL(None, use_errno=True)
def attempt(action):
    try:
        action()
        return 'ok'
    except OSError as error:
        return errno.errorcode[error.errno]
def raw(value):
    return 'ok' if value >= 0 else errno.errorcode[ctypes.get_errno()]
`;
const attempt = (code: string) => python(`${ATTEMPT}\n${code}`);

let base: string;
let workspace: string;
let readonly: string;
let outside: string;

type CapabilityOverrides = Omit<Parameters<typeof testCapabilities>[0], 'workdir'>;

function plan(overrides: CapabilityOverrides = {}, extra: Partial<ShimPlanOptions> = {}): ShimPlanOptions {
  const capabilities = testCapabilities({
    ...overrides,
    read: [readonly, ...(overrides.read ?? [])],
    write: [workspace, ...(overrides.write ?? [])],
    workdir: workspace,
  });
  return { capabilities, workdir: workspace, ...extra };
}

beforeAll(() => {
  base = mkdtempSync('/tmp/bulkhead-shim-test-');
  chmodSync(base, 0o755); // the unprivileged test user must be able to reach it
  workspace = join(base, 'workspace');
  readonly = join(base, 'readonly');
  outside = join(base, 'outside');
  for (const directory of [workspace, readonly, join(readonly, 'sub'), outside]) {
    mkdirSync(directory);
    chmodSync(directory, 0o777);
  }
  writeFileSync(join(readonly, 'public.txt'), 'public\n', { mode: 0o666 });
  writeFileSync(join(readonly, 'secret.txt'), 'secret\n', { mode: 0o666 });
  writeFileSync(join(readonly, 'sub', 'inner.txt'), 'inner\n', { mode: 0o666 });
  writeFileSync(join(outside, 'file.txt'), 'outside\n', { mode: 0o666 });
  writeFileSync(join(workspace, 'not-executable.sh'), '#!/bin/sh\necho ran\n', { mode: 0o644 });
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Starts the shim from a caller of its own (Python), SIGKILLs the caller, and says whether the payload died. */
async function payloadDiesWithItsCaller(user: { uid?: number; gid?: number } = {}): Promise<boolean> {
  const marker = `bulkhead-shim-parent-test-${process.pid}`;
  // A caller of its own (Python) that starts the shim, so that the test can SIGKILL it.
  const caller = spawn(
    '/usr/bin/python3',
    [
      '-c',
      `import os, subprocess, sys
sys.stdin.readline()
os.dup2(os.open(sys.argv[1], os.O_RDONLY), 3)
os.dup2(os.open(sys.argv[2], os.O_RDONLY), 4)
os.dup2(os.open('/dev/null', os.O_WRONLY), 5)
child = subprocess.Popen(sys.argv[3:], pass_fds=(3, 4, 5), env={'PATH': '/usr/bin:/bin'})
print(child.pid, flush=True)
child.wait()`,
      join(base, 'parent-plan'),
      join(base, 'parent-filter'),
      await ensureShim(),
      '--config-fd',
      '3',
      '--status-fd',
      '5',
      '--',
      '/bin/sh',
      '-c',
      `exec sleep 300 # ${marker}`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'], ...user },
  );
  const alive = (pid: number) => {
    try {
      return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const payloadPid = async () => {
    const planned = planShim(plan({}, { parentPid: caller.pid! }));
    const text = planned.fds[0]!.toString();
    writeFileSync(join(base, 'parent-plan'), text);
    writeFileSync(join(base, 'parent-filter'), planned.fds[1]!);
    caller.stdin!.write('go\n');
    const [line] = (await once(caller.stdout!, 'data')) as [Buffer];
    const pid = Number(line.toString().trim());
    // The payload, not the shim, is what must die: wait until the shim has exec'd sleep.
    for (
      let attempt = 0;
      attempt < 500 && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep');
      attempt++
    )
      await new Promise((resolve) => setTimeout(resolve, 10));
    return pid;
  };
  const pid = await payloadPid();
  expect(alive(pid)).toBe(true);
  caller.kill('SIGKILL');
  let gone = false;
  for (let attempt = 0; attempt < 500 && !gone; attempt++) {
    gone = !alive(pid);
    if (!gone) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (!gone) process.kill(pid, 'SIGKILL');
  return gone;
}

describe('the exec shim, alone on the host', () => {
  it('runs the payload with stdio, its exit code and the working directory', async () => {
    const result = await runShim(['/bin/sh', '-c', 'cat; echo to-stderr >&2; pwd; exit 7'], plan(), {
      input: 'from stdin\n',
    });
    expect(result.status).toBe('');
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe(`from stdin\n${workspace}\n`);
    expect(result.stderr).toBe('to-stderr\n');
    expect(result.exitCode).toBe(7);
  });

  it('takes the program from the plan, words with spaces and newlines intact, for a shim started before its payload was known', async () => {
    const words = ['/bin/sh', '-c', 'printf "%s|" "$@"', 'sh', 'two words', 'line\nbreak'];
    const planned = planShim({ ...plan(), command: words });
    const shim = await ensureShim();
    const child = spawn(shim, planned.args, {
      stdio: ['pipe', 'pipe', 'pipe', ...planned.fds.map(() => 'pipe' as const), 'pipe'],
      env: { PATH: '/usr/bin:/bin' },
    });
    for (const [index, data] of planned.fds.entries()) (child.stdio[3 + index] as Writable).end(data);
    child.stdin!.end();
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    const [exitCode] = await once(child, 'close');
    expect(exitCode).toBe(0);
    expect(stdout).toBe('two words|line\nbreak|');
  });

  it('refuses a program named both after -- and in the plan', async () => {
    const planned = planShim({ ...plan(), command: ['/bin/true'] });
    const result = await runShimRaw(planned.args, planned.fds, planned.statusFd, ['/bin/echo', 'ran']);
    expect(result.stdout).toBe('');
    expect(result.error?.message).toMatch(/named twice/);
  });

  it('refuses reads outside the grants with EACCES', async () => {
    const file = join(outside, 'file.txt');
    const result = await runShim(
      attempt(`print(attempt(lambda: open(${JSON.stringify(file)}).read()))`),
      plan(),
    );
    expect(result.stdout).toBe('EACCES\n');
  });

  it('refuses writes to a read-only grant and allows them in a write grant', async () => {
    const result = await runShim(
      attempt(`
print(attempt(lambda: open(${JSON.stringify(join(readonly, 'public.txt'))}, 'a')))
print(attempt(lambda: open(${JSON.stringify(join(readonly, 'new.txt'))}, 'w')))
print(attempt(lambda: open(${JSON.stringify(join(workspace, 'new.txt'))}, 'w').write('x')))
print(open(${JSON.stringify(join(readonly, 'public.txt'))}).read(), end='')`),
      plan(),
    );
    expect(result.stdout).toBe('EACCES\nEACCES\nok\npublic\n');
  });

  it('refuses a denied file inside a read grant while its siblings stay readable', async () => {
    const result = await runShim(
      attempt(`
print(attempt(lambda: open(${JSON.stringify(join(readonly, 'secret.txt'))}).read()))
print(open(${JSON.stringify(join(readonly, 'public.txt'))}).read(), end='')
print(open(${JSON.stringify(join(readonly, 'sub', 'inner.txt'))}).read(), end='')
print(sorted(os.listdir(${JSON.stringify(readonly)})))
print(attempt(lambda: open('/etc/shadow').read()))
print(open('/etc/passwd').read()[:4])`),
      plan({ deny: [join(readonly, 'secret.txt')] }),
    );
    expect(result.stdout).toBe(
      "EACCES\npublic\ninner\n['not-executable.sh', 'public.txt', 'secret.txt', 'sub']\nEACCES\nroot\n".replace(
        "'not-executable.sh', ",
        '',
      ),
    );
  });

  it('does not follow a symlink among the entries of a split grant', async () => {
    const linked = join(base, 'linked');
    mkdirSync(linked);
    writeFileSync(join(linked, 'secret'), 'secret\n');
    symlinkSync(outside, join(linked, 'link-out'));
    const planned = planShim(plan({ read: [linked], deny: [join(linked, 'secret')] }));
    const code = attempt(
      `print(attempt(lambda: open(${JSON.stringify(join(linked, 'link-out', 'file.txt'))}).read()))`,
    );
    const run = (text: string) =>
      runShimRaw(planned.args, [Buffer.from(text), planned.fds[1]!], planned.statusFd, code);
    const text = planned.fds[0]!.toString();
    expect(text).toContain(`entry 13 ${join(linked, 'link-out')}\n`);
    expect((await run(text)).stdout).toBe('EACCES\n');
    // Followed, the same rule would grant the link's target.
    expect(
      (
        await run(
          text.replace(
            `entry 13 ${join(linked, 'link-out')}`,
            `path-optional 13 ${join(linked, 'link-out')}`,
          ),
        )
      ).stdout,
    ).toBe('ok\n');
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    let abstractListener: ChildProcess;
    const abstractName = `\0bulkhead-shim-test-${process.pid}`;

    beforeAll(async () => {
      server = createServer((socket) => socket.end('hello\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
      // Node's net module cannot bind abstract names: a Python listener on the host stands in.
      abstractListener = spawn(
        '/usr/bin/python3',
        [
          '-c',
          `import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(abstractName)})\ns.listen(8)\nprint('ready', flush=True)\nwhile True: s.accept()[0].close()`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve) => abstractListener.stdout!.once('data', () => resolve()));
    });
    afterAll(() => {
      server.close();
      abstractListener.kill('SIGKILL');
    });

    const connectTcp = () =>
      attempt(`print(attempt(lambda: socket.create_connection(('127.0.0.1', ${port}), timeout=5).recv(10)))`);

    it('refuses a TCP connect to a loopback listener with network none, and allows it with network open', async () => {
      expect((await runShim(connectTcp(), plan())).stdout).toBe('EACCES\n');
      expect((await runShim(connectTcp(), plan({ network: 'open' }))).stdout).toBe('ok\n');
    });

    it('refuses binding TCP ports with network none', async () => {
      const bind = (port: number) => `print(attempt(lambda: socket.socket().bind(('127.0.0.1', ${port}))))`;
      const code = attempt(`${bind(0)}\n${bind(port + 1)}`);
      expect((await runShim(code, plan())).stdout).toBe('EACCES\nEACCES\n');
      expect((await runShim(code, plan({ network: 'open' }))).stdout).toBe('ok\nok\n');
    });

    it('refuses UDP, raw and packet sockets with network none, keeping unix sockets where allowed', async () => {
      const result = await runShim(
        attempt(`
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
print(attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)))
print(attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)))
print(attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)))`),
        plan({}, { unixSockets: true }),
      );
      expect(result.stdout).toBe('EPERM\nEPERM\nEPERM\nEPERM\nok\n');
    });

    it('keeps the payload off a host unix socket in a non-granted directory, stream socketpairs still working', async () => {
      const path = join(outside, 'host.sock');
      const received: string[] = [];
      const listener = createServer((socket) => socket.on('data', (data) => received.push(data.toString())));
      await new Promise<void>((resolve) => listener.listen(path, resolve));
      try {
        const code = attempt(`
def connect(token):
    client = socket.socket(socket.AF_UNIX)
    client.connect(${JSON.stringify(path)})
    client.sendall(token)
    client.close()
def datagram():
    # A datagram socketpair may sendto() any path: refused too.
    socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0].sendto(b'dgram', ${JSON.stringify(path)})
def pair():
    left, right = socket.socketpair()
    left.sendall(b'x')
    assert right.recv(1) == b'x'
print(attempt(lambda: connect(sys.argv[1].encode())))
print(attempt(datagram))
print(attempt(pair))`);
        const run = (token: string, extra: Partial<ShimPlanOptions>, bare = false) =>
          (bare ? runBare : (command: string[]) => runShim(command, plan({}, extra)))([...code, token]);
        // Control: the same payload connects from the host, and Landlock alone does not stop it.
        expect((await run('from-control', {}, true)).stdout.split('\n')[0]).toBe('ok');
        expect((await run('from-opt-in', { unixSockets: true })).stdout.split('\n')[0]).toBe('ok');
        expect((await run('from-sandbox', {})).stdout).toBe('EPERM\nEPERM\nok\n');
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(received.join('')).toContain('from-control');
        expect(received.join('')).toContain('from-opt-in');
        expect(received.join('')).not.toContain('from-sandbox');
      } finally {
        listener.close();
      }
    });

    it('refuses connecting to an abstract unix socket of the host (Landlock scope)', async () => {
      const code = `print(attempt(lambda: socket.socket(socket.AF_UNIX).connect(${JSON.stringify(abstractName)})))`;
      const control = await runBare(attempt(code));
      expect(control.stdout).toBe('ok\n');
      expect((await runShim(attempt(code), plan({ network: 'open' }))).stdout).toBe('EPERM\n');
    });
  });

  describe('host processes', () => {
    let sleeper: ChildProcess;
    beforeAll(() => {
      sleeper = spawn('sleep', ['120'], { stdio: 'ignore' });
    });
    afterAll(() => {
      sleeper.kill('SIGKILL');
    });

    it('refuses signalling a host process (Landlock scope)', async () => {
      const code = `print(attempt(lambda: os.kill(${sleeper.pid}, 0)))`;
      expect((await runBare(attempt(code))).stdout).toBe('ok\n');
      expect((await runShim(attempt(code), plan())).stdout).toBe('EPERM\n');
    });

    it('refuses mount, ptrace, unshare, TIOCSTI and clone3', async () => {
      const code = `
print(raw(libc.mount(b'none', ${JSON.stringify(workspace)}.encode(), b'bulkhead-no-such-fs', 0, None)))
print(raw(libc.ptrace(2, ${sleeper.pid}, 0, 0)))
print(raw(libc.unshare(0x10000000)))
print(raw(libc.unshare(0x00020000)))
print(raw(libc.ioctl(0, 0x5412, ctypes.c_char_p(b'x'))))
print(raw(libc.syscall(435, None, 0)))`;
      // Outside the shim the same calls get past the permission checks (as root) and fail for
      // other reasons: no such filesystem, not traced, not a terminal. None changes the host.
      const control = await runBare(attempt(code));
      const [mount, ptrace, , , tiocsti] = control.stdout.split('\n');
      if (process.getuid?.() === 0) expect([mount, ptrace]).toEqual(['ENODEV', 'ESRCH']);
      expect(tiocsti).toBe('ENOTTY');
      const result = await runShim(attempt(code), plan());
      expect(result.stdout).toBe('EPERM\nEPERM\nEPERM\nEPERM\nEPERM\nENOSYS\n');
    });
  });

  it("leaves the payload exactly the capabilities' environment and the tier's variables", async () => {
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: '/home/x',
      PWD: '/somewhere',
      SECRET: 'caller-secret',
      EDITOR: 'vi',
    };
    const control = await runBare(['/usr/bin/env'], { env });
    expect(control.stdout).toContain('SECRET=caller-secret');
    const capabilities = { ...plan().capabilities, env: { EDITOR: 'vi' } };
    const result = await runShim(['/usr/bin/env'], { ...plan(), capabilities }, { env });
    expect(result.stdout.split('\n').filter(Boolean).sort()).toEqual([
      'EDITOR=vi',
      'HOME=/home/x',
      'PATH=/usr/bin:/bin',
    ]);
  });

  it('refuses to run the payload when its parent is not the one the plan names', async () => {
    const result = await runShim(['/bin/echo', 'ran'], plan({}, { parentPid: 1 }));
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.error?.details?.step).toBe('parent');
  });

  it('kills the payload when the process that started the shim is killed', async () => {
    expect(await payloadDiesWithItsCaller(), 'the payload outlived its caller').toBe(true);
  });

  it('without the parent line, a payload outlives its killed caller (the control)', async () => {
    const caller = spawn(
      '/usr/bin/python3',
      [
        '-c',
        `import os, subprocess, sys
os.dup2(os.open(sys.argv[1], os.O_RDONLY), 3)
os.dup2(os.open(sys.argv[2], os.O_RDONLY), 4)
os.dup2(os.open('/dev/null', os.O_WRONLY), 5)
print(subprocess.Popen(sys.argv[3:], pass_fds=(3, 4, 5), env={'PATH': '/usr/bin:/bin'}).pid, flush=True)
import signal; signal.pause()`,
        join(base, 'orphan-plan'),
        join(base, 'orphan-filter'),
        await ensureShim(),
        '--config-fd',
        '3',
        '--status-fd',
        '5',
        '--',
        'sleep',
        '300',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const planned = planShim(plan());
    writeFileSync(join(base, 'orphan-plan'), planned.fds[0]!.toString().replace(/^parent \d+\n/m, ''));
    writeFileSync(join(base, 'orphan-filter'), planned.fds[1]!);
    const [line] = (await once(caller.stdout!, 'data')) as [Buffer];
    const pid = Number(line.toString().trim());
    caller.kill('SIGKILL');
    await once(caller, 'exit');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    process.kill(pid, 'SIGKILL');
    expect(state).not.toMatch(/^\S+ \(.*\) Z/);
  });

  it('kills the payload on an x32 syscall', async () => {
    const result = await runShim(attempt('libc.syscall(0x40000000 + 39)\nprint("survived")'), plan());
    expect(result.signal).toBe('SIGSYS');
    expect(result.stdout).toBe('');
  });

  it('with spawn false, refuses fork but lets a single exec and threads run', async () => {
    const forking = await runShim(['/bin/sh', '-c', 'ls /; echo done'], plan({ spawn: false }));
    expect(forking.exitCode).not.toBe(0);
    expect(forking.stdout).not.toContain('done');
    expect(forking.stderr).toMatch(/fork/i);
    const single = await runShim(['/bin/echo', 'single exec'], plan({ spawn: false }));
    expect(single.stdout).toBe('single exec\n');
    const threads = await runShim(
      attempt(`
import threading
results = []
thread = threading.Thread(target=lambda: results.append('thread ran'))
thread.start(); thread.join()
print(results[0])
print(attempt(lambda: os.fork()))`),
      plan({ spawn: false }),
    );
    expect(threads.stdout).toBe('thread ran\nEPERM\n');
    const control = await runShim(
      ['/bin/sh', '-c', 'ls / >/dev/null; echo done'],
      plan({}, { extraWritePaths: ['/dev/null'] }),
    );
    expect(control.stdout).toBe('done\n');
  });

  it('starts a new session without a controlling terminal', async () => {
    const result = await runShim(
      attempt(`
print(os.getsid(0) == os.getpid())
print(attempt(lambda: open('/dev/tty', 'r+')))`),
      plan({}, { extraWritePaths: ['/dev/tty'] }),
    );
    expect(result.stdout).toBe('True\nENXIO\n');
  });

  it('resets signal dispositions and the signal mask, and closes inherited fds', async () => {
    // The launcher ignores SIGINT, blocks SIGUSR1 and leaks fd 9 before exec'ing the shim.
    const launcher = python(
      'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]); os.dup2(0, 9, inheritable=True); os.execv(sys.argv[1], sys.argv[1:])',
    );
    const inspect = [
      '/bin/sh',
      '-c',
      'grep -E "^(SigBlk|SigIgn)" /proc/self/status; ls /proc/self/fd | sort -n | tr "\\n" " "',
    ];
    const control = await runBare(inspect, { launcher });
    expect(control.stdout).not.toMatch(/SigIgn:\s+0+\n/);
    expect(control.stdout).toMatch(/ 9 /);
    const result = await runShim(inspect, plan({ read: ['/proc'] }), { launcher });
    expect(result.stdout).toMatch(/SigBlk:\s+0+\n/);
    expect(result.stdout).toMatch(/SigIgn:\s+0+\n/);
    // 0-2, plus the fd ls opens to list the directory.
    expect(
      result.stdout
        .trim()
        .split(' ')
        .map(Number)
        .filter((fd) => fd > 3),
    ).toEqual([]);
  });

  it('exits 127 for a program that is not found and 126 for one that cannot be executed', async () => {
    const missing = await runShim(['no-such-program-anywhere'], plan());
    expect(missing.exitCode).toBe(127);
    expect(BulkheadError.hasCode(missing.error, 'COMMAND_NOT_FOUND')).toBe(true);
    expect(missing.error?.details?.exitCode).toBe(127);
    const notExecutable = await runShim([join(workspace, 'not-executable.sh')], plan());
    expect(notExecutable.exitCode).toBe(126);
    expect(BulkheadError.hasCode(notExecutable.error, 'COMMAND_NOT_EXECUTABLE')).toBe(true);
  });

  it('tells a missing working directory from a payload failure', async () => {
    const result = await runShim(['/bin/true'], { ...plan(), workdir: join(base, 'missing') });
    expect(result.exitCode).toBe(125);
    expect(result.error?.code).toBe('LAUNCH_FAILED');
    expect(result.error?.message).toContain('working directory');
  });

  it.each([
    ['no version line', 'landlock 1 1 0 0\n', /line 1: the first line must be 'bulkhead-plan 1'/],
    ['a non-numeric mask', 'bulkhead-plan 1\nlandlock 1 x 0 0\n', /line 2: expected a filesystem mask/],
    ['an unknown directive', 'bulkhead-plan 1\nfly away\n', /line 2: unknown directive/],
    [
      'a relative path',
      'bulkhead-plan 1\nlandlock 1 7 0 0\npath 1 usr\n',
      /line 3: expected an absolute path/,
    ],
    [
      'a mask beyond the handled rights',
      'bulkhead-plan 1\nlandlock 1 4 0 0\npath 8 /usr\n',
      /line 3: a path mask/,
    ],
    ['no final newline', 'bulkhead-plan 1', /must end with a newline/],
    ['a bad rlimit', 'bulkhead-plan 1\nrlimit nofile 10 5\n', /soft value exceeds/],
  ])('rejects a plan with %s', async (_name, text, message) => {
    const result = await runShimRaw(['--config-fd', '3', '--status-fd', '4'], [Buffer.from(text)], 4, [
      '/bin/echo',
      'ran',
    ]);
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.error?.code).toBe('SHIM_PLAN_INVALID');
    expect(result.error?.message).toMatch(message);
  });

  it('refuses a plan that needs a newer Landlock than the kernel has', async () => {
    const text = 'bulkhead-plan 1\nlandlock 99 1 0 0\n';
    const result = await runShimRaw(['--config-fd', '3', '--status-fd', '4'], [Buffer.from(text)], 4, [
      '/bin/true',
    ]);
    expect(result.exitCode).toBe(125);
    expect(result.error?.code).toBe('UNENFORCEABLE_CAPABILITY');
    expect(result.error?.message).toContain(`Landlock ABI ${landlockAbi()}`);
  });

  it('applies rlimits', async () => {
    const result = await runShim(
      ['/bin/sh', '-c', 'ulimit -n; ulimit -Hn'],
      plan({}, { rlimits: { nofile: [64, 128] } }),
    );
    expect(result.stdout).toBe('64\n128\n');
  });
});

// Creating a throwaway account needs root. Run unprivileged, every test above already is the
// unprivileged case, so nothing is lost by skipping this block then.
describe.skipIf(process.getuid?.() !== 0)('the exec shim, run by an unprivileged user', () => {
  let user: ThrowawayUser;
  beforeAll(() => {
    user = createThrowawayUser('bh-shim');
  });
  afterAll(() => user.remove());

  it('refuses reads outside the grants and new user namespaces that the user could otherwise use', async () => {
    const code = `
print(os.getuid())
print(attempt(lambda: open(${JSON.stringify(join(outside, 'file.txt'))}).read()))
print(raw(libc.unshare(0x10000000)))`;
    const { uid, gid } = user;
    const control = await runBare(attempt(code), { uid, gid });
    expect(control.stdout).toBe(`${uid}\nok\nok\n`);
    const result = await runShim(attempt(code), plan(), { uid, gid });
    expect(result.stdout).toBe(`${uid}\nEACCES\nEPERM\n`);
  });

  it("refuses this user's payload a host unix socket it could otherwise connect to", async () => {
    const path = join(outside, 'user.sock');
    const received: string[] = [];
    const listener = createServer((socket) => socket.on('data', (data) => received.push(data.toString())));
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    chmodSync(path, 0o777);
    try {
      const code = attempt(`
def connect():
    client = socket.socket(socket.AF_UNIX)
    client.connect(${JSON.stringify(path)})
    client.sendall(sys.argv[1].encode())
    client.close()
print(attempt(connect))`);
      const { uid, gid } = user;
      expect((await runBare([...code, 'from-control'], { uid, gid })).stdout).toBe('ok\n');
      expect((await runShim([...code, 'from-sandbox'], plan(), { uid, gid })).stdout).toBe('EPERM\n');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(received.join('')).toContain('from-control');
      expect(received.join('')).not.toContain('from-sandbox');
    } finally {
      listener.close();
    }
  });

  it('kills the payload when its caller, run as this user, is killed', async () => {
    expect(await payloadDiesWithItsCaller(user), 'the payload outlived its caller').toBe(true);
  });

  it('skips a granted path this user cannot reach instead of failing the launch', async () => {
    const unreachable = join(base, 'root-only');
    mkdirSync(join(unreachable, 'inside'), { recursive: true, mode: 0o700 });
    chmodSync(unreachable, 0o700);
    const result = await runShim(
      ['/bin/echo', 'launched'],
      plan({ read: [join(unreachable, 'inside')] }),
      user,
    );
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe('launched\n');
  });
});
