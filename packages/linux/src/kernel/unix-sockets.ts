import koffi from 'koffi';

/*
 * Unix-socket calls Node's net module does not offer: socket pairs made outside libuv, and sendmsg(2)
 * with file descriptors attached (SCM_RIGHTS). The process spawner sends each child's stdio this way;
 * the egress proxy hands a tunnel's upstream socket to the exec shim's relay.
 */

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

interface SocketFunctions {
  socketpair: (domain: number, type: number, protocol: number, fds: number[]) => number;
  sendmsg: (fd: number, message: unknown, flags: number) => number | bigint;
}

let socketFunctions: SocketFunctions | undefined;

function sockets(): SocketFunctions {
  if (socketFunctions) return socketFunctions;
  const library = koffi.load(null);
  const iovec = koffi.struct('bulkhead_iovec', { base: 'void *', length: 'size_t' });
  const msghdr = koffi.struct('bulkhead_msghdr', {
    name: 'void *',
    nameLength: 'uint32_t',
    vector: koffi.pointer(iovec),
    vectorLength: 'size_t',
    control: 'void *',
    controlLength: 'size_t',
    flags: 'int',
  });
  socketFunctions = {
    socketpair: library.func(
      'int socketpair(int, int, int, _Out_ int *fds)',
    ) as SocketFunctions['socketpair'],
    sendmsg: library.func('sendmsg', 'long', ['int', koffi.pointer(msghdr), 'int']),
  };
  return socketFunctions;
}

/** Loads the bindings now, so that a later call does not pay for it (or fail) at a worse moment. */
export function loadUnixSocketFunctions(): void {
  sockets();
}

/** A connected pair of close-on-exec unix stream sockets, or the errno that refused it. */
export function unixSocketPair(): { fds: [number, number] } | { errno: number } {
  const pair = [-1, -1];
  if (sockets().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) !== 0)
    return { errno: koffi.errno() };
  return { fds: [pair[0]!, pair[1]!] };
}

/**
 * Sends `data` on the unix socket `socketFd` with `descriptors` attached (SCM_RIGHTS; the receiver
 * gets its own copies), without blocking and without SIGPIPE. Returns the bytes sent (a short count
 * means the rest was not), or the negated errno.
 */
export function sendWithDescriptors(socketFd: number, data: Buffer, descriptors: readonly number[]): number {
  // struct cmsghdr { size_t len; int level; int type; } then the fds, padded to 8 bytes.
  const fdBytes = 4 * descriptors.length;
  const control = Buffer.alloc(16 + Math.ceil(fdBytes / 8) * 8);
  control.writeBigUInt64LE(BigInt(16 + fdBytes), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  for (const [index, fd] of descriptors.entries()) control.writeInt32LE(fd, 16 + 4 * index);
  const sent = Number(
    sockets().sendmsg(
      socketFd,
      {
        name: null,
        nameLength: 0,
        vector: [{ base: data, length: data.length }],
        vectorLength: 1,
        control: descriptors.length > 0 ? control : null,
        controlLength: descriptors.length > 0 ? control.length : 0,
        flags: 0,
      },
      MSG_DONTWAIT | MSG_NOSIGNAL,
    ),
  );
  return sent < 0 ? -koffi.errno() : sent;
}
