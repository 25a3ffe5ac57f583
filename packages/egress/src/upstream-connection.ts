import { connect, type Socket } from 'node:net';

/** Why no upstream connection could be made, phrased for the refusal a client sees. */
export class UpstreamConnectError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'UpstreamConnectError';
  }
}

/**
 * Connects to the first of `addresses` that answers, trying them in order, all within one deadline
 * so that a destination that drops packets costs the client `timeoutMs` at most, never a hang.
 */
export async function connectToFirst(
  addresses: readonly string[],
  port: number,
  timeoutMs: number,
): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  let lastError: UpstreamConnectError | undefined;
  for (const address of addresses) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      return await connectOnce(address, port, remaining);
    } catch (error) {
      lastError = error as UpstreamConnectError;
    }
  }
  throw (
    lastError ?? new UpstreamConnectError(`no connection to port ${port} within ${timeoutMs} ms`, 'ETIMEDOUT')
  );
}

function connectOnce(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new UpstreamConnectError(
          `${address} port ${port} did not answer within ${timeoutMs} ms`,
          'ETIMEDOUT',
        ),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new UpstreamConnectError(`${address} port ${port}: ${error.message}`, error.code ?? 'EIO'));
    });
  });
}
