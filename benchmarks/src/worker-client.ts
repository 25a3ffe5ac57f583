import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BulkheadError } from '@bulkhead/core';
import type { WorkerJob, WorkerReport } from './worker.js';

const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface WorkerOptions {
  /** Called with the worker's pid once it loaded, before it starts measuring (to move it into a cgroup). */
  onLoaded?: (pid: number) => Promise<void>;
  deadlineMs: number;
}

/** Runs one job in a fresh Node process and returns its report; a failed job rejects with its reason. */
export async function runWorker<Report>(job: WorkerJob, options: WorkerOptions): Promise<Report> {
  const child = spawn(process.execPath, ['--expose-gc', workerPath, JSON.stringify(job)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.join('').length < 4000) stderr.push(chunk);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.deadlineMs);
  try {
    let outcome: WorkerReport | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        continue;
      }
      if ((message as { phase?: string }).phase === 'loaded') {
        await options.onLoaded?.(child.pid!);
        child.stdin.write('go\n');
      } else if (typeof (message as { ok?: unknown }).ok === 'boolean') {
        outcome = message as WorkerReport;
      }
    }
    if (!outcome) {
      const reason = stderr.join('').trim().split('\n').slice(-3).join(' ') || 'no report';
      throw new BulkheadError(
        'BENCHMARK_WORKER_FAILED',
        `The ${job.kind} worker for '${job.subject}' ended without a report: ${reason}`,
      );
    }
    if (!outcome.ok) throw new BulkheadError('BENCHMARK_WORKER_FAILED', outcome.error);
    return outcome.report as Report;
  } finally {
    clearTimeout(timer);
    child.stdin.destroy();
  }
}
