/**
 * A fresh Node process that measures one subject for the figures a long-running orchestrator
 * cannot give: the first launch in a process (cold), memory attributed to one launcher, and many
 * sandboxes at once from one process. Started by worker-client.ts; one job per process.
 */
import { createInterface } from 'node:readline';
import { BulkheadError } from '@bulkhead/core';
import {
  type NetworkJob,
  type NetworkMemoryJob,
  type NetworkMemoryReport,
  type NetworkReport,
  networkJob,
  networkMemoryJob,
} from './network.js';
import { isolationProcesses, memoryByName, settledPss } from './process-memory.js';
import { firstChunk, LAUNCH_DEADLINE_MS, runToCompletion, timeToExit, withDeadline } from './runner.js';
import { describeError, type SubjectContext, type SubjectHandle, type SubjectSession } from './subject.js';
import { allSubjects } from './subjects.js';

export type WorkerJob =
  | NetworkJob
  | NetworkMemoryJob
  | { kind: 'cold'; subject: string; context: SubjectContext }
  | { kind: 'memory'; subject: string; context: SubjectContext; sandboxes: number; cgroup?: string }
  | { kind: 'concurrency'; subject: string; context: SubjectContext; level: number; deadlineMs: number };

export interface ColdReport {
  prepareMs: number;
  launchMs: number;
}

export interface MemoryReport {
  sandboxes: number;
  /** Isolation processes (payloads excluded), all sandboxes together. */
  processesBytes: number;
  payloadBytes: number;
  hostGrowthBytes: number;
  processes: { name: string; count: number; pssBytes: number }[];
  chargedBytes?: number;
  kernelBytes?: number;
}

export interface ConcurrencyReport {
  attempted: number;
  succeeded: number;
  allStartedMs?: number;
  latenciesMs: number[];
  totalMemoryBytes?: number;
  observed: 'first-byte' | 'completion';
  errors: string[];
}

export type WorkerReport =
  | { ok: true; report: ColdReport | MemoryReport | ConcurrencyReport | NetworkReport | NetworkMemoryReport }
  | { ok: false; error: string };

/** Idle payload for subjects without a streaming API; `workload hold` otherwise. */
const IDLE_SLEEP = ['/bin/sleep', '600'];

function findSubject(id: string) {
  const subject = allSubjects().find((candidate) => candidate.id === id);
  if (!subject) throw new BulkheadError('BENCHMARK_UNKNOWN_SUBJECT', `No benchmark subject '${id}'.`);
  return subject;
}

async function waitForLine(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
}

async function pollUntil(condition: () => boolean, deadlineMs: number, what: string): Promise<void> {
  const end = performance.now() + deadlineMs;
  while (!condition()) {
    if (performance.now() > end)
      throw new BulkheadError('BENCHMARK_DEADLINE', `${what} within ${deadlineMs} ms.`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function cold(job: Extract<WorkerJob, { kind: 'cold' }>): Promise<ColdReport> {
  const subject = findSubject(job.subject);
  const started = performance.now();
  const session = await subject.prepare(job.context);
  const prepareMs = performance.now() - started;
  try {
    const firstLaunch = await timeToExit(session, ['/bin/true']);
    return { prepareMs, launchMs: prepareMs + firstLaunch };
  } finally {
    await session.close();
  }
}

async function memory(job: Extract<WorkerJob, { kind: 'memory' }>): Promise<MemoryReport> {
  const subject = findSubject(job.subject);
  // The orchestrator moves this process into the measurement cgroup, then says go: every charge
  // from here on is what preparing and launching cost.
  process.stdout.write(`${JSON.stringify({ phase: 'loaded' })}\n`);
  await waitForLine();
  const hostBefore = settledPss() ?? 0;
  const session = await subject.prepare(job.context);
  const handles: SubjectHandle[] = [];
  const runs: Promise<unknown>[] = [];
  try {
    if (session.start) {
      // The idle payload says when it runs, so this also works where it is not a host process (a VM).
      const hold = [job.context.workloadPath, 'hold'];
      for (let index = 0; index < job.sandboxes; index++) {
        const handle = await session.start(hold);
        handles.push(handle);
        await withDeadline(firstChunk(handle.stdout), 60_000, 'the idle payload saying it runs');
      }
    } else if (session.run) {
      // Without a streaming API: a run() whose own timeout ends an idle sleep, found in /proc.
      for (let index = 0; index < job.sandboxes; index++) {
        runs.push(session.run(IDLE_SLEEP, { timeoutMs: 8_000 }).catch(() => {}));
      }
      await pollUntil(
        () => isolationProcesses().payload.filter((entry) => entry.name === 'sleep').length >= job.sandboxes,
        30_000,
        `Not all ${job.sandboxes} idle payloads were running`,
      );
    }
    // Let helpers that start lazily (relays, proxies) settle before measuring.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { isolation, payload } = isolationProcesses();
    const processes = memoryByName(isolation);
    const payloadBytes = memoryByName(payload).reduce((sum, entry) => sum + entry.pssBytes, 0);
    const report: MemoryReport = {
      sandboxes: job.sandboxes,
      processesBytes: processes.reduce((sum, entry) => sum + entry.pssBytes, 0),
      payloadBytes,
      hostGrowthBytes: Math.max(0, (settledPss() ?? hostBefore) - hostBefore),
      processes,
    };
    if (job.cgroup) {
      const { readFile } = await import('node:fs/promises');
      const read = async (file: string) => {
        try {
          return Number.parseInt(await readFile(`${job.cgroup}/${file}`, 'utf8'), 10);
        } catch {
          return undefined;
        }
      };
      const charged = (await read('memory.usage_in_bytes')) ?? (await read('memory.current'));
      const kernel = await read('memory.kmem.usage_in_bytes');
      if (charged !== undefined) report.chargedBytes = charged;
      if (kernel !== undefined) report.kernelBytes = kernel;
    }
    return report;
  } finally {
    await Promise.all(handles.map((handle) => handle.kill()));
    await Promise.all(runs);
    await session.close();
  }
}

async function concurrency(job: Extract<WorkerJob, { kind: 'concurrency' }>): Promise<ConcurrencyReport> {
  const subject = findSubject(job.subject);
  const session: SubjectSession = await subject.prepare(job.context);
  const hold = [job.context.workloadPath, 'hold'];
  const hostBefore = settledPss() ?? 0;
  const errors = new Set<string>();
  const latencies: (number | undefined)[] = new Array(job.level).fill(undefined);
  const exits: Promise<number | null>[] = [];
  const handles: SubjectHandle[] = [];
  const started = performance.now();
  try {
    if (session.start) {
      const start = session.start;
      const launches = Array.from({ length: job.level }, async (_, index) => {
        const handle = await start(hold);
        handles.push(handle);
        exits[index] = handle.exited;
        await firstChunk(handle.stdout);
        latencies[index] = performance.now() - started;
      });
      const settled = await withDeadline(
        Promise.allSettled(launches),
        job.deadlineMs,
        `${job.level} launches`,
      ).catch((error: unknown) => {
        errors.add(describeError(error));
        return undefined;
      });
      for (const outcome of settled ?? [])
        if (outcome.status === 'rejected') errors.add(describeError(outcome.reason));
      const allStartedMs = latencies.every((latency) => latency !== undefined)
        ? Math.max(...(latencies as number[]))
        : undefined;
      // Everything the isolation holds while all payloads run, and what the launcher itself grew by.
      const { isolation } = isolationProcesses();
      const totalMemoryBytes =
        memoryByName(isolation).reduce((sum, entry) => sum + entry.pssBytes, 0) +
        Math.max(0, (settledPss() ?? hostBefore) - hostBefore);
      for (const handle of handles) handle.stdin?.end();
      const codes = await withDeadline(Promise.allSettled(exits), LAUNCH_DEADLINE_MS, 'the payloads').catch(
        (error: unknown) => {
          errors.add(describeError(error));
          return undefined;
        },
      );
      const succeeded = (codes ?? []).filter(
        (outcome, index) =>
          outcome?.status === 'fulfilled' && outcome.value === 0 && latencies[index] !== undefined,
      ).length;
      return {
        attempted: job.level,
        succeeded,
        ...(allStartedMs === undefined ? {} : { allStartedMs }),
        latenciesMs: latencies.filter((latency): latency is number => latency !== undefined),
        totalMemoryBytes,
        observed: 'first-byte',
        errors: [...errors].slice(0, 5),
      };
    }
    // No streaming API: each launch is observed at its run()'s completion (the payload reads its
    // closed stdin and exits at once), so the time is launch-to-exit under this load.
    const runs = Array.from({ length: job.level }, async (_, index) => {
      const outcome = await runToCompletion(session, hold);
      if (outcome.exitCode === 0 && outcome.stdout.startsWith('ready'))
        latencies[index] = performance.now() - started;
      else errors.add(`exit ${outcome.exitCode}: ${outcome.stdout.slice(0, 100)}`);
    });
    const settled = await withDeadline(
      Promise.allSettled(runs),
      job.deadlineMs,
      `${job.level} run() calls`,
    ).catch((error: unknown) => {
      errors.add(describeError(error));
      return undefined;
    });
    for (const outcome of settled ?? [])
      if (outcome.status === 'rejected') errors.add(describeError(outcome.reason));
    const done = latencies.filter((latency): latency is number => latency !== undefined);
    return {
      attempted: job.level,
      succeeded: done.length,
      ...(done.length === job.level ? { allStartedMs: Math.max(...done) } : {}),
      latenciesMs: done,
      observed: 'completion',
      errors: [...errors].slice(0, 5),
    };
  } finally {
    await Promise.all(handles.map((handle) => handle.kill()));
    await session.close();
  }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as WorkerJob;
  let outcome: WorkerReport;
  try {
    const report =
      job.kind === 'cold'
        ? await cold(job)
        : job.kind === 'memory'
          ? await memory(job)
          : job.kind === 'network'
            ? await networkJob(job)
            : job.kind === 'network-memory'
              ? await networkMemoryJob(job)
              : await concurrency(job);
    outcome = { ok: true, report };
  } catch (error) {
    outcome = { ok: false, error: describeError(error) };
  }
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
  // Libraries may keep handles open (proxies, native threads): the job is over either way.
  process.exit(0);
}

await main();
