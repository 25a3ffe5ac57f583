import { readFileSync } from 'node:fs';
import koffi from 'koffi';

/*
 * bubblewrap's monitor exits as soon as its pid-namespace init reports the payload's exit status,
 * without waiting for that init, so the init (bwrap's child, never a child of Node) is left to
 * whoever adopts orphans: the host's PID 1, or the nearest child subreaper. Where that is this very
 * process (Node as a container's PID 1, or a caller that made itself a subreaper), nobody else can
 * reap it, and libuv waits only for the pids it spawned: so the tier reaps its own inits here, by
 * exact pid. A pid that is this process's child and that libuv never spawned cannot be one of
 * libuv's, and cannot be reused before it is reaped.
 */

const WNOHANG = 1;
const PR_SET_CHILD_SUBREAPER = 36;
const RETRY_MS = 10;
const ATTEMPTS = 500;

interface ProcessFunctions {
  waitpid: (pid: number, status: number[], options: number) => number;
  prctl: (option: number, ...values: number[]) => number;
}

let functions: ProcessFunctions | undefined;

function processFunctions(): ProcessFunctions {
  if (functions) return functions;
  const library = koffi.load(null);
  functions = {
    waitpid: library.func('int waitpid(int, _Out_ int *, int)'),
    prctl: library.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)'),
  };
  return functions;
}

/**
 * Makes this process a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): orphans of its process
 * tree come to it instead of the host's PID 1, and the Linux tiers reap their own sandbox inits.
 * For callers on a host whose PID 1 does not reap orphans. Every other orphan of the tree comes to
 * it too, and Node does not reap those: the caller takes that on. Returns false if the kernel refused.
 */
export function becomeChildSubreaper(): boolean {
  return processFunctions().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) === 0;
}

/** The parent pid of a process and whether it is a zombie; undefined once it is gone. */
export function processParent(pid: number): { parent: number; zombie: boolean } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { parent: Number(parent), zombie: state === 'Z' };
  } catch {
    return undefined;
  }
}

/**
 * Reaps `pid`, a process this one did not spawn (a sandbox's pid-namespace init), if it was
 * adopted by this process: at once when it has exited, else as soon as it does (checked on a timer
 * that never keeps the process alive). Does nothing for a process another one adopted.
 */
export function reapAdoptedProcess(pid: number, attempt = 0): void {
  const found = processParent(pid);
  if (!found || found.parent !== process.pid) return;
  if (found.zombie) {
    processFunctions().waitpid(pid, [0], WNOHANG);
    return;
  }
  if (attempt >= ATTEMPTS) return;
  setTimeout(() => reapAdoptedProcess(pid, attempt + 1), RETRY_MS).unref();
}
