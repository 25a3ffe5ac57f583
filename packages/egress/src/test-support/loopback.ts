import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Test-only helpers: servers and clients on loopback, and a stand-in for the shim's relay. */

export async function listen<T extends Server | HttpServer>(server: T, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export function closeServer(server: Server | HttpServer): Promise<void> {
  (server as HttpServer).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP echo server that greets each connection with `hello\n` and then echoes. */
export async function startEchoServer(host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write('hello\n');
    socket.pipe(socket);
  });
  const port = await listen(server, host);
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return closeServer(server);
    },
  };
}

export async function startHttpServer(
  handler: RequestListener,
): Promise<{ port: number; server: HttpServer; close(): Promise<void> }> {
  const server = createHttpServer(handler);
  const port = await listen(server);
  return { port, server, close: () => closeServer(server) };
}

/** A self-signed certificate for the given names, made with openssl, as PEM strings. */
export function selfSignedCertificate(names: string[]): {
  key: string;
  cert: string;
  certPath: string;
  cleanup(): void;
} {
  const directory = mkdtempSync(join(tmpdir(), 'bulkhead-egress-cert-'));
  const keyPath = join(directory, 'key.pem');
  const certPath = join(directory, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${names[0]}`,
      '-addext',
      `subjectAltName=${names.map((name) => `DNS:${name}`).join(',')}`,
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  return {
    key: readFileSync(keyPath, 'utf8'),
    cert: readFileSync(certPath, 'utf8'),
    certPath,
    cleanup: () => rmSync(directory, { recursive: true, force: true }),
  };
}

export async function startHttpsServer(
  credentials: { key: string; cert: string },
  handler: RequestListener,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = createHttpsServer(credentials, handler);
  const port = await listen(server as unknown as HttpServer);
  return { port, close: () => closeServer(server as unknown as HttpServer) };
}

/**
 * What the exec shim's `relay` does inside the sandbox's network namespace: accept on
 * 127.0.0.1:<port> and splice each connection to the channel's unix socket.
 */
export async function startRelay(
  socketPath: string,
): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(socketPath);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await listen(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return closeServer(server);
    },
  };
}

/** Reads from `socket` until `predicate` holds on everything read so far (or the socket ends). */
export function readUntil(socket: Socket, predicate: (received: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (predicate(received)) finish();
    };
    const finish = () => {
      // Stop the flow: bytes that arrive before the next reader attaches must wait for it.
      socket.pause();
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('close', finish);
      socket.off('error', reject);
      resolve(received);
    };
    socket.on('data', onData);
    socket.resume();
    socket.once('end', finish);
    socket.once('close', finish);
    socket.once('error', reject);
  });
}

function openUnix(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `CONNECT authority` over the channel socket; returns the status, head and the open socket. */
export async function httpConnect(
  socketPath: string,
  authority: string,
): Promise<{ status: number; head: string; body: string; socket: Socket }> {
  const socket = await openUnix(socketPath);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const complete = (data: Buffer) => {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return false;
    const length = Number(/content-length: (\d+)/i.exec(data.subarray(0, end).toString('latin1'))?.[1] ?? 0);
    return data.length - end - 4 >= length;
  };
  const received = await readUntil(socket, complete);
  const end = received.indexOf('\r\n\r\n');
  const head = received.subarray(0, end >= 0 ? end : received.length).toString('latin1');
  const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
  const body = end >= 0 ? received.subarray(end + 4, end + 4 + length).toString('utf8') : '';
  // What the tunnel already carried after the response belongs to the caller.
  if (end >= 0 && received.length > end + 4 + length) socket.unshift(received.subarray(end + 4 + length));
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body, socket };
}

export type SocksAddress =
  | { type: 'domain'; host: string }
  | { type: 'ipv4'; host: string }
  | { type: 'ipv6'; host: string };

function encodeSocksAddress(address: SocksAddress): Buffer {
  if (address.type === 'domain') {
    const name = Buffer.from(address.host);
    return Buffer.concat([Buffer.from([0x03, name.length]), name]);
  }
  if (address.type === 'ipv4') return Buffer.from([0x01, ...address.host.split('.').map(Number)]);
  const groups = expandIPv6(address.host);
  const bytes = Buffer.alloc(16);
  for (const [index, group] of groups.entries()) bytes.writeUInt16BE(group, index * 2);
  return Buffer.concat([Buffer.from([0x04]), bytes]);
}

function expandIPv6(address: string): number[] {
  const [head = '', tail] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].map((group) => Number.parseInt(group, 16));
}

/** A SOCKS5 CONNECT over the channel socket; returns the reply code (0 = granted) and the socket. */
export async function socksConnect(
  socketPath: string,
  address: SocksAddress,
  port: number,
): Promise<{ reply: number; socket: Socket }> {
  const socket = await openUnix(socketPath);
  socket.write(Buffer.from([0x05, 0x01, 0x00]));
  await readUntil(socket, (data) => data.length >= 2);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  socket.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), encodeSocksAddress(address), portBytes]));
  const reply = await readUntil(socket, (data) => data.length >= 10);
  if (reply.length > 10) socket.unshift(reply.subarray(10));
  return { reply: reply[1] ?? -1, socket };
}
