import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/**
 * Something the benchmarks launch payloads through: the bare baseline, a Bulkhead tier, or a peer.
 * Adding a tier or a peer to every measurement is adding one `Subject` to `subjects.ts`.
 */
export interface Subject {
  /** Stable key in results and baselines, e.g. `process-namespace`, `mxc`. */
  id: string;
  /** How tables and charts name it. */
  label: string;
  family: 'baseline' | 'bulkhead' | 'peer';
  /** The tier (`--tier`) or peer (`--peers`) name that selects it. */
  group: string;
  /**
   * `in-process`: an SDK called by a running Node process; `whole-process`: a command started from
   * outside, so every launch pays its own process start (and is cold by nature).
   */
  scope: 'in-process' | 'whole-process';
  /** What this row stands for, in one line (shown under the tables). */
  description: string;
  /** Caps for a slow subject (a VM under software emulation), so that the whole run stays short. */
  limits?: SubjectLimits;
  /** Version of what is measured; undefined when it cannot be told. */
  version(context: SubjectContext): Promise<string | undefined>;
  /**
   * Why this row is not held to the mission targets on this host, once `version()` ran (a micro-VM
   * under software emulation, whose figures are published as they are); undefined when it is.
   */
  targetExemption?(): string | undefined;
  /**
   * Loads and initialises the subject (imports, probes, proxies). Throws, with the reason, when it
   * cannot run on this host: the row is then reported as unavailable, never dropped.
   */
  prepare(context: SubjectContext): Promise<SubjectSession>;
}

export interface SubjectLimits {
  /** At most this many counted runs per interleaved measurement (launch, cold, CPU). */
  runs?: number;
  warmup?: number;
  /** The highest concurrency level it is launched at. */
  maxConcurrency?: number;
  /** Its CPU jobs do this many times less work (inside and outside alike). */
  cpuWorkDivisor?: number;
}

export interface SubjectContext {
  /** The repository root. */
  repositoryRoot: string;
  /** The compiled workload program (absolute), readable and executable inside every sandbox. */
  workloadPath: string;
  /** Its directory, which every subject grants read access to. */
  workloadDirectory: string;
}

export interface SubjectSession {
  /**
   * Starts `command` (argv, absolute program path) with live stdio and returns as soon as the API
   * has. Absent when the subject has no streaming API here; `streamingUnavailable` then says why.
   */
  start?(command: string[]): Promise<SubjectHandle>;
  streamingUnavailable?: string;
  /**
   * The subject's own run-to-completion call, when it has one that differs from start+wait (MXC's
   * `run()`): used for the launch-to-exit figure, and for everything when `start` is absent.
   */
  run?(command: string[], options?: { timeoutMs?: number }): Promise<RunOutcome>;
  /** Releases what `prepare` set up (proxies, native handles). */
  close(): Promise<void>;
}

export interface RunOutcome {
  exitCode: number | null;
  stdout: string;
}

export interface SubjectHandle {
  stdin: Writable | null;
  stdout: Readable;
  /** Resolves once the payload and everything the subject started for it are gone. */
  exited: Promise<number | null>;
  /** Ends the sandbox at once and waits until it is gone. */
  kill(): Promise<void>;
}

/** Why a subject cannot run: the text a user would need to act on. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const firstLine = error.message.split('\n').slice(0, 6).join(' ').trim();
    return typeof code === 'string' && !firstLine.includes(code) ? `${code}: ${firstLine}` : firstLine;
  }
  return String(error);
}

export interface SpawnHandleOptions {
  /**
   * Start the child as leader of its own process group and kill the whole group: for subjects that
   * start a shell or supervisor whose children must not outlive the measurement.
   */
  processGroup?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Spawns a process with piped stdio and waits until it started (or failed to). */
export async function spawnHandle(
  file: string,
  args: string[],
  options: SpawnHandleOptions = {},
): Promise<SubjectHandle> {
  const child = spawn(file, args, {
    stdio: 'pipe',
    detached: options.processGroup === true,
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return childProcessHandle(child, options.processGroup === true);
}

export function childProcessHandle(child: ChildProcess, processGroup: boolean): SubjectHandle {
  // Nobody reads stderr in a benchmark; left unread, a chatty payload would block on a full pipe.
  child.stderr?.resume();
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  exited.catch(() => {});
  const signal = () => {
    try {
      if (processGroup && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return {
    stdin: child.stdin,
    stdout: child.stdout!,
    exited: exited.then((code) => {
      // Helpers the subject left in the group (a shell's background relays) go with it.
      if (processGroup) signal();
      return code;
    }),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) signal();
      await exited.catch(() => {});
      if (processGroup) signal();
    },
  };
}
