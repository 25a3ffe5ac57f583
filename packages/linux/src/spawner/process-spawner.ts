import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { closeDescriptor } from '../kernel/libc.js';
import { loadUnixSocketFunctions, sendWithDescriptors, unixSocketPair } from '../kernel/unix-sockets.js';
import { ensureSpawner } from '../shim/ensure-shim.js';

/*
 * Why a spawner: Node forks its whole process for every child_process.spawn() (the page tables of
 * its heap: 1.5 ms at 60 MB here, 4 ms at 300 MB, more while sandboxes compete for the CPU), on the
 * thread that runs every other launch: 100 sandboxes launched at once spent 410 ms of their second
 * there. The spawner (native/bulkhead-spawner.c) is a small process started once, which forks on
 * another core. The caller makes the child's stdio socket pairs itself and sends one end over.
 */

const HEADER_BYTES = 32;
/** Requests sent and not yet answered: bounded so that the socket's buffer never fills. */
const MAX_IN_FLIGHT = 8;
/** Larger requests (a huge environment) are spawned by Node itself. */
const MAX_BODY_BYTES = 64 * 1024;
/** The spawner's own limit on fds per child. */
const MAX_CHILD_FDS = 16;

/** What a spawner-started child is asked to be: like spawn()'s options, with every stdio a pipe. */
export interface SpawnerRequest {
  /** An absolute path: the spawner does not search PATH. */
  file: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** How many fds (0..n-1) the child gets, each a socket pair's end, as `stdio: 'pipe'` gives. */
  stdioCount: number;
  uid?: number;
  gid?: number;
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

/**
 * A child the spawner started, with the part of ChildProcess the tiers use: `pid` once `spawn`
 * was emitted, `stdio` (sockets: stdin, stdout, stderr and the rest), `exitCode`/`signalCode`,
 * `kill()`, `ref()`/`unref()`, and the `spawn`, `error` and `exit` events.
 */
class SpawnedChild extends EventEmitter {
  pid: number | undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  killed = false;
  referenced = true;
  readonly stdio: Socket[];
  #pendingSignal: NodeJS.Signals | undefined;

  constructor(
    stdio: Socket[],
    /** The spawner's pid: the child's parent. */
    readonly parentPid: number,
    private readonly onReferenceChange: () => void,
  ) {
    super();
    this.stdio = stdio;
  }

  get stdin() {
    return this.stdio[0] ?? null;
  }
  get stdout() {
    return this.stdio[1] ?? null;
  }
  get stderr() {
    return this.stdio[2] ?? null;
  }

  get live(): boolean {
    return this.exitCode === null && this.signalCode === null;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (!this.live) return false;
    if (this.pid === undefined) {
      this.#pendingSignal = typeof signal === 'number' ? signalNames.get(signal) : signal;
      return true;
    }
    try {
      // The spawner reaps it and says so; until that line arrives the pid is still this child's.
      process.kill(this.pid, signal);
      this.killed = true;
      return true;
    } catch {
      return false;
    }
  }

  ref(): void {
    this.referenced = true;
    this.onReferenceChange();
  }

  unref(): void {
    this.referenced = false;
    this.onReferenceChange();
  }

  started(pid: number): void {
    this.pid = pid;
    this.emit('spawn');
    if (this.#pendingSignal) this.kill(this.#pendingSignal);
  }

  failed(error: Error): void {
    for (const socket of this.stdio) socket.destroy();
    this.exitCode = -1;
    this.emit('error', error);
  }

  ended(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
  }
}

interface PendingRequest {
  id: number;
  child: SpawnedChild;
  message: Buffer;
  /** The child's ends of the socket pairs: sent, then closed here. */
  childFds: number[];
  file: string;
}

/** Starts programs through one bulkhead-spawner process (see the comment at the top). */
export class ProcessSpawner {
  readonly #control: Socket;
  readonly #controlFd: number;
  readonly #pid: number;
  readonly #queue: PendingRequest[] = [];
  readonly #inFlight = new Map<number, PendingRequest>();
  readonly #running = new Map<number, SpawnedChild>();
  #nextId = 1;
  #buffered = '';
  #alive = true;

  private constructor(spawner: ChildProcess, control: Socket, controlFd: number) {
    this.#control = control;
    this.#controlFd = controlFd;
    this.#pid = spawner.pid ?? 0;
    spawner.unref();
    control.setEncoding('utf8');
    control.on('data', (chunk: string) => this.#receive(chunk));
    control.on('error', () => this.#lost());
    control.on('close', () => this.#lost());
    spawner.once('exit', () => this.#lost());
    this.#updateReference();
  }

  /** Starts a spawner, or answers undefined where none can run here (then spawn with Node). */
  static async start(): Promise<ProcessSpawner | undefined> {
    try {
      loadUnixSocketFunctions();
      const path = await ensureSpawner();
      const spawner = spawn(path, [String(process.pid)], {
        stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
        env: {},
        cwd: '/',
      });
      await new Promise<void>((resolve, reject) => {
        spawner.once('spawn', resolve);
        spawner.once('error', reject);
      });
      const control = spawner.stdio[3] as Socket;
      const fd = (control as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) {
        spawner.kill('SIGKILL');
        return undefined;
      }
      return new ProcessSpawner(spawner, control, fd);
    } catch {
      return undefined;
    }
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** The spawner process's pid: the parent of what it starts. */
  get pid(): number {
    return this.#pid;
  }

  /**
   * Starts `request` (asynchronously: `spawn` or `error` follows, as for child_process.spawn), or
   * answers undefined when this spawner cannot take it (then spawn with Node).
   */
  spawn(request: SpawnerRequest): ChildProcess | undefined {
    if (!this.#alive || request.stdioCount > MAX_CHILD_FDS || !request.file.startsWith('/')) return undefined;
    const environment = Object.entries(request.env).map(([name, value]) => `${name}=${value}`);
    // argv[0] is the program, as spawn() makes it.
    const argv = [request.file, ...request.args];
    const strings = [request.file, request.cwd, ...argv, ...environment];
    if (strings.some((value) => value.includes('\0'))) return undefined;
    const body = Buffer.from(`${strings.join('\0')}\0`);
    if (body.length > MAX_BODY_BYTES) return undefined;

    const ours: Socket[] = [];
    const childFds: number[] = [];
    for (let index = 0; index < request.stdioCount; index++) {
      const pair = unixSocketPair();
      if ('errno' in pair) {
        for (const socket of ours) socket.destroy();
        for (const fd of childFds) closeDescriptor(fd);
        return undefined;
      }
      const [ourEnd, childEnd] = pair.fds;
      // As Node's own pipes: stdin written, stdout and stderr read, the fds above both.
      ours.push(new Socket({ fd: ourEnd, readable: index !== 0, writable: index === 0 || index > 2 }));
      childFds.push(childEnd);
    }
    const id = this.#nextId++;
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(body.length, 0);
    header.writeUInt32LE(id, 4);
    header.writeInt32LE(request.uid ?? -1, 8);
    header.writeInt32LE(request.gid ?? -1, 12);
    header.writeUInt32LE(request.stdioCount, 16);
    header.writeUInt32LE(argv.length, 20);
    header.writeUInt32LE(environment.length, 24);
    const child = new SpawnedChild(ours, this.#pid, () => this.#updateReference());
    this.#queue.push({ id, child, message: Buffer.concat([header, body]), childFds, file: request.file });
    this.#send();
    this.#updateReference();
    return child as unknown as ChildProcess;
  }

  /** Ends the spawner; what it started lives on until it exits (or its parent does). */
  close(): void {
    this.#control.destroy();
  }

  #send(): void {
    while (this.#alive && this.#inFlight.size < MAX_IN_FLIGHT && this.#queue.length > 0) {
      const request = this.#queue.shift()!;
      const sent = sendWithDescriptors(this.#controlFd, request.message, request.childFds);
      for (const fd of request.childFds) closeDescriptor(fd);
      if (sent !== request.message.length) {
        // A short or failed send leaves the stream out of step: this spawner is done.
        request.child.failed(spawnError(request.file, sent < 0 ? -sent : 5));
        this.#lost();
        return;
      }
      this.#inFlight.set(request.id, request);
    }
  }

  #receive(chunk: string): void {
    this.#buffered += chunk;
    let newline = this.#buffered.indexOf('\n');
    while (newline >= 0) {
      const [kind, first, second, third] = this.#buffered.slice(0, newline).split(' ');
      this.#buffered = this.#buffered.slice(newline + 1);
      newline = this.#buffered.indexOf('\n');
      if (kind === 's' || kind === 'f') {
        const request = this.#inFlight.get(Number(first));
        if (!request) continue;
        this.#inFlight.delete(request.id);
        if (kind === 's') {
          const pid = Number(second);
          this.#running.set(pid, request.child);
          request.child.started(pid);
        } else {
          request.child.failed(spawnError(request.file, Number(second)));
        }
      } else if (kind === 'x') {
        const pid = Number(first);
        const child = this.#running.get(pid);
        if (!child) continue;
        this.#running.delete(pid);
        const code = Number(second);
        child.ended(
          code >= 0 ? code : null,
          code >= 0 ? null : (signalNames.get(Number(third)) ?? 'SIGKILL'),
        );
      }
    }
    this.#send();
    this.#updateReference();
  }

  /** The spawner is gone (it crashed, or was killed): its children were killed with it. */
  #lost(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#control.destroy();
    for (const request of [...this.#queue, ...this.#inFlight.values()]) {
      request.child.failed(spawnError(request.file, 32));
    }
    this.#queue.length = 0;
    this.#inFlight.clear();
    for (const child of this.#running.values()) if (child.live) child.ended(null, 'SIGKILL');
    this.#running.clear();
    this.#updateReference();
  }

  /** The caller's process stays alive while a referenced child runs or is being started. */
  #updateReference(): void {
    const referenced =
      this.#alive &&
      (this.#queue.length > 0 ||
        this.#inFlight.size > 0 ||
        [...this.#running.values()].some((child) => child.referenced));
    if (referenced) this.#control.ref();
    else this.#control.unref();
  }
}

function spawnError(file: string, errno: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno);
  const error: NodeJS.ErrnoException = new Error(`spawn ${file} ${code}`);
  error.errno = -errno;
  error.code = code;
  error.syscall = `spawn ${file}`;
  error.path = file;
  return error;
}

let shared: Promise<ProcessSpawner | undefined> | undefined;
let ready: ProcessSpawner | undefined;

/**
 * Starts this process's spawner in the background (once; again after one was lost). Launches take
 * it once it is up (`readySpawner`), and spawn with Node until then.
 */
export function startProcessSpawner(): void {
  if (shared && (ready === undefined || ready.alive)) return;
  ready = undefined;
  shared = ProcessSpawner.start().then((spawner) => {
    ready = spawner;
    return spawner;
  });
}

/** The spawner of this process, if one was started and is up. */
export function readySpawner(): ProcessSpawner | undefined {
  return ready?.alive ? ready : undefined;
}

/** The pid of a child's parent: this process, or the spawner that started it (see `spawnPiped`). */
export function parentPidOf(child: ChildProcess): number {
  return child instanceof SpawnedChild ? child.parentPid : process.pid;
}

/**
 * spawn() through this process's spawner where it is up and can take the request, else through
 * Node (the same options, every stdio a pipe).
 */
export function spawnPiped(request: SpawnerRequest): ChildProcess {
  const spawned = readySpawner()?.spawn(request);
  if (spawned) return spawned;
  return spawn(request.file, [...request.args], {
    cwd: request.cwd,
    env: request.env,
    stdio: Array.from({ length: request.stdioCount }, () => 'pipe' as const),
    ...(request.uid === undefined ? {} : { uid: request.uid }),
    ...(request.gid === undefined ? {} : { gid: request.gid }),
  });
}
