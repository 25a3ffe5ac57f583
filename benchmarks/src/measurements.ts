import { setTimeout as delay } from 'node:timers/promises';
import type { BenchOptions } from './options.js';
import { createMeasurementCgroup } from './process-memory.js';
import type { Progress } from './progress.js';
import type {
  ColdFigure,
  ConcurrencyFigure,
  CpuFigure,
  LaunchFigure,
  Measurement,
  MemoryFigure,
  Omission,
  SampleSet,
} from './result.js';
import { SETTLE_MS, selfTimedRun, timeToExit, timeToFirstByte } from './runner.js';
import { interleave, median, ratio, summarize } from './statistics.js';
import { describeError, type Subject, type SubjectContext, type SubjectSession } from './subject.js';
import type { ColdReport, ConcurrencyReport, MemoryReport } from './worker.js';
import { runWorker } from './worker-client.js';

/** What every measurement needs: the options, the subjects prepared in this process, and a place for omissions. */
export interface Bench {
  options: BenchOptions;
  context: SubjectContext;
  progress: Progress;
  /** Subjects that prepared in this process, the bare baseline first. */
  prepared: PreparedSubject[];
  omissions: Omission[];
}

export interface PreparedSubject {
  subject: Subject;
  session: SubjectSession;
}

/** A subject that fails this many times in a row without a success is dropped from the measurement. */
const FAILURES_BEFORE_GIVING_UP = 3;

function sampleSet(unit: SampleSet['unit'], samples: number[]): SampleSet | undefined {
  return samples.length === 0 ? undefined : { unit, samples, summary: summarize(samples) };
}

function omit(bench: Bench, measurement: Measurement, subject: string, reason: string): void {
  bench.omissions.push({ measurement, subject, reason });
}

interface Tally {
  samples: number[];
  failures: string[];
  consecutiveFailures: number;
  gaveUp: boolean;
}

/**
 * Runs `sample` for every subject in round-robin order (A B C A B C ...), warm-up rounds first and
 * discarded, and keeps each subject's samples and failures.
 */
async function interleaved(
  bench: Bench,
  section: string,
  subjects: PreparedSubject[],
  runs: number,
  warmup: number,
  sample: (prepared: PreparedSubject, round: number) => Promise<number>,
): Promise<Map<string, Tally>> {
  const tallies = new Map<string, Tally>(
    subjects.map(({ subject }) => [
      subject.id,
      { samples: [], failures: [], consecutiveFailures: 0, gaveUp: false },
    ]),
  );
  const schedule = interleave(subjects, runs, warmup);
  for (const [index, { round, warmup: isWarmup, subject: prepared }] of schedule.entries()) {
    bench.progress.update(section, prepared.subject.label, index, schedule.length);
    const tally = tallies.get(prepared.subject.id)!;
    if (tally.gaveUp) continue;
    // A slow subject takes part in the first rounds only, still interleaved with the others.
    const limits = prepared.subject.limits;
    if (isWarmup && round >= Math.min(warmup, limits?.warmup ?? warmup)) continue;
    if (!isWarmup && round - warmup >= Math.min(runs, limits?.runs ?? runs)) continue;
    try {
      // What the previous sample left working in the background (a tier preparing its next sandbox)
      // must not land in this one: an agent's tool calls are seconds apart, not back to back.
      await delay(SETTLE_MS);
      const value = await sample(prepared, round);
      tally.consecutiveFailures = 0;
      if (!isWarmup) tally.samples.push(value);
    } catch (error) {
      tally.consecutiveFailures += 1;
      if (tally.failures.length < 5) tally.failures.push(describeError(error));
      if (tally.consecutiveFailures >= FAILURES_BEFORE_GIVING_UP && tally.samples.length === 0)
        tally.gaveUp = true;
    }
  }
  bench.progress.update(section, 'done', schedule.length, schedule.length);
  return tallies;
}

/** Warm launch: to exit of /bin/true, and to the first stdout byte of /bin/echo, in this process. */
export async function measureLaunch(bench: Bench): Promise<LaunchFigure[]> {
  const { runs, warmup } = bench.options;
  const exits = await interleaved(bench, 'launch to exit', bench.prepared, runs, warmup, ({ session }) =>
    timeToExit(session, ['/bin/true']),
  );
  const streaming = bench.prepared.filter(({ subject, session }) => {
    if (session.start) return true;
    omit(
      bench,
      'launch',
      subject.id,
      `first byte not measurable: ${session.streamingUnavailable ?? 'no streaming API'}`,
    );
    return false;
  });
  const firstBytes = await interleaved(
    bench,
    'launch to first byte',
    streaming,
    runs,
    warmup,
    ({ session }) => timeToFirstByte(session, ['/bin/echo', 'bulkhead']),
  );
  for (const { subject } of bench.prepared) {
    const exit = exits.get(subject.id)!;
    const firstByte = firstBytes.get(subject.id);
    if (exit.samples.length === 0)
      omit(bench, 'launch', subject.id, `every launch failed: ${exit.failures[0] ?? 'no reason'}`);
    if (firstByte && firstByte.samples.length === 0) {
      omit(
        bench,
        'launch',
        subject.id,
        `every first-byte launch failed: ${firstByte.failures[0] ?? 'no reason'}`,
      );
    }
  }
  const bareExit = exits.get('bare')?.samples;
  const bareFirstByte = firstBytes.get('bare')?.samples;
  return bench.prepared.map(({ subject }) => {
    const exit = exits.get(subject.id)!;
    const firstByte = firstBytes.get(subject.id);
    const exitSet = sampleSet('ms', exit.samples);
    const firstByteSet = firstByte && sampleSet('ms', firstByte.samples);
    const exitRatio =
      exitSet && bareExit?.length ? ratio(exitSet.summary.median, median(bareExit)) : undefined;
    const firstByteRatio =
      firstByteSet && bareFirstByte?.length
        ? ratio(firstByteSet.summary.median, median(bareFirstByte))
        : undefined;
    return {
      subject: subject.id,
      ...(exitSet ? { exit: exitSet } : {}),
      ...(exitRatio === undefined ? {} : { exitRatio }),
      ...(firstByteSet ? { firstByte: firstByteSet } : {}),
      ...(firstByteRatio === undefined ? {} : { firstByteRatio }),
      failures: [...exit.failures, ...(firstByte?.failures ?? [])],
    };
  });
}

/**
 * How many files the syscall-heavy job holds open in a round (see `workload syscalls ... HELD`):
 * enough different counts to move the kernel's per-CPU memory-charge cache across a whole page.
 */
export const SYSCALL_JOB_HELD_FILES_CYCLE = 16;

/**
 * The syscall-heavy job of one round; both sides of a round run the same command. The held-file
 * count changes with the round, so that a sandbox, whose fresh cgroup would otherwise draw the same
 * start of the cgroup v1 charge cache in every run, draws a new one each round as a bare process in
 * the caller's busy cgroup does: the figure is then what the sandbox adds, not one draw of where the
 * kernel's cache happened to sit.
 */
export function syscallJobCommand(workload: string, iterations: number, round: number): string[] {
  const held = round % SYSCALL_JOB_HELD_FILES_CYCLE;
  return [workload, 'syscalls', String(iterations), workload, String(held)];
}

/** CPU overhead: the self-timed workload inside each sandbox, alternating with the same job bare. */
export async function measureCpu(bench: Bench): Promise<CpuFigure[]> {
  const { cpuRuns, cpuIterations, syscallIterations } = bench.options;
  const bare = bench.prepared.find(({ subject }) => subject.id === 'bare');
  if (!bare) return [];
  const workload = bench.context.workloadPath;
  const jobs = [
    { job: 'cpu-bound' as const, command: () => [workload, 'cpu', String(cpuIterations)] },
    {
      job: 'syscall-heavy' as const,
      command: (round: number) => syscallJobCommand(workload, syscallIterations, round),
    },
  ];
  const figures: CpuFigure[] = [];
  for (const prepared of bench.prepared) {
    if (prepared.subject.id === 'bare') continue;
    // A whole-process row runs its payload in the same sandbox as its SDK row: same CPU figure.
    if (prepared.subject.scope === 'whole-process') continue;
    // A slow subject runs a smaller job, inside and outside alike, so the ratio still compares like with like.
    const divisor = prepared.subject.limits?.cpuWorkDivisor ?? 1;
    for (const { job, command: fullCommand } of jobs) {
      const command = (round: number) =>
        fullCommand(round).map((word, position) =>
          position === 2 && divisor > 1 ? String(Math.max(1, Math.round(Number(word) / divisor))) : word,
        );
      // Pairs (outside, inside) alternate, so drift of the machine hits both sides alike.
      const pair: PreparedSubject[] = [bare, prepared];
      const tallies = await interleaved(
        bench,
        `${job} ${prepared.subject.label}`,
        pair,
        cpuRuns,
        1,
        ({ session }, round) => selfTimedRun(session, command(round)),
      );
      const inside = sampleSet('ms', tallies.get(prepared.subject.id)!.samples);
      const outside = sampleSet('ms', tallies.get('bare')!.samples);
      if (!inside || !outside) {
        omit(
          bench,
          'cpu',
          prepared.subject.id,
          `${job}: ${tallies.get(prepared.subject.id)!.failures[0] ?? 'no samples'}`,
        );
        continue;
      }
      // Each round ran outside then inside back to back: the spread of their ratios says how finely
      // this machine can tell the two apart right now.
      const pairs = inside.samples
        .slice(0, outside.samples.length)
        .map((value, index) => value / outside.samples[index]!);
      figures.push({
        subject: prepared.subject.id,
        job,
        inside,
        outside,
        ratio: inside.summary.median / outside.summary.median,
        ...(pairs.length > 0 ? { pairRatios: summarize(pairs) } : {}),
      });
    }
  }
  return figures;
}

/** Cold launch: a fresh Node per sample; the first API call to the exit of the first /bin/true. */
export async function measureCold(bench: Bench, subjects: Subject[]): Promise<ColdFigure[]> {
  const inProcess = subjects.filter((subject) => {
    if (subject.scope === 'in-process') return true;
    // Every launch of a whole-process row starts a fresh process: its launch figure is cold already.
    return false;
  });
  const prepareSamples = new Map<string, number[]>();
  const firstLaunchSamples = new Map<string, number[]>();
  const tallies = await interleaved(
    bench,
    'cold launch',
    inProcess.map((subject) => ({ subject, session: { close: async () => {} } })),
    bench.options.coldRuns,
    0,
    async ({ subject }) => {
      const report = await runWorker<ColdReport>(
        { kind: 'cold', subject: subject.id, context: bench.context },
        { deadlineMs: 120_000 },
      );
      prepareSamples.set(subject.id, [...(prepareSamples.get(subject.id) ?? []), report.prepareMs]);
      firstLaunchSamples.set(subject.id, [
        ...(firstLaunchSamples.get(subject.id) ?? []),
        report.launchMs - report.prepareMs,
      ]);
      return report.launchMs;
    },
  );
  const bare = tallies.get('bare')?.samples;
  const figures: ColdFigure[] = [];
  for (const subject of inProcess) {
    const tally = tallies.get(subject.id)!;
    const launch = sampleSet('ms', tally.samples);
    const prepare = sampleSet('ms', prepareSamples.get(subject.id) ?? []);
    const firstLaunch = sampleSet('ms', firstLaunchSamples.get(subject.id) ?? []);
    if (!launch || !prepare || !firstLaunch) {
      omit(bench, 'cold', subject.id, tally.failures[0] ?? 'no samples');
      continue;
    }
    const coldRatio = bare?.length ? ratio(launch.summary.median, median(bare)) : undefined;
    figures.push({
      subject: subject.id,
      launch,
      prepare,
      firstLaunch,
      ...(coldRatio === undefined ? {} : { ratio: coldRatio }),
      failures: tally.failures,
    });
  }
  return figures;
}

/** Memory per sandbox: a fresh Node launches K idle `sleep`s; the processes the isolation added are weighed. */
export async function measureMemory(bench: Bench, subjects: Subject[]): Promise<MemoryFigure[]> {
  const sandboxes = bench.options.memorySandboxes;
  const reports = new Map<string, MemoryReport>();
  const leftovers = new Map<string, string[]>();
  let cgroupReason: string | undefined;
  for (const [index, subject] of subjects.entries()) {
    bench.progress.update('memory', subject.label, index, subjects.length);
    const cgroup = await createMeasurementCgroup();
    if (typeof cgroup === 'string') cgroupReason = cgroup;
    try {
      const report = await runWorker<MemoryReport>(
        {
          kind: 'memory',
          subject: subject.id,
          context: bench.context,
          sandboxes,
          ...(typeof cgroup === 'string' ? {} : { cgroup: cgroup.directory }),
        },
        {
          deadlineMs: 120_000,
          onLoaded: async (pid) => {
            if (typeof cgroup !== 'string') await cgroup.add(pid);
          },
        },
      );
      reports.set(subject.id, report);
    } catch (error) {
      omit(bench, 'memory', subject.id, describeError(error));
    }
    try {
      if (typeof cgroup !== 'string') {
        // The worker disposed every sandbox and exited: whatever still runs in its cgroup outlived them.
        await new Promise((resolve) => setTimeout(resolve, 200));
        const remaining = await cgroup.remaining();
        if (remaining.length > 0)
          leftovers.set(
            subject.id,
            remaining.map((entry) => entry.name),
          );
      }
    } finally {
      if (typeof cgroup !== 'string') await cgroup.remove();
    }
  }
  bench.progress.update('memory', 'done', subjects.length, subjects.length);
  if (cgroupReason) omit(bench, 'memory', '*', `charged and kernel memory not measured: ${cgroupReason}`);
  const bare = reports.get('bare');
  const figures: MemoryFigure[] = [];
  for (const subject of subjects) {
    const report = reports.get(subject.id);
    if (!report) continue;
    const processesPerSandbox = report.processesBytes / report.sandboxes;
    const perSandbox = (report.processesBytes + report.hostGrowthBytes) / report.sandboxes;
    const payloadPerSandbox = report.payloadBytes / report.sandboxes;
    const barePayload = bare ? bare.payloadBytes / bare.sandboxes : undefined;
    const memoryRatio = ratio(processesPerSandbox + payloadPerSandbox, barePayload);
    const figure: MemoryFigure = {
      subject: subject.id,
      sandboxes: report.sandboxes,
      processesPerSandbox,
      hostGrowth: report.hostGrowthBytes,
      perSandbox,
      ...(memoryRatio === undefined ? {} : { ratio: memoryRatio }),
      processes: report.processes,
      payloadPerSandbox,
    };
    if (report.chargedBytes !== undefined && bare?.chargedBytes !== undefined) {
      figure.chargedPerSandbox = (report.chargedBytes - bare.chargedBytes) / report.sandboxes;
    }
    if (report.kernelBytes !== undefined && bare?.kernelBytes !== undefined) {
      figure.kernelPerSandbox = (report.kernelBytes - bare.kernelBytes) / report.sandboxes;
    }
    const left = leftovers.get(subject.id);
    if (left) figure.leftoverProcesses = left;
    figures.push(figure);
  }
  return figures;
}

/** Many sandboxes at once from one fresh Node process: success, time until all ran, memory, latency under load. */
export async function measureConcurrency(bench: Bench, subjects: Subject[]): Promise<ConcurrencyFigure[]> {
  const figures: ConcurrencyFigure[] = [];
  const inProcess = subjects.filter((subject) => {
    if (subject.scope === 'in-process') return true;
    // Concurrency is many sandboxes from one process, through an SDK.
    return false;
  });
  const jobs = bench.options.concurrencyLevels.flatMap((level) =>
    inProcess
      .filter((subject) => level <= (subject.limits?.maxConcurrency ?? Number.POSITIVE_INFINITY))
      .map((subject) => ({ level, subject })),
  );
  for (const [index, { level, subject }] of jobs.entries()) {
    bench.progress.update('concurrency', `${subject.label} x${level}`, index, jobs.length);
    try {
      const report = await runWorker<ConcurrencyReport>(
        { kind: 'concurrency', subject: subject.id, context: bench.context, level, deadlineMs: 30_000 },
        { deadlineMs: 180_000 },
      );
      const launch = sampleSet('ms', report.latenciesMs);
      figures.push({
        subject: subject.id,
        level,
        attempted: report.attempted,
        succeeded: report.succeeded,
        ...(report.allStartedMs === undefined ? {} : { allStartedMs: report.allStartedMs }),
        ...(launch ? { launch } : {}),
        ...(report.totalMemoryBytes === undefined ? {} : { totalMemoryBytes: report.totalMemoryBytes }),
        observed: report.observed,
        errors: report.errors,
      });
    } catch (error) {
      omit(bench, 'concurrency', subject.id, `x${level}: ${describeError(error)}`);
    }
  }
  bench.progress.update('concurrency', 'done', jobs.length, jobs.length);
  // Each level's ratio divides by the bare spawn at the same level, measured in the same run.
  for (const figure of figures) {
    const bare = figures.find(
      (candidate) => candidate.subject === 'bare' && candidate.level === figure.level,
    );
    const allStartedRatio = ratio(figure.allStartedMs, bare?.allStartedMs);
    if (allStartedRatio !== undefined) figure.allStartedRatio = allStartedRatio;
  }
  return figures;
}
