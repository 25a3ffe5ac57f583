import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Violation } from '@bulkhead/core';
import { sendWithDescriptors } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressProxy, type EgressProxy, type OpenChannelOptions } from './egress-proxy.js';
import { createStaticResolver } from './resolver.js';
import { startEchoServer } from './test-support/loopback.js';

// A stand-in for the exec shim's relay (whose own tests run it against a stand-in proxy): Python
// receives the passed socket with recv_fds, as the relay does with recvmsg. It opens with the
// relay's marker, sends its request and some early bytes, takes the reply and the socket, ends its
// side, reads the proxy's EOF, then talks to the upstream on the socket alone.
const RELAY_STAND_IN = `
import socket, sys
path, request, early, late = sys.argv[1], sys.argv[2].encode('latin1').decode('unicode_escape').encode('latin1'), sys.argv[3].encode(), sys.argv[4].encode()
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(path)
connection.sendall(b'\\0' + request + early)
if len(sys.argv) > 5: connection.shutdown(socket.SHUT_WR)  # finished sending before the reply
reply, fds = b'', []
while not fds:
    data, fds, _, _ = socket.recv_fds(connection, 1024, 1)
    if not data: break
    reply += data
print(repr(reply[:80]))
print('fds', len(fds))
if not fds: sys.exit(0)
upstream = socket.socket(fileno=fds[0])
upstream.setblocking(True)  # the flag is shared with the proxy's copy, which was non-blocking
connection.shutdown(socket.SHUT_WR)
print('proxy sent after the reply', len(connection.recv(65536)))
upstream.sendall(late)
upstream.shutdown(socket.SHUT_WR)
received = b''
while True:
    chunk = upstream.recv(65536)
    if not chunk: break
    received += chunk
print(repr(received))
`;

function runStandIn(socketPath: string, request: string, early: string, late: string, halfClose = false) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [
      '-c',
      RELAY_STAND_IN,
      socketPath,
      request,
      early,
      late,
      ...(halfClose ? ['half-close'] : []),
    ]);
    let output = '';
    let errors = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      errors += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`stand-in exited ${code}: ${errors}`)),
    );
  });
}

let directory: string;
let proxy: EgressProxy;
let echo: Awaited<ReturnType<typeof startEchoServer>>;

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'bh-handover-'));
  proxy = createEgressProxy({
    resolver: createStaticResolver(['echo.test:127.0.0.1', 'other.test:127.0.0.1']),
    socketDirectory: join(directory, 'sockets'),
    connectTimeoutMs: 3000,
  });
  echo = await startEchoServer();
});

afterAll(async () => {
  await proxy.close();
  await echo.close();
  rmSync(directory, { recursive: true, force: true });
});

/** A channel allowed to the echo server, by name and address, that hands tunnels over unless told not to. */
function echoChannel(sandboxId: string, options: Partial<OpenChannelOptions> = {}) {
  return proxy.openChannel({
    sandboxId,
    sendWithDescriptor: sendWithDescriptors,
    allow: [
      { host: 'echo.test', port: echo.port },
      { host: '127.0.0.1', port: echo.port },
    ],
    ...options,
  });
}

describe('handing an allowed tunnel over to the relay', () => {
  it('passes the upstream socket with the CONNECT reply; early bytes reach upstream first, in order', async () => {
    const channel = await echoChannel('handover-connect');
    try {
      const output = await runStandIn(
        channel.socketPath,
        `CONNECT echo.test:${echo.port} HTTP/1.1\\r\\nHost: echo.test:${echo.port}\\r\\n\\r\\n`,
        'early;',
        'late;',
      );
      // The echo server greets, then echoes: the proxy never read the greeting, and wrote the early
      // bytes upstream before it let go.
      expect(output).toBe(
        "b'HTTP/1.1 200 Connection Established\\r\\n\\r\\n'\nfds 1\nproxy sent after the reply 0\nb'hello\\nearly;late;'\n",
      );
    } finally {
      await channel.close();
    }
  });

  it('lets go of the tunnel of a client that finished sending before the reply', async () => {
    const channel = await echoChannel('handover-half-closed');
    try {
      const output = await runStandIn(
        channel.socketPath,
        `CONNECT echo.test:${echo.port} HTTP/1.1\\r\\n\\r\\n`,
        'only;',
        '',
        true,
      );
      expect(output).toContain("fds 1\nproxy sent after the reply 0\nb'hello\\nonly;'\n");
    } finally {
      await channel.close();
    }
  });

  it('passes the upstream socket with the SOCKS5 grant', async () => {
    const channel = await echoChannel('handover-socks');
    try {
      const name = 'echo.test';
      const port = `\\x${(echo.port >> 8).toString(16).padStart(2, '0')}\\x${(echo.port & 255).toString(16).padStart(2, '0')}`;
      // Greeting (no authentication), then CONNECT by name; the stand-in reads the method reply
      // and the grant together.
      const request = `\\x05\\x01\\x00\\x05\\x01\\x00\\x03\\x${name.length.toString(16).padStart(2, '0')}${name}${port}`;
      const output = await runStandIn(channel.socketPath, request, '', 'socks;');
      expect(output).toMatch(/^b'\\x05\\x00\\x05\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'\nfds 1\n/);
      expect(output.endsWith("b'hello\\nsocks;'\n")).toBe(true);
    } finally {
      await channel.close();
    }
  });

  it('refuses a host off the list with a 403 and no socket, and reports the violation', async () => {
    const seen: Violation[] = [];
    const channel = await echoChannel('handover-refused', {
      onViolation: (violation) => seen.push(violation),
    });
    try {
      const output = await runStandIn(
        channel.socketPath,
        `CONNECT other.test:${echo.port} HTTP/1.1\\r\\n\\r\\n`,
        '',
        '',
      );
      expect(output).toMatch(/^b'HTTP\/1.1 403 /);
      expect(output).toContain('fds 0\n');
      expect(seen.map((violation) => violation.host)).toEqual(['other.test']);
    } finally {
      await channel.close();
    }
  });

  it('relays the tunnel itself on a channel that was given no way to pass a socket', async () => {
    const channel = await echoChannel('handover-none', { sendWithDescriptor: undefined });
    try {
      const output = await runStandIn(
        channel.socketPath,
        `CONNECT echo.test:${echo.port} HTTP/1.1\\r\\n\\r\\n`,
        'early;',
        '',
        true,
      );
      // No socket came: the greeting and the echo came through the proxy, after its reply.
      expect(output).toBe("b'HTTP/1.1 200 Connection Established\\r\\n\\r\\nhello\\nearly;'\nfds 0\n");
    } finally {
      await channel.close();
    }
  });
});
