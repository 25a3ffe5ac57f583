import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { promisify } from 'node:util';
import { waitForOutput } from './sandbox-session.js';

const run = promisify(execFile);

/** Host-side things an escape case attacks; the runner prepares the ones a case names. */
export type HostFixtureName =
  | 'host-process'
  | 'terminal'
  | 'unix-socket-path'
  | 'abstract-socket'
  | 'tcp-servers'
  | 'udp-listener'
  | 'dns-listener'
  | 'emulated-mounts';

/** A server that records what clients sent it. */
export interface RecordingServer {
  port: number;
  /** Everything received so far, from every client. */
  received(): string;
}

/** A process of the host (a `sleep`), running with its cwd in the case's non-granted directory. */
export interface HostProcess {
  pid: number;
  /** A string unique to its command line, so the attack can tell it from a sandbox pid of the same number. */
  commandLineMark: string;
  alive(): boolean;
}

/** A pseudo-terminal of the host with a shell reading lines from it (as a user's terminal would). */
export interface HostTerminal {
  /** /dev/pts/N of the terminal. */
  path: string;
  /** Lines the shell read so far. */
  lines(): string;
}

export interface HostFixtures {
  hostProcess?: HostProcess;
  terminal?: HostTerminal;
  unixSocket?: RecordingServer & { path: string };
  abstractSocket?: RecordingServer & { name: string };
  tcpIpv4?: RecordingServer;
  tcpIpv6?: RecordingServer;
  udp?: RecordingServer;
  dns?: RecordingServer;
}

/** Undo functions, run in reverse order by the runner. */
export type Cleanup = () => Promise<void> | void;

function recordingStreamServer(
  listen: (server: Server) => Promise<void>,
): Promise<RecordingServer & { server: Server }> {
  let received = '';
  const server = createServer((socket) => {
    socket.on('data', (chunk) => {
      received += chunk.toString();
      socket.end('host-server-reply\n');
    });
    socket.on('error', () => {});
  });
  return listen(server).then(() => {
    const address = server.address();
    return {
      server,
      port: typeof address === 'object' && address ? address.port : 0,
      received: () => received,
    };
  });
}

const listenOn =
  (...args: [number, string] | [string]) =>
  (server: Server) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(...(args as [number, string]), () => resolve());
    });

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

async function recordingDatagramListener(
  answer: (message: Buffer) => Buffer,
): Promise<RecordingServer & { socket: DatagramSocket }> {
  let received = '';
  const socket = createSocket('udp4');
  socket.on('message', (message, remote) => {
    received += message.toString('latin1');
    socket.send(answer(message), remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  return { socket, port: socket.address().port, received: () => received };
}

function dnsAnswer(query: Buffer): Buffer {
  const answer = Buffer.from(query);
  if (answer.length >= 4) {
    answer[2] = 0x81; // response, recursion desired
    answer[3] = 0x83; // recursion available, NXDOMAIN
  }
  return answer;
}

const PYTHON_TERMINAL = String.raw`
import os, pty, select, subprocess, sys
master, slave = pty.openpty()
# Open to every uid, so that only the isolation keeps a sandbox from it.
os.fchmod(slave, 0o666)
log = sys.argv[1]
subprocess.Popen(['/bin/sh', '-c', 'while IFS= read -r line; do printf "%s\n" "$line" >> "$0"; done', log],
                 stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(os.ttyname(slave), flush=True)
while True:
    readable, _, _ = select.select([master], [], [], 1.0)
    if readable:
        try:
            os.read(master, 4096)
        except OSError:
            pass
`;

function pythonExecutable(): string {
  // Debian's own python first: a pyenv shim under /root is not usable by an unprivileged user.
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

function startDetached(file: string, args: string[], cwd: string): ChildProcess {
  const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  child.on('error', () => {});
  return child;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

export interface FixtureDirectories {
  /** Not granted to the sandbox. */
  outside: string;
  /** Granted read-only. */
  granted: string;
  /** Inside `granted`, denied. */
  denied: string;
  token: string;
}

/** Starts the fixtures a case names; returns them with the cleanups that undo them. */
export async function startFixtures(
  names: readonly HostFixtureName[],
  directories: FixtureDirectories,
  cleanups: Cleanup[],
): Promise<HostFixtures> {
  const fixtures: HostFixtures = {};
  for (const name of names) {
    switch (name) {
      case 'host-process': {
        const mark = `1000.${Math.floor(Math.random() * 1e6)}`;
        const child = startDetached('sleep', [mark], directories.outside);
        cleanups.push(() => killGroup(child));
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', resolve);
          child.once('error', reject);
        });
        let exited = false;
        child.once('exit', () => {
          exited = true;
        });
        fixtures.hostProcess = { pid: child.pid!, commandLineMark: mark, alive: () => !exited };
        break;
      }
      case 'terminal': {
        const log = `${directories.outside}/terminal.log`;
        const child = startDetached(pythonExecutable(), ['-c', PYTHON_TERMINAL, log], directories.outside);
        cleanups.push(() => killGroup(child));
        const path = (await waitForOutput(child.stdout!, '\n')).trim();
        child.stdout!.resume();
        fixtures.terminal = { path, lines: () => (existsSync(log) ? readFileSync(log, 'utf8') : '') };
        break;
      }
      case 'unix-socket-path': {
        const path = `${directories.outside}/host.sock`;
        const server = await recordingStreamServer(listenOn(path));
        cleanups.push(() => closeServer(server.server));
        // Connecting needs write permission on the socket: give it to every uid, so only isolation refuses.
        await chmod(path, 0o777);
        fixtures.unixSocket = { ...server, path };
        break;
      }
      case 'abstract-socket': {
        const name = `bulkhead-conformance-${directories.token}`;
        const server = await recordingStreamServer(listenOn(`\0${name}`));
        cleanups.push(() => closeServer(server.server));
        fixtures.abstractSocket = { ...server, name };
        break;
      }
      case 'tcp-servers': {
        const ipv4 = await recordingStreamServer(listenOn(0, '127.0.0.1'));
        cleanups.push(() => closeServer(ipv4.server));
        fixtures.tcpIpv4 = ipv4;
        const ipv6 = await recordingStreamServer(listenOn(0, '::1'));
        cleanups.push(() => closeServer(ipv6.server));
        fixtures.tcpIpv6 = ipv6;
        break;
      }
      case 'udp-listener': {
        const listener = await recordingDatagramListener(() => Buffer.from('host-udp-reply'));
        cleanups.push(() => void listener.socket.close());
        fixtures.udp = listener;
        break;
      }
      case 'dns-listener': {
        const listener = await recordingDatagramListener(dnsAnswer);
        cleanups.push(() => void listener.socket.close());
        fixtures.dns = listener;
        break;
      }
      case 'emulated-mounts': {
        // Only for the none tier, as root: gives the host the mounts a real tier makes inside its own
        // namespace (a read-only bind of the grant, a tmpfs mask over the denied path), so the mount
        // cases have something to remount and unmount there and can be seen to escape.
        await run('mount', ['--bind', directories.granted, directories.granted]);
        cleanups.push(() =>
          run('umount', ['-l', directories.granted]).then(
            () => {},
            () => {},
          ),
        );
        await run('mount', ['-o', 'remount,bind,ro', directories.granted]);
        await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'bulkhead-conformance-mask', directories.denied]);
        cleanups.push(() =>
          run('umount', ['-l', directories.denied]).then(
            () => {},
            () => {},
          ),
        );
        break;
      }
    }
  }
  return fixtures;
}
