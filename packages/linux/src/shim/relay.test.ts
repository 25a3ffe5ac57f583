import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureShim } from './ensure-shim.js';
import { planShim } from './plan-shim.js';
import {
  createThrowawayUser,
  python,
  type RunOptions,
  runShimRaw,
  testCapabilities,
} from './shim-test-support.js';

// The relay lets a payload in an empty network namespace reach the host's egress proxy through
// 127.0.0.1:<port>. Here a unix-socket echo server stands in for the proxy, and `unshare -n` makes
// the empty namespace (its loopback starts down, so the shim must bring it up).
const isRoot = process.getuid?.() === 0;

let base: string;
let socketPath: string;
let echo: Server;
const markers: number[] = [];

beforeAll(async () => {
  base = mkdtempSync('/tmp/bulkhead-relay-test-');
  socketPath = join(base, 'egress.sock');
  // Like the egress proxy, it drops the marker byte the relay opens each connection with.
  echo = createServer((socket) => {
    socket.once('data', (first) => {
      markers.push(first[0]!);
      if (first.length > 1) socket.write(first.subarray(1));
      socket.pipe(socket);
    });
  });
  await new Promise<void>((resolve) => echo.listen(socketPath, resolve));
  // The unprivileged test user must reach the socket, as a sandbox's uid reaches the proxy's.
  chmodSync(base, 0o755);
  chmodSync(socketPath, 0o777);
});

afterAll(() => {
  echo.close();
  rmSync(base, { recursive: true, force: true });
});

const RELAY_PORT = 3128;

function relayPlan(proxySocketPath = socketPath) {
  const capabilities = testCapabilities({ read: ['/proc'], workdir: base });
  return planShim({ capabilities, workdir: base, relay: { port: RELAY_PORT, socketPath: proxySocketPath } });
}

async function runInEmptyNetwork(command: string[], options: RunOptions = {}, proxySocketPath = socketPath) {
  const plan = relayPlan(proxySocketPath);
  const privileged = isRoot && options.uid === undefined;
  // unshare keeps fds 3 and up open across its exec, so the plan pipes reach the shim.
  return runShimRaw(plan.args, plan.fds, plan.statusFd, command, {
    ...options,
    launcher: privileged ? ['unshare', '--net', '--'] : ['unshare', '--map-root-user', '--net', '--'],
  });
}

const CLIENT = `
import errno, os, socket
def exchange(port, payload):
    try:
        connection = socket.create_connection(('127.0.0.1', port), timeout=10)
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        received = b''
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return received
            received += chunk
    except OSError as error:
        return errno.errorcode[error.errno]
`;

/**
 * Runs `client` in an empty network namespace whose relay reaches a stand-in for the egress proxy
 * (Python, one connection) that hands the upstream over exactly as the shim describes it. The
 * upstream greets first, then echoes. Returns the client's output and how many bytes went through
 * the stand-in.
 */
async function throughHandover(client: string): Promise<{ stdout: string; forwarded: number }> {
  const upstream = createServer({ allowHalfOpen: true }, (socket) => {
    socket.write('upstream-hello;');
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamPort = (upstream.address() as { port: number }).port;
  const proxySocket = join(base, `handover-${randomUUID()}.sock`);
  const forwardedFile = `${proxySocket}.forwarded`;
  const proxy = spawn('/usr/bin/python3', [
    '-c',
    `
import os, socket, sys
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); server.listen(1)
print('ready', flush=True)
connection, _ = server.accept()
received = b''
while b'\\n' not in received:
    received += connection.recv(4096)
assert received[0] == 0, received
early = received.split(b'\\n', 1)[1]
up = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
socket.send_fds(connection, [b'granted\\n'], [up.fileno()])
forwarded = len(early)
up.sendall(early)
while True:
    chunk = connection.recv(65536)
    if not chunk: break
    forwarded += len(chunk)
    up.sendall(chunk)
up.close(); connection.close()
open(sys.argv[3], 'w').write(str(forwarded))
`,
    proxySocket,
    String(upstreamPort),
    forwardedFile,
  ]);
  const proxyExited = once(proxy, 'exit');
  try {
    await new Promise((resolve) => proxy.stdout.once('data', resolve));
    const result = await runInEmptyNetwork(python(client), {}, proxySocket);
    expect(result.error).toBeUndefined();
    await proxyExited;
    return { stdout: result.stdout, forwarded: Number(readFileSync(forwardedFile, 'utf8')) };
  } finally {
    proxy.kill();
    upstream.close();
  }
}

describe('the egress relay', () => {
  it('relays 127.0.0.1:<port> inside an empty network namespace to the host unix socket', async () => {
    const result = await runInEmptyNetwork(
      python(`${CLIENT}
print(exchange(${RELAY_PORT}, b'ping'))
print(len(exchange(${RELAY_PORT}, b'x' * (1 << 20))))
print(exchange(${RELAY_PORT + 1}, b'other port'))`),
    );
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe(`b'ping'\n${1 << 20}\nEACCES\n`);
    // Each connection to the proxy opened with the marker that offers it the handover.
    expect(markers.slice(-2)).toEqual([0, 0]);
  });

  it('takes an upstream socket the proxy passes (SCM_RIGHTS) and relays client and upstream directly, in order', async () => {
    // The upstream's greeting must reach the client after the proxy's reply, and the client's early
    // bytes (sent before the reply) upstream before its later ones.
    const { stdout, forwarded } = await throughHandover(`
import socket
connection = socket.create_connection(('127.0.0.1', ${RELAY_PORT}), timeout=10)
connection.sendall(b'open\\nearly;')
received = b''
while b'early;' not in received:
    received += connection.recv(65536)
connection.sendall(b'late;' + b'y' * (1 << 20))
connection.shutdown(socket.SHUT_WR)
while True:
    chunk = connection.recv(65536)
    if not chunk: break
    received += chunk
print(received[:38])
print(len(received))`);
    expect(stdout).toBe(
      `b'granted\\nupstream-hello;early;late;yyyy'\n${'granted\n'.length + 'upstream-hello;early;late;'.length + (1 << 20)}\n`,
    );
    // Only what the client sent before the reply went through the proxy.
    expect(forwarded).toBeLessThan(64);
  });

  it('keeps a stream larger than its buffers byte for byte, also while the client reads slowly', async () => {
    // 6 MiB each way through the handed-over upstream (an echo): more than the relay buffers, so
    // writes to the slow client come back short or refused and resume at the right byte.
    const { stdout } = await throughHandover(`
import hashlib, socket, threading, time
connection = socket.create_connection(('127.0.0.1', ${RELAY_PORT}), timeout=20)
connection.sendall(b'open\\n')
received = b''
while b'upstream-hello;' not in received:
    received += connection.recv(65536)
sent = b''.join(hashlib.sha256(b'%d' % index).digest() for index in range(6 * 32768))
def send():
    connection.sendall(sent)
    connection.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
time.sleep(0.3)
echoed = bytearray()
while True:
    chunk = connection.recv(4096 if len(echoed) < (1 << 20) else 262144)
    if not chunk: break
    echoed += chunk
sender.join()
print(received == b'granted\\nupstream-hello;', len(echoed), bytes(echoed) == sent)`);
    expect(stdout).toBe(`True ${6 << 20} True\n`);
  });

  it('hands over for a client that finished sending before the reply, and ends the upstream for it', async () => {
    const { stdout } = await throughHandover(`
import socket
connection = socket.create_connection(('127.0.0.1', ${RELAY_PORT}), timeout=10)
connection.sendall(b'open\\nonly;')
connection.shutdown(socket.SHUT_WR)
received = b''
while True:
    chunk = connection.recv(65536)
    if not chunk: break
    received += chunk
print(received)`);
    // The upstream echoes until its client ends: the relay passed the client's end on.
    expect(stdout).toBe("b'granted\\nupstream-hello;only;'\n");
  });

  it('closes a client at once when the proxy socket is not there, instead of hanging it', async () => {
    const capabilities = testCapabilities({ workdir: base });
    const plan = planShim({
      capabilities,
      workdir: base,
      relay: { port: RELAY_PORT, socketPath: join(base, 'no-proxy-here.sock') },
    });
    const result = await runShimRaw(
      plan.args,
      plan.fds,
      plan.statusFd,
      python(`${CLIENT}\nprint(exchange(${RELAY_PORT}, b'anyone?'))`),
      { launcher: isRoot ? ['unshare', '--net', '--'] : ['unshare', '--map-root-user', '--net', '--'] },
    );
    // Closed by the relay: the client reads EOF, or finds the connection reset or already gone.
    expect(result.stdout).toMatch(/^(b''|ECONNRESET|ENOTCONN|EPIPE)\n$/);
  });

  it('serves several connections at once', async () => {
    const result = await runInEmptyNetwork(
      python(`${CLIENT}
connections = [socket.create_connection(('127.0.0.1', ${RELAY_PORT})) for _ in range(20)]
for index, connection in enumerate(connections):
    connection.sendall(b'%d;' % index)
replies = [connection.recv(16) for connection in connections]
print(b''.join(replies).decode())`),
    );
    expect(result.stdout.trim()).toBe(Array.from({ length: 20 }, (_, index) => `${index};`).join(''));
  });

  it('is invisible to the payload waiting for its children, and dies with the payload', async () => {
    const shim = await ensureShim();
    const result = await runInEmptyNetwork([
      '/bin/sh',
      '-c',
      // `read` is a builtin: listing the children forks nothing, so only the relay is there.
      'read children < /proc/$$/task/$$/children; echo "$children"; sleep 0.1 & wait; echo waited',
    ]);
    expect(result.error).toBeUndefined();
    const [children, waited] = result.stdout.split('\n').filter((line) => line.trim() !== '');
    expect(waited).toBe('waited');
    const relayPids = (children ?? '').trim().split(/\s+/).map(Number);
    expect(relayPids).toHaveLength(1);
    const relay = relayPids[0]!;
    // SIGKILL from PR_SET_PDEATHSIG is asynchronous: poll until the relay is gone.
    for (let attempt = 0; attempt < 100 && existsSync(`/proc/${relay}`); attempt++) {
      let executable = '';
      try {
        executable = readlinkSync(`/proc/${relay}/exe`);
      } catch {
        break; // a zombie waiting for its reaper, or gone
      }
      if (executable !== shim) break; // the pid was reused by another process
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const stillRelay = (() => {
      try {
        return readlinkSync(`/proc/${relay}/exe`) === shim;
      } catch {
        return false;
      }
    })();
    expect(stillRelay).toBe(false);
  });

  it('works inside bubblewrap, where the shim and the socket are bind-mounted at fixed paths', async () => {
    const shim = await ensureShim();
    const capabilities = testCapabilities({ workdir: '/', network: 'none' });
    const plan = planShim({
      capabilities,
      workdir: '/',
      pathView: 'namespace',
      relay: { port: RELAY_PORT, socketPath: '/run/bulkhead/egress.sock' },
    });
    // bwrap passes fds 3 and up to its child; --unshare-all gives an empty network namespace.
    const bubblewrap = [
      'bwrap',
      '--ro-bind',
      '/usr',
      '/usr',
      '--symlink',
      'usr/bin',
      '/bin',
      '--symlink',
      'usr/lib',
      '/lib',
      '--symlink',
      'usr/lib64',
      '/lib64',
      '--ro-bind',
      '/etc',
      '/etc',
      '--dev',
      '/dev',
      '--proc',
      '/proc',
      '--tmpfs',
      '/run',
      '--ro-bind',
      shim,
      '/run/bulkhead/shim',
      '--bind',
      socketPath,
      '/run/bulkhead/egress.sock',
      '--unshare-all',
      '--die-with-parent',
      '--new-session',
      '--cap-drop',
      'ALL',
    ];
    const result = await runShimRaw(
      plan.args,
      plan.fds,
      plan.statusFd,
      python(`${CLIENT}
print(exchange(${RELAY_PORT}, b'through bubblewrap'))
print(exchange(${RELAY_PORT + 1}, b'other port'))`),
      { launcher: bubblewrap, shimPath: '/run/bulkhead/shim' },
    );
    expect(result.error).toBeUndefined();
    expect(result.stdout).toBe("b'through bubblewrap'\nEACCES\n");
  });

  it('reports a relay port it cannot bind as the shim failing, not the payload', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const capabilities = testCapabilities({ workdir: base });
      const plan = planShim({ capabilities, workdir: base, relay: { port, socketPath } });
      // On the host's network, where the port is taken.
      const result = await runShimRaw(plan.args, plan.fds, plan.statusFd, ['/bin/echo', 'ran']);
      expect(result.exitCode).toBe(125);
      expect(result.stdout).toBe('');
      expect(result.error?.code).toBe('LAUNCH_FAILED');
      expect(result.error?.message).toContain(`127.0.0.1:${port}`);
    } finally {
      blocker.close();
    }
  });
});

// Creating a throwaway account needs root; run unprivileged, the tests above already take the
// user-namespace path this block exercises.
describe.skipIf(!isRoot)('the egress relay, run by an unprivileged user', () => {
  it('works in a user and network namespace of its own', async () => {
    const user = createThrowawayUser('bh-relay');
    try {
      const result = await runInEmptyNetwork(
        python(`${CLIENT}
print(os.getuid())
print(exchange(${RELAY_PORT}, b'unprivileged'))`),
        { uid: user.uid, gid: user.gid },
      );
      expect(result.error).toBeUndefined();
      // Root inside its own user namespace, the user's uid outside.
      expect(result.stdout).toBe("0\nb'unprivileged'\n");
    } finally {
      user.remove();
    }
  });
});
