import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BulkheadError, type Endpoint, onProcessExit, type Violation } from '@bulkhead/core';
import { Socks5Server } from '@pondwader/socks5-server';
import {
  compilePolicy,
  type EgressDecision,
  type EgressPolicy,
  type EgressResolver,
  judgeDestination,
} from './egress-policy.js';
import { formatEndpoint } from './egress-rules.js';
import { systemResolver } from './resolver.js';
import { channelSocketPath, defaultSocketDirectory, prepareSocketDirectory } from './socket-directory.js';
import { connectToFirst, type UpstreamConnectError } from './upstream-connection.js';
import { handUpstreamOver, RELAY_MARKER, type SendWithDescriptor } from './upstream-handover.js';

export interface EgressProxyOptions {
  /** Resolves names to addresses; default: the system resolver (`dns.lookup`, all addresses). */
  resolver?: EgressResolver;
  /** Time allowed to resolve a name and connect upstream before the client gets a refusal. Default 10 000. */
  connectTimeoutMs?: number;
  /** Private directory (0700) for channel sockets. Default `$XDG_RUNTIME_DIR/bulkhead-egress` or `<tmpdir>/bulkhead-egress-<uid>`. */
  socketDirectory?: string;
}

export type EgressProtocol = 'http' | 'connect' | 'socks5';

export interface OpenChannelOptions {
  /** The sandbox this channel belongs to; it is the `sandboxId` of every violation. */
  sandboxId: string;
  /** Destinations the sandbox may reach. Empty: nothing. */
  allow: Endpoint[];
  /** Destinations refused even when an allow rule matches them. */
  deny?: Endpoint[];
  /** Called for each refused connection, as it happens. A callback that throws is ignored. */
  onViolation?: (violation: Violation) => void;
  /**
   * Mode of the socket file. Default 0o600: only this user. The sandbox's uid needs write permission
   * on it to connect, so a tier that runs the payload as another uid passes `owner` or 0o666 (the
   * socket's directory stays 0700; the tier bind-mounts the socket file itself into the sandbox).
   */
  socketMode?: number;
  /** Owner of the socket file (needs root or CAP_CHOWN). */
  socketOwner?: { uid: number; gid: number };
  /**
   * Connections the sandbox may hold open at once (each tunnel also holds an upstream socket), so
   * that one sandbox cannot exhaust the file descriptors of the proxy every sandbox shares. Default 256.
   */
  maxConnections?: number;
  /**
   * How to send bytes with a file descriptor attached (sendmsg with SCM_RIGHTS, without blocking):
   * given, an allowed tunnel's upstream socket is handed to the relay that announced itself with
   * `RELAY_MARKER` (the exec shim's), which then moves the tunnel's bytes without this process.
   * Returns the bytes sent, or a negative errno. Without it, this process relays every tunnel.
   * The Linux tiers pass `sendWithDescriptors` of `@bulkhead/linux`.
   */
  sendWithDescriptor?: SendWithDescriptor;
}

export interface EgressChannel {
  readonly sandboxId: string;
  /** The unix socket the sandbox's relay connects to. */
  readonly socketPath: string;
  /** Every refusal on this channel so far (a live array: hand it to the sandbox result). */
  readonly violations: Violation[];
  /**
   * Hands a channel opened ahead of its sandbox (a prepared one, whose id was not known yet) to the
   * sandbox that takes it: later violations carry this id and go to this callback.
   */
  assign(owner: { sandboxId: string; onViolation?: (violation: Violation) => void }): void;
  /** Stops accepting, ends this channel's connections and removes the socket file. */
  close(): Promise<void>;
}

export interface EgressProxy {
  /** Opens a channel with its own socket and rules. Throws `EGRESS_RULE_INVALID` for a bad rule. */
  openChannel(options: OpenChannelOptions): Promise<EgressChannel>;
  /** The channels open now. */
  readonly channels: readonly EgressChannel[];
  /** Closes every channel. */
  close(): Promise<void>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CONNECTIONS = 256;
const SOCKS_VERSION = 0x05;
const SOCKS_GRANTED = Buffer.from([SOCKS_VERSION, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

// Headers that describe one hop, not the message; a proxy must not forward them.
const hopByHopHeaders = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

interface ChannelState extends EgressChannel {
  sandboxId: string;
  readonly policy: EgressPolicy;
  readonly sendWithDescriptor?: SendWithDescriptor;
  readonly sockets: Set<Socket | Duplex>;
  onViolation?: (violation: Violation) => void;
  closed: boolean;
}

interface SocksConnection {
  socket: Duplex;
  destAddress: string;
  destPort: number;
  metadata: { decision?: EgressDecision; channel?: ChannelState };
}

class EgressProxyImplementation implements EgressProxy {
  readonly #resolver: EgressResolver;
  readonly #connectTimeoutMs: number;
  readonly #socketDirectory: string;
  readonly #channels = new Set<ChannelState>();
  readonly #channelOf = new WeakMap<object, ChannelState>();
  /** Channel connections from a relay that takes tunnels over, and how to hand one to it. */
  readonly #relays = new WeakMap<object, SendWithDescriptor>();
  readonly #http = createHttpServer();
  readonly #socks = new Socks5Server();
  #directoryReady = false;
  #closed = false;
  #forgetExit: (() => void) | undefined;
  readonly #onExit = () => {
    // The caller is going away without closing us: its socket files must not outlive it.
    for (const channel of this.#channels) removeFile(channel.socketPath);
  };

  constructor(options: EgressProxyOptions = {}) {
    this.#resolver = options.resolver ?? systemResolver;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#socketDirectory = options.socketDirectory ?? defaultSocketDirectory();
    this.#http.on('request', (request, response) => void this.#onHttpRequest(request, response));
    this.#http.on('connect', (request, socket, head) => void this.#onConnect(request, socket, head));
    this.#http.on('upgrade', (request, socket, head) => void this.#onUpgrade(request, socket, head));
    this.#socks.setRulesetValidator((connection) =>
      this.#onSocksRequest(connection as unknown as SocksConnection),
    );
    this.#socks.setConnectionHandler((connection, sendStatus) => {
      void this.#onSocksConnect(connection as unknown as SocksConnection, sendStatus);
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  get channels(): readonly EgressChannel[] {
    return [...this.#channels];
  }

  async openChannel(options: OpenChannelOptions): Promise<EgressChannel> {
    if (this.#closed) {
      throw new BulkheadError(
        'EGRESS_PROXY_CLOSED',
        'This egress proxy was closed; it opens no more channels.',
        {
          fix: 'call getEgressProxy() again for a new shared proxy, or createEgressProxy()',
        },
      );
    }
    const policy = compilePolicy(options.allow, options.deny);
    if (!this.#directoryReady) {
      prepareSocketDirectory(this.#socketDirectory);
      this.#directoryReady = true;
      this.#forgetExit = onProcessExit(this.#onExit);
    }
    const socketPath = channelSocketPath(
      this.#socketDirectory,
      options.sandboxId,
      randomBytes(6).toString('hex'),
    );
    const server = createNetServer({ allowHalfOpen: true }, (socket) =>
      this.#onChannelConnection(channel, socket),
    );
    server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const sockets = new Set<Socket | Duplex>();
    const channel: ChannelState = {
      sandboxId: options.sandboxId,
      socketPath,
      violations: [],
      policy,
      sockets,
      closed: false,
      ...(options.onViolation ? { onViolation: options.onViolation } : {}),
      ...(options.sendWithDescriptor ? { sendWithDescriptor: options.sendWithDescriptor } : {}),
      assign: (owner) => {
        channel.sandboxId = owner.sandboxId;
        if (owner.onViolation) channel.onViolation = owner.onViolation;
        else delete channel.onViolation;
      },
      close: async () => {
        if (channel.closed) return;
        channel.closed = true;
        this.#channels.delete(channel);
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        removeFile(socketPath);
        await stopped;
      },
    };
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      if (options.socketOwner) chownSync(socketPath, options.socketOwner.uid, options.socketOwner.gid);
      chmodSync(socketPath, options.socketMode ?? 0o600);
    } catch (error) {
      await channel.close();
      throw new BulkheadError('EGRESS_CHANNEL_FAILED', `Could not set the owner or mode of ${socketPath}.`, {
        path: socketPath,
        cause: error,
        fix: 'socketOwner needs root (or CAP_CHOWN); leave it out to keep the socket owned by this user',
      });
    }
    this.#channels.add(channel);
    return channel;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#channels].map((channel) => channel.close()));
    this.#forgetExit?.();
  }

  #onChannelConnection(channel: ChannelState, socket: Socket): void {
    if (channel.closed) {
      socket.destroy();
      return;
    }
    this.#track(channel, socket);
    let announced = false;
    const dispatch = (received: Buffer) => {
      // The exec shim's relay announces itself with a marker byte: it can take tunnels over.
      let first = received;
      if (first[0] === RELAY_MARKER && !announced) {
        announced = true;
        if (channel.sendWithDescriptor) this.#relays.set(socket, channel.sendWithDescriptor);
        first = first.subarray(1);
        if (first.length === 0) return void socket.once('data', dispatch);
      }
      socket.pause();
      socket.unshift(first);
      if (first[0] === SOCKS_VERSION) {
        this.#socks._handleConnection(socket);
      } else {
        this.#http.emit('connection', socket);
        socket.resume();
      }
    };
    socket.once('data', dispatch);
  }

  /**
   * Hands an allowed tunnel's upstream socket to the relay (when `client` is one), so the bytes go
   * client <-> upstream without this process; else relays them here. Called in the tick the
   * upstream connected.
   */
  #join(client: Duplex, upstream: Socket, reply: Buffer | string, early: readonly Buffer[]): void {
    const send = this.#relays.get(client);
    if (send && handUpstreamOver(client, upstream, reply, early, send)) return;
    client.write(reply);
    for (const chunk of early) upstream.write(chunk);
    splice(client, upstream);
  }

  #track(channel: ChannelState, socket: Socket | Duplex): void {
    this.#channelOf.set(socket, channel);
    channel.sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => channel.sockets.delete(socket));
    if (channel.closed) socket.destroy();
  }

  #report(
    channel: ChannelState,
    protocol: EgressProtocol,
    decision: EgressDecision & { outcome: 'refused' },
  ): void {
    const label = { http: 'HTTP request', connect: 'CONNECT', socks5: 'SOCKS5 CONNECT' }[protocol];
    const violation: Violation = {
      time: new Date().toISOString(),
      sandboxId: channel.sandboxId,
      kind: 'network',
      host: decision.host,
      port: decision.port,
      protocol,
      rule: decision.rule,
      message: `${label} to ${formatEndpoint(decision.host, decision.port)} refused: ${decision.message}`,
    };
    channel.violations.push(violation);
    try {
      channel.onViolation?.(violation);
    } catch {
      // A faulty listener must not take the proxy, and every other sandbox with it, down.
    }
  }

  async #judge(channel: ChannelState, host: string, port: number): Promise<EgressDecision> {
    let timer: NodeJS.Timeout | undefined;
    const resolveWithDeadline: EgressResolver = (name) =>
      Promise.race([
        this.#resolver(name),
        new Promise<string[]>((_, reject) => {
          timer = setTimeout(
            () => reject(Object.assign(new Error('resolver timed out'), { code: 'ETIMEOUT' })),
            this.#connectTimeoutMs,
          );
        }),
      ]);
    try {
      return await judgeDestination(channel.policy, host, port, resolveWithDeadline);
    } finally {
      clearTimeout(timer);
    }
  }

  async #connectUpstream(channel: ChannelState, addresses: string[], port: number): Promise<Socket> {
    const upstream = await connectToFirst(addresses, port, this.#connectTimeoutMs);
    this.#track(channel, upstream);
    return upstream;
  }

  async #onConnect(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const channel = this.#channelOf.get(socket);
    if (!channel) return void socket.destroy();
    const authority =
      /^\[([^\]]+)\]:(\d{1,5})$/.exec(request.url ?? '') ?? /^([^:[\]]+):(\d{1,5})$/.exec(request.url ?? '');
    const decision = await this.#judge(
      channel,
      authority?.[1] ?? request.url ?? '',
      Number(authority?.[2] ?? 0),
    );
    if (decision.outcome === 'refused') {
      this.#report(channel, 'connect', decision);
      return void socket.end(refusalResponse(channel, 'CONNECT', decision));
    }
    if (decision.outcome === 'unresolved') {
      return void socket.end(rawResponse(502, 'Bad Gateway', 'unresolved', decision.message));
    }
    let upstream: Socket;
    try {
      upstream = await this.#connectUpstream(channel, decision.addresses, decision.port);
    } catch (error) {
      const failure = error as UpstreamConnectError;
      const [status, text] = failure.code === 'ETIMEDOUT' ? [504, 'Gateway Timeout'] : [502, 'Bad Gateway'];
      return void socket.end(rawResponse(status, text, 'upstream-failed', failure.message));
    }
    if (channel.closed || socket.destroyed) return void upstream.destroy();
    this.#join(
      socket,
      upstream,
      'HTTP/1.1 200 Connection Established\r\n\r\n',
      head.length > 0 ? [head] : [],
    );
  }

  async #onHttpRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const channel = this.#channelOf.get(request.socket);
    if (!channel) return void request.socket.destroy();
    const target = parseAbsoluteHttpUrl(request.url ?? '');
    if (typeof target === 'string') {
      response.writeHead(400, {
        'content-type': 'text/plain; charset=utf-8',
        'x-bulkhead-error': 'bad-request',
      });
      return void response.end(`Bulkhead egress proxy: ${target}\n`);
    }
    const decision = await this.#judge(channel, target.hostname, target.port);
    if (decision.outcome === 'refused') {
      this.#report(channel, 'http', decision);
      response.writeHead(403, refusalHeaders(decision));
      return void response.end(refusalText(channel, request.method ?? 'GET', decision));
    }
    if (decision.outcome === 'unresolved') {
      response.writeHead(502, {
        'content-type': 'text/plain; charset=utf-8',
        'x-bulkhead-error': 'unresolved',
      });
      return void response.end(`Bulkhead egress proxy: ${decision.message}\n`);
    }
    let upstream: Socket;
    try {
      upstream = await this.#connectUpstream(channel, decision.addresses, decision.port);
    } catch (error) {
      const failure = error as UpstreamConnectError;
      response.writeHead(failure.code === 'ETIMEDOUT' ? 504 : 502, {
        'content-type': 'text/plain; charset=utf-8',
        'x-bulkhead-error': 'upstream-failed',
      });
      return void response.end(`Bulkhead egress proxy: ${failure.message}\n`);
    }
    const upstreamRequest = httpRequest({
      createConnection: () => upstream,
      method: request.method,
      path: target.path,
      // The judged URI names the host, not the client's Host header: a different Host would reach
      // another site served from the same allowed address (a CDN, a shared host).
      headers: { ...forwardableHeaders(request.headers), host: target.authority },
      setHost: false,
    });
    upstreamRequest.on('error', () => {
      if (!response.headersSent) {
        response.writeHead(502, {
          'content-type': 'text/plain; charset=utf-8',
          'x-bulkhead-error': 'upstream-failed',
        });
        response.end('Bulkhead egress proxy: the upstream connection failed\n');
      } else {
        response.destroy();
      }
    });
    upstreamRequest.on('response', (upstreamResponse) => {
      response.writeHead(
        upstreamResponse.statusCode ?? 502,
        upstreamResponse.statusMessage,
        forwardableHeaders(upstreamResponse.headers),
      );
      upstreamResponse.pipe(response);
    });
    response.once('close', () => {
      if (!response.writableFinished) upstream.destroy();
    });
    request.pipe(upstreamRequest);
  }

  async #onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const channel = this.#channelOf.get(socket);
    if (!channel) return void socket.destroy();
    const target = parseAbsoluteHttpUrl(request.url ?? '');
    if (typeof target === 'string')
      return void socket.end(rawResponse(400, 'Bad Request', 'bad-request', target));
    const decision = await this.#judge(channel, target.hostname, target.port);
    if (decision.outcome === 'refused') {
      this.#report(channel, 'http', decision);
      return void socket.end(refusalResponse(channel, request.method ?? 'GET', decision));
    }
    if (decision.outcome === 'unresolved') {
      return void socket.end(rawResponse(502, 'Bad Gateway', 'unresolved', decision.message));
    }
    let upstream: Socket;
    try {
      upstream = await this.#connectUpstream(channel, decision.addresses, decision.port);
    } catch (error) {
      return void socket.end(rawResponse(502, 'Bad Gateway', 'upstream-failed', (error as Error).message));
    }
    const lines = [`${request.method} ${target.path} HTTP/1.1`];
    for (let index = 0; index < request.rawHeaders.length; index += 2) {
      const name = request.rawHeaders[index] ?? '';
      if (!/^(proxy-|host$)/i.test(name)) lines.push(`${name}: ${request.rawHeaders[index + 1] ?? ''}`);
    }
    lines.push(`Host: ${target.authority}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    splice(socket, upstream);
  }

  async #onSocksRequest(connection: SocksConnection): Promise<boolean> {
    const channel = this.#channelOf.get(connection.socket);
    if (!channel || channel.closed) return false;
    const decision = await this.#judge(channel, connection.destAddress, connection.destPort);
    connection.metadata.decision = decision;
    connection.metadata.channel = channel;
    if (decision.outcome !== 'refused') return true;
    this.#report(channel, 'socks5', decision);
    return false;
  }

  async #onSocksConnect(
    connection: SocksConnection,
    sendStatus: (
      status: 'REQUEST_GRANTED' | 'HOST_UNREACHABLE' | 'CONNECTION_REFUSED' | 'TTL_EXPIRED',
    ) => void,
  ): Promise<void> {
    const { decision, channel } = connection.metadata;
    if (!channel || decision?.outcome !== 'allowed') return sendStatus('HOST_UNREACHABLE');
    // The library resumes the client socket as soon as this handler returns; a client that sends
    // before our reply (it should wait) must not lose those bytes.
    const early: Buffer[] = [];
    const hold = (chunk: Buffer) => early.push(chunk);
    connection.socket.on('data', hold);
    let upstream: Socket;
    try {
      upstream = await this.#connectUpstream(channel, decision.addresses, decision.port);
    } catch (error) {
      const code = (error as UpstreamConnectError).code;
      return sendStatus(
        code === 'ECONNREFUSED'
          ? 'CONNECTION_REFUSED'
          : code === 'ETIMEDOUT'
            ? 'TTL_EXPIRED'
            : 'HOST_UNREACHABLE',
      );
    }
    connection.socket.off('data', hold);
    if (channel.closed) return void upstream.destroy();
    // The library's REQUEST_GRANTED reply (bound address 0.0.0.0:0), written here so it can carry
    // the upstream socket to a relay.
    this.#join(connection.socket, upstream, SOCKS_GRANTED, early);
  }
}

/**
 * Joins a client and its upstream both ways. Both sockets allow half-open connections, so an end
 * in one direction travels as an end (a client may still read after it finished sending), and a
 * clean close of the upstream ends the client only after everything it sent was delivered.
 */
function splice(client: Duplex, upstream: Duplex): void {
  client.pipe(upstream);
  upstream.pipe(client);
  // Nothing can reach a client that is gone.
  client.once('close', () => upstream.destroy());
  upstream.once('close', (hadError: boolean) => (hadError ? client.destroy() : client.end()));
}

function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function parseAbsoluteHttpUrl(
  url: string,
): { hostname: string; port: number; path: string; authority: string } | string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    return `this is a proxy: send requests with an absolute URI ('GET http://host/path'), or use CONNECT; got '${url.slice(0, 100)}'`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `'${url.slice(0, 100)}' is not a valid URL`;
  }
  if (parsed.protocol !== 'http:') {
    return `only http:// URLs are forwarded as plain requests; use CONNECT for ${parsed.protocol.slice(0, -1)}`;
  }
  return {
    hostname: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 80,
    path: `${parsed.pathname}${parsed.search}`,
    authority: parsed.host,
  };
}

function forwardableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const result: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!hopByHopHeaders.has(name) && !named.has(name) && value !== undefined) result[name] = value;
  }
  return result;
}

function refusalHeaders(decision: EgressDecision & { outcome: 'refused' }): Record<string, string> {
  return {
    'content-type': 'text/plain; charset=utf-8',
    'x-bulkhead-refused': decision.reason,
    'x-bulkhead-rule': decision.rule,
  };
}

function refusalText(
  channel: ChannelState,
  method: string,
  decision: EgressDecision & { outcome: 'refused' },
): string {
  return `Bulkhead egress proxy refused ${method} ${formatEndpoint(decision.host, decision.port)} for sandbox ${channel.sandboxId}: ${decision.message}.\nRule: ${decision.rule}\n`;
}

function refusalResponse(
  channel: ChannelState,
  method: string,
  decision: EgressDecision & { outcome: 'refused' },
): string {
  const body = refusalText(channel, method, decision);
  const headers = Object.entries(refusalHeaders(decision))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `HTTP/1.1 403 Forbidden\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

function rawResponse(status: number, text: string, error: string, message: string): string {
  const body = `Bulkhead egress proxy: ${message}\n`;
  return `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\nx-bulkhead-error: ${error}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** A separate proxy instance with its own channels (tests, or a caller that wants its own). */
export function createEgressProxy(options: EgressProxyOptions = {}): EgressProxy {
  return new EgressProxyImplementation(options);
}

let shared: { proxy: EgressProxyImplementation; options: EgressProxyOptions } | undefined;

/**
 * The proxy shared by every sandbox of this process, created on first use. Options take effect on
 * that first call; a later call with different options is an error rather than silently ignored.
 * After `close()`, the next call creates a new one.
 */
export function getEgressProxy(options?: EgressProxyOptions): EgressProxy {
  if (shared && !shared.proxy.isClosed) {
    if (options && !sameOptions(shared.options, options)) {
      throw new BulkheadError(
        'EGRESS_PROXY_OPTIONS_CONFLICT',
        'The shared egress proxy already runs with other options; one process has one shared proxy.',
        {
          fix: 'pass the options on the first getEgressProxy() call only, or use createEgressProxy(options)',
        },
      );
    }
    return shared.proxy;
  }
  const proxy = new EgressProxyImplementation(options);
  shared = { proxy, options: options ?? {} };
  return proxy;
}

function sameOptions(left: EgressProxyOptions, right: EgressProxyOptions): boolean {
  return (
    left.resolver === right.resolver &&
    left.connectTimeoutMs === right.connectTimeoutMs &&
    left.socketDirectory === right.socketDirectory
  );
}
