import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { checkResult } from './check.js';
import { machineFacts } from './machine.js';
import {
  type Bench,
  measureCold,
  measureConcurrency,
  measureCpu,
  measureLaunch,
  measureMemory,
  type PreparedSubject,
} from './measurements.js';
import { measureNetwork } from './network.js';
import { type BenchOptions, parseBenchOptions, USAGE } from './options.js';
import { readResult, updateReadme, writeResult } from './output.js';
import { Progress } from './progress.js';
import { renderMarkdown } from './report-markdown.js';
import { type BenchResult, RESULT_SCHEMA_VERSION, type SubjectRecord } from './result.js';
import { describeError, type Subject, type SubjectContext } from './subject.js';
import { allSubjects, selectSubjects } from './subjects.js';
import { buildWorkload, packageDirectory } from './workload.js';

const repositoryRoot = path.resolve(packageDirectory, '..');

/** Each warning once: the none tier warns on every launch, by design, and a benchmark launches hundreds. */
function printWarningsOnce(): void {
  const seen = new Set<string>();
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    const key = `${(warning as { code?: string }).code ?? warning.name}:${warning.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    process.stderr.write(`(warning, shown once) ${warning.name}: ${warning.message}\n`);
  });
}

async function prepareSubjects(subjects: Subject[], context: SubjectContext, progress: Progress) {
  const records: SubjectRecord[] = [];
  const prepared: PreparedSubject[] = [];
  for (const [index, subject] of subjects.entries()) {
    progress.update('prepare', subject.label, index, subjects.length);
    const version = await subject.version(context).catch(() => undefined);
    const record: SubjectRecord = {
      id: subject.id,
      label: subject.label,
      family: subject.family,
      group: subject.group,
      scope: subject.scope,
      description: subject.description,
      ...(version === undefined ? {} : { version }),
      ...(subject.limits === undefined ? {} : { limits: subject.limits }),
      available: true,
    };
    const exemption = subject.targetExemption?.();
    if (exemption !== undefined) record.targetExemption = exemption;
    try {
      prepared.push({ subject, session: await subject.prepare(context) });
    } catch (error) {
      record.available = false;
      record.reason = describeError(error);
      progress.log(`${subject.label}: cannot run here: ${record.reason}`);
    }
    records.push(record);
  }
  progress.update('prepare', 'done', subjects.length, subjects.length);
  return { records, prepared };
}

async function runBench(options: BenchOptions, progress: Progress): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const workloadPath = await buildWorkload();
  const context: SubjectContext = {
    repositoryRoot,
    workloadPath,
    workloadDirectory: path.dirname(workloadPath),
  };
  const subjects = selectSubjects(allSubjects(), {
    ...(options.tiers === undefined ? {} : { tiers: options.tiers }),
    ...(options.peers === undefined ? {} : { peers: options.peers }),
  });
  const { records, prepared } = await prepareSubjects(subjects, context, progress);
  const versions = Object.fromEntries(
    records.flatMap((record) => (record.version ? [[record.id, record.version]] : [])),
  );
  const machine = await machineFacts(workloadPath, versions);
  const bench: Bench = { options, context, progress, prepared, omissions: [] };
  const available = subjects.filter(
    (subject) => records.find((record) => record.id === subject.id)?.available,
  );
  const wants = (measurement: BenchOptions['measurements'][number]) =>
    options.measurements.includes(measurement);

  const result: BenchResult = {
    schemaVersion: RESULT_SCHEMA_VERSION,
    startedAt,
    finishedAt: startedAt,
    options: {
      quick: options.quick,
      runs: options.runs,
      warmup: options.warmup,
      coldRuns: options.coldRuns,
      cpuRuns: options.cpuRuns,
      memorySandboxes: options.memorySandboxes,
      concurrencyLevels: options.concurrencyLevels,
      measurements: options.measurements,
      cpuIterations: options.cpuIterations,
      syscallIterations: options.syscallIterations,
    },
    machine,
    subjects: records,
    launch: [],
    cold: [],
    memory: [],
    cpu: [],
    concurrency: [],
    network: { status: 'not-measured', reason: 'not selected (--only)' },
    omissions: bench.omissions,
  };
  try {
    if (wants('launch')) result.launch = await measureLaunch(bench);
    if (wants('cpu')) result.cpu = await measureCpu(bench);
  } finally {
    // Close in-process sessions before the workers start, so the orchestrator's proxies do not
    // compete with them.
    for (const { session } of prepared) await session.close().catch(() => {});
  }
  if (wants('network')) result.network = await measureNetwork(bench);
  if (wants('cold')) result.cold = await measureCold(bench, available);
  if (wants('memory')) result.memory = await measureMemory(bench, available);
  if (wants('concurrency')) result.concurrency = await measureConcurrency(bench, available);
  result.finishedAt = new Date().toISOString();
  progress.done();
  return result;
}

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  printWarningsOnce();
  const progress = new Progress();
  const resultsDirectory = path.resolve(options.outputDirectory ?? path.join(packageDirectory, 'results'));
  let result: BenchResult;
  if (options.fromPath) {
    result = await readResult(options.fromPath);
  } else {
    result = await runBench(options, progress);
  }
  // A result read back is rendered again too, so a change of the report applies to old results.
  const written = await writeResult(result, resultsDirectory);
  progress.log(`wrote ${path.relative(process.cwd(), written.json)}, .md and .svg (and latest.*)`);
  if (!options.fromPath) process.stdout.write(renderMarkdown(result));
  const baselinePath = path.resolve(options.baselinePath ?? path.join(packageDirectory, 'baseline.json'));
  if (options.writeBaseline) {
    await writeFile(baselinePath, `${JSON.stringify(result, null, 2)}\n`);
    progress.log(`wrote the baseline ${path.relative(process.cwd(), baselinePath)}`);
  }
  if (options.updateReadme) {
    const chart = path.relative(packageDirectory, path.join(resultsDirectory, 'latest.svg'));
    await updateReadme(path.join(packageDirectory, 'README.md'), result, chart);
    progress.log('updated the results section of benchmarks/README.md');
  }
  if (options.check) {
    const baseline =
      existsSync(baselinePath) && !options.writeBaseline ? await readResult(baselinePath) : undefined;
    const report = checkResult(result, baseline);
    for (const finding of report.findings) {
      process.stderr.write(`${finding.level.toUpperCase().padEnd(4)} ${finding.message}\n`);
    }
    process.stderr.write(report.failed ? 'check: FAILED\n' : 'check: passed\n');
    return report.failed ? 1 : 0;
  }
  return 0;
}

// A peer's library (sandbox-runtime) answers SIGTERM with a clean-up of its own and no exit, which
// would leave the run going: stop on Ctrl-C or a kill like any command (exit hooks still clean up).
for (const [signal, status] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.on(signal, () => process.exit(status));
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: ${BulkheadError.isInstance(error) ? error.message : describeError(error)}\n`);
  if (BulkheadError.isInstance(error) && error.fix) process.stderr.write(`fix: ${error.fix}\n`);
  process.exitCode = 2;
}
// Peers' libraries keep native threads and proxy sockets open; the run is over.
setImmediate(() => process.exit());
