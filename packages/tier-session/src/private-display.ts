import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BulkheadError } from '@bulkhead/core';
import { createSandboxCgroup, type SandboxCgroup } from '@bulkhead/linux';
import { runOverSandboxIds, subordinateWrapperPath } from './subordinate-account.js';
import { FAMILY_WILD, writeSandboxAuthority } from './x-authority.js';

/** Where X clients look for display N's socket; a sandbox gets exactly its own one bound there. */
export const X11_SOCKET_DIRECTORY = '/tmp/.X11-unix';

export interface PrivateDisplay {
  /** `:N`, for DISPLAY. */
  display: string;
  /** The server's socket on the host (and, by grant, in the sandbox). */
  socketPath: string;
  /** The MIT-MAGIC-COOKIE-1 file the server checks, for XAUTHORITY. */
  authorityPath: string;
  /** The X lock file that claims the display number. */
  lockPath: string;
  /** Milliseconds from spawning the server to its first accepted connection being possible. */
  startMs: number;
  /** Stops the server and removes its socket, lock and cookie. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Removes the socket a session's X server left in /tmp/.X11-unix, for a display number the session
 * claimed by its lock: only a socket right in that folder and owned by the sandbox's uid (or by the
 * caller, when the server was not switched to the sandbox's account), never a link or anything else
 * put in its place, never another account's. The folder is sticky, so only root or the socket's
 * owner may unlink it: an unprivileged caller does so as root of a user namespace that maps its
 * subordinate uid (`rm` unlinks the name and never follows a link, and a name replaced meanwhile
 * could only be the sandbox's or the caller's).
 */
export async function removeDisplaySocket(path: string, ids: { uid: number; gid: number }): Promise<void> {
  if (posix.dirname(path) !== X11_SOCKET_DIRECTORY) return;
  const status = await lstat(path).catch(() => undefined);
  if (!status?.isSocket() || (status.uid !== ids.uid && status.uid !== process.getuid?.())) return;
  try {
    await unlink(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'EPERM' && code !== 'EACCES') throw error;
    await runOverSandboxIds(ids.uid, ids.gid, ['rm', '-f', '--', path]);
  }
}

/** /tmp/.X11-unix as X servers expect it: root's, sticky, writable by all (the umask would narrow it). */
async function prepareSocketDirectory(): Promise<void> {
  const made = await mkdir(X11_SOCKET_DIRECTORY, { recursive: true, mode: 0o1777 });
  if (made !== undefined) await chmod(X11_SOCKET_DIRECTORY, 0o1777);
}

/**
 * Claims a display number the X way: the first to create `/tmp/.X<N>-lock` owns N. The number is
 * drawn high and at random so that it never meets the person's own displays (`:0`, `:1`, ...).
 */
async function claimDisplayNumber(): Promise<{ number: number; lockPath: string }> {
  for (let attempt = 0; attempt < 64; attempt++) {
    const number = randomInt(1000, 60_000);
    const lockPath = `/tmp/.X${number}-lock`;
    const socketPath = posix.join(X11_SOCKET_DIRECTORY, `X${number}`);
    if (
      await lstat(socketPath).then(
        () => true,
        () => false,
      )
    )
      continue;
    try {
      const handle = await open(lockPath, 'wx', 0o444);
      await handle.write(`${String(process.pid).padStart(10)}\n`);
      await handle.close();
      return { number, lockPath };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new BulkheadError(
    'DISPLAY_START_FAILED',
    'No free X display number was found in 64 tries. Fix: remove stale /tmp/.X*-lock files of X servers that are gone.',
    { tier: 'session', capability: 'devices.display' },
  );
}

function readToEnd(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    stream.once('end', () => resolve(text));
    stream.once('error', () => resolve(text));
  });
}

function readLine(stream: Readable, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    const done = (value: string | undefined) => {
      clearTimeout(timer);
      resolve(value);
    };
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) done(text.trim());
    });
    stream.once('end', () => done(text.includes('\n') ? text.trim() : undefined));
    stream.once('error', () => done(undefined));
  });
}

/**
 * Starts a headless X server (Xvfb) of the sandbox's own: running as the sandbox's account inside
 * bubblewrap (read-only system folders, a private /tmp, no network, its own session), reachable only
 * through its path socket and a cookie. The sandbox gets the socket and the cookie by grant; other
 * sandboxes see neither, and a person's display never meets it. Its clipboard is the sandbox's own.
 */
export async function startPrivateDisplay(options: {
  /** The sandbox's id: names the server's own cgroup. */
  sandboxId: string;
  /** The sandbox's memory cap, applied to the server too. */
  memoryBytes: number;
  /** A folder private to the caller, for the cookie; removed by the caller. */
  directory: string;
  uid: number;
  gid: number;
  /**
   * `root`: bubblewrap is spawned as uid/gid; `subordinate`: it is started through the stand-in that
   * `probeSubordinateSwitch` wrote (`subordinateWrapperPath()`), which switches to them.
   */
  switching: 'root' | 'subordinate';
  /** bubblewrap itself, for a root caller (the stand-in runs the one it was written for). */
  bubblewrapPath: string;
  xvfbPath: string;
  /** WIDTHxHEIGHTxDEPTH of screen 0. */
  screen?: string;
  /** Load GLX (OpenGL over X): it brings Mesa, about 50 MB more per display. */
  glx?: boolean;
}): Promise<PrivateDisplay> {
  const started = performance.now();
  await prepareSocketDirectory();
  const { number, lockPath } = await claimDisplayNumber();
  const socketPath = posix.join(X11_SOCKET_DIRECTORY, `X${number}`);
  const authorityPath = posix.join(options.directory, 'Xauthority');
  const subordinate = options.switching === 'subordinate';
  let child: ChildProcess | undefined;
  let cgroup: SandboxCgroup | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child?.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      await cgroup?.remove().catch(() => {});
      // The socket goes before the lock: while the lock stands, no other server takes the number.
      await removeDisplaySocket(socketPath, options).catch(() => {});
      await unlink(lockPath).catch(() => {});
      await unlink(authorityPath).catch(() => {});
    })();
    return stopped;
  };
  try {
    // The server and the payload need the cookie.
    await writeSandboxAuthority(
      authorityPath,
      [
        {
          family: FAMILY_WILD,
          address: Buffer.alloc(0),
          number: String(number),
          name: 'MIT-MAGIC-COOKIE-1',
          data: randomBytes(16),
        },
      ],
      { gid: options.gid, subordinate },
    );
    const system = ['/usr', '/etc', '/lib', '/lib64', '/bin', '/sbin'].flatMap((path) => [
      '--ro-bind-try',
      path,
      path,
    ]);
    // A subordinate uid is switched to by the stand-in: plain bubblewrap's --uid would only rename the
    // caller's uid inside its namespace, and the server would run (and own its socket) as the caller.
    child = spawn(
      subordinate ? subordinateWrapperPath() : options.bubblewrapPath,
      [
        ...(subordinate
          ? ['--unshare-user', '--uid', String(options.uid), '--gid', String(options.gid)]
          : []),
        '--unshare-all',
        '--die-with-parent',
        '--new-session',
        '--cap-drop',
        'ALL',
        ...system,
        '--proc',
        '/proc',
        '--dev',
        '/dev',
        '--tmpfs',
        '/tmp',
        '--bind',
        X11_SOCKET_DIRECTORY,
        X11_SOCKET_DIRECTORY,
        '--ro-bind',
        authorityPath,
        authorityPath,
        '--clearenv',
        '--info-fd',
        '4',
        '--block-fd',
        '5',
        '--',
        options.xvfbPath,
        `:${number}`,
        '-auth',
        authorityPath,
        '-nolisten',
        'tcp',
        '-displayfd',
        '3',
        '-screen',
        '0',
        options.screen ?? '1280x800x24',
        ...(options.glx ? [] : ['-extension', 'GLX']),
      ],
      {
        cwd: '/',
        env: {},
        stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
        ...(subordinate ? {} : { uid: options.uid, gid: options.gid }),
      },
    );
    child.once('error', () => {});
    let diagnostics = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      diagnostics = (diagnostics + chunk.toString()).slice(-2000);
    });
    // What the server allocates for the sandbox's requests (pixmaps, windows) is the sandbox's doing:
    // it gets a cgroup with the sandbox's memory cap, joined before Xvfb runs (bwrap waits on fd 5).
    cgroup = await createSandboxCgroup({
      sandboxId: `${options.sandboxId}-display`,
      limits: { memoryBytes: options.memoryBytes, maxProcesses: 32 },
    });
    const info = await readToEnd(child.stdio[4] as Readable);
    const initPid = Number(/"child-pid"\s*:\s*(\d+)/.exec(info)?.[1]);
    if (!child.pid || !Number.isInteger(initPid)) {
      throw new BulkheadError(
        'DISPLAY_START_FAILED',
        `bubblewrap did not start the private X server: ${diagnostics.trim() || 'no reason given'}.`,
        { tier: 'session', capability: 'devices.display' },
      );
    }
    try {
      await cgroup.addProcess(child.pid);
      await cgroup.addProcess(initPid);
    } catch (error) {
      // Gone before it was placed: bubblewrap failed while setting up, and said why on stderr.
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new BulkheadError(
        'DISPLAY_START_FAILED',
        `bubblewrap stopped before the private X server ran: ${diagnostics.trim() || (error as Error).message}.`,
        { tier: 'session', capability: 'devices.display', cause: error },
      );
    }
    (child.stdio[5 as number] as Writable).end(Buffer.from([1]));
    const announced = await readLine(child.stdio[3] as Readable, 15_000);
    const socket = await lstat(socketPath).catch(() => undefined);
    if (announced !== String(number) || !socket?.isSocket()) {
      throw new BulkheadError(
        'DISPLAY_START_FAILED',
        `The private X server (Xvfb) did not start: ${diagnostics.trim().split('\n').slice(-3).join(' ') || 'it announced no display within 15 s'}. Fix: apt-get install xvfb, or ask for devices.display: false.`,
        { tier: 'session', capability: 'devices.display', fix: 'apt-get install xvfb' },
      );
    }
    // The server must be the sandbox's account, not the caller's: what the sandbox makes it do is
    // then done as the sandbox, and its socket is one the tier knows it may remove.
    if (socket.uid !== options.uid) {
      throw new BulkheadError(
        'DISPLAY_START_FAILED',
        `The private X server runs as uid ${socket.uid} (the owner of ${socketPath}), not as the sandbox's uid ${options.uid}, so it is not the sandbox's own. Fix: start it through the session tier's bubblewrap stand-in (${subordinate ? subordinateWrapperPath() : 'a root caller spawns it as the uid'}).`,
        { tier: 'session', capability: 'devices.display', path: socketPath },
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    display: `:${number}`,
    socketPath,
    authorityPath,
    lockPath,
    startMs: performance.now() - started,
    stop,
  };
}
