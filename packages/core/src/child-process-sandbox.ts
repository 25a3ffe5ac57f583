import type { ChildProcess } from 'node:child_process';
import type { CapabilityKey, TierName } from './capabilities.js';
import type { EnforcementMechanism, Sandbox, SandboxResult, Violation } from './provider.js';

export interface ChildProcessSandboxOptions {
  id: string;
  tier: TierName;
  /** The spawned supervisor or payload, with stdio piped. */
  child: ChildProcess;
  /** Wall-clock limit; at expiry `killTree('SIGKILL')` runs and the result says `timedOut`. */
  timeoutMs: number;
  /** Signals every process of the sandbox (the whole tree, not only `child`). */
  killTree: (signal: NodeJS.Signals) => Promise<void> | void;
  /**
   * Runs once the child exited and the tree was killed: collect measurements (peak memory, CPU,
   * OOM) and free every resource. Its fields are merged into the result.
   */
  finish?: (exit: {
    exitCode: number | null;
    signal: NodeJS.Signals | null;
    timedOut: boolean;
  }) => Promise<Partial<SandboxResult>> | Partial<SandboxResult>;
  violations?: Violation[];
  warnings?: string[];
  enforcement?: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
  /** Translates the child's raw exit when it is a supervisor that reports the payload's status another way. */
  translateExit?: (
    exitCode: number | null,
    signal: NodeJS.Signals | null,
  ) => { exitCode: number | null; signal: NodeJS.Signals | null };
}

/**
 * Turns a spawned child process into a `Sandbox`: timeout of the whole tree, `kill()`, dispose,
 * and a result that resolves only after `finish` released everything. Shared by the tiers that
 * start a local process tree so that each gets the lifecycle rules of the spec right once.
 */
export function createChildProcessSandbox(options: ChildProcessSandboxOptions): Sandbox {
  const { child } = options;
  const started = performance.now();
  let timedOut = false;
  let canceled = false;
  if (!child.stdin || !child.stdout || !child.stderr) {
    throw new TypeError('createChildProcessSandbox needs a child spawned with stdio: pipe');
  }
  const timer =
    Number.isFinite(options.timeoutMs) && options.timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          void options.killTree('SIGKILL');
        }, options.timeoutMs)
      : undefined;
  timer?.unref?.();

  const exited = new Promise<SandboxResult>((resolve, reject) => {
    child.once('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (rawCode, rawSignal) => {
      if (timer) clearTimeout(timer);
      const durationMs = performance.now() - started;
      const { exitCode, signal } = options.translateExit
        ? options.translateExit(rawCode, rawSignal)
        : { exitCode: rawCode, signal: rawSignal };
      void (async () => {
        // Descendants that left the process group or session must not outlive the sandbox.
        await options.killTree('SIGKILL');
        const extra = (await options.finish?.({ exitCode, signal, timedOut })) ?? {};
        return {
          exitCode,
          signal,
          timedOut,
          canceled,
          oomKilled: false,
          durationMs,
          violations: options.violations ?? [],
          warnings: options.warnings ?? [],
          enforcement: options.enforcement ?? {},
          ...extra,
        } satisfies SandboxResult;
      })().then(resolve, reject);
    });
  });
  // A caller that only disposes must not see an unhandled rejection.
  exited.catch(() => {});

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    canceled = true;
    await options.killTree(signal);
  };

  return {
    id: options.id,
    tier: options.tier,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill,
    async [Symbol.asyncDispose]() {
      await kill('SIGKILL');
      child.stdin?.destroy();
      await exited.catch(() => {});
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
  };
}
