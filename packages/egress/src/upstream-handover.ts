import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * The first byte the exec shim's relay sends on each proxy connection (neither HTTP nor SOCKS5
 * starts with it): the peer takes an allowed tunnel's upstream socket over SCM_RIGHTS and relays
 * client and upstream itself, so a bulk transfer no longer passes through this process.
 */
export const RELAY_MARKER = 0x00;

/**
 * The relay reads the proxy's first bytes with recvmsg (which keeps an attached fd) only this far;
 * after that with read(2), which drops attached fds. Must equal the shim's RELAY_HANDOVER_WINDOW.
 */
export const HANDOVER_WINDOW = 1024;

/** sendmsg(2) of `data` on `socketFd` with `descriptors` attached: the bytes sent, or a negative errno. */
export type SendWithDescriptor = (socketFd: number, data: Buffer, descriptors: readonly number[]) => number;

function fdOf(socket: Duplex): number | undefined {
  const fd = (socket as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Sends `reply` to a relay `client` with `upstream`'s socket attached, then finishes the handover:
 * what the client sent before the relay stopped (`early`, then anything still arriving) is written
 * upstream, and at the relay's end the proxy ends its side and lets go of the upstream socket.
 * Returns false, having done nothing, where a handover cannot happen (the caller then relays).
 *
 * Must run in the same tick the upstream connected, before this process could read from it: the
 * upstream's bytes then all go to the relay directly, none are left behind here.
 */
export function handUpstreamOver(
  client: Duplex & { bytesWritten?: number },
  upstream: Socket,
  reply: string | Buffer,
  early: readonly Buffer[],
  send: SendWithDescriptor,
): boolean {
  const data = typeof reply === 'string' ? Buffer.from(reply, 'latin1') : reply;
  if ((client.bytesWritten ?? Number.POSITIVE_INFINITY) + data.length > HANDOVER_WINDOW) return false;
  if (client.writableLength > 0) return false;
  const clientFd = fdOf(client);
  const upstreamFd = fdOf(upstream);
  const handle = (upstream as unknown as { _handle?: { readStop?: () => number } })._handle;
  if (clientFd === undefined || upstreamFd === undefined || typeof handle?.readStop !== 'function')
    return false;
  const sent = send(clientFd, data, [upstreamFd]);
  if (sent < 0) return false;
  if (sent !== data.length) {
    // Part of the reply went with the fd: neither side can go on in order.
    client.destroy();
    upstream.destroy();
    return true;
  }
  // From here the relay reads the upstream socket; this process never does.
  handle.readStop();
  let writing = 0;
  let ended = false;
  const forward = (chunk: Buffer) => {
    writing++;
    upstream.write(chunk, () => {
      writing--;
      finish();
    });
  };
  // Closing our copy of the upstream fd leaves the connection to the relay's copy: no FIN, no reset.
  const finish = () => {
    if (!ended || writing > 0) return;
    upstream.destroy();
    client.end();
  };
  for (const chunk of early) forward(chunk);
  client.on('data', forward);
  // A client that finished sending before the reply (its end already came) is ended already.
  if (client.readableEnded) ended = true;
  else
    client.once('end', () => {
      ended = true;
      finish();
    });
  finish();
  client.once('close', () => upstream.destroy());
  client.resume();
  return true;
}
