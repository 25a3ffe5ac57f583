/**
 * The network figures of issue 4: what an allow-list costs a tier-process sandbox (namespace mode)
 * against the same client run bare. A loopback HTTP server runs in the orchestrator; the sandboxes,
 * and so the egress proxy, run in a worker process of their own, so that the proxy and the server
 * never share an event loop. The client is the workload program in both places; inside, the proxy
 * variables the tier sets send it through `CONNECT`, and the proxy's resolver maps the test name to
 * the loopback server, so nothing leaves the machine.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Capabilities, IsolationProvider } from '@bulkhead/core';
import { createStaticResolver, rulesForResolveEntries } from '@bulkhead/egress';
import { bulkheadSubject, networkReadiness } from './bulkhead-subjects.js';
import { NETWORK_SUBJECT } from './check.js';
import type { Bench } from './measurements.js';
import { isolationProcesses, memoryByName, settledPss } from './process-memory.js';
import type { NetworkFigure, SampleSet } from './result.js';
import { firstChunk, runToCompletion, SETTLE_MS, timeToExit, withDeadline } from './runner.js';
import { median, p95, ratio, summarize } from './statistics.js';
import { describeError, type SubjectContext, type SubjectHandle, type SubjectSession } from './subject.js';
import { bareSubject } from './subjects.js';
import { runWorker } from './worker-client.js';

/** The name the sandboxes ask for; only the proxy's resolver knows it. */
export const NETWORK_HOST = 'bench.test';
const LOOPBACK = '127.0.0.1';
/** Issue 4's download: 100 MiB. */
export const DOWNLOAD_BYTES = 100 * 1024 * 1024;
/** Issue 4's memory figure: the proxy's share with this many allow-listed sandboxes running. */
export const NETWORK_MEMORY_SANDBOXES = 50;
/** Small requests each launch makes for the latency figure (each a new connection). */
export const REQUESTS_PER_LAUNCH = 10;
/** A part of the measurement that fails this many times in a row is abandoned, with its errors. */
const FAILURES_BEFORE_GIVING_UP = 3;

export interface LoopbackServer {
  port: number;
  close(): Promise<void>;
}

/** On 127.0.0.1: `/bytes/N` streams N bytes, anything else answers `ok`; every response closes. */
export async function startLoopbackServer(): Promise<LoopbackServer> {
  const chunk = Buffer.alloc(1 << 20, 120);
  const server = createServer((request, response) => {
    const match = /^\/bytes\/(\d+)$/.exec(request.url ?? '');
    if (!match) {
      response.end('ok');
      return;
    }
    let remaining = Number(match[1]);
    response.writeHead(200, { 'content-length': remaining });
    const pump = () => {
      while (remaining > 0) {
        const part = remaining >= chunk.length ? chunk : chunk.subarray(0, remaining);
        remaining -= part.length;
        if (!response.write(part)) {
          response.once('drain', pump);
          return;
        }
      }
      response.end();
    };
    pump();
  });
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The client, identical bare and inside: LOOPBACK stands in for the name when no proxy is set. */
export function clientCommand(workloadPath: string, port: number, mode: 'latency' | 'download' | 'hold') {
  const target = [NETWORK_HOST, String(port)];
  if (mode === 'latency')
    return [workloadPath, 'http-latency', String(REQUESTS_PER_LAUNCH), ...target, '/small', LOOPBACK];
  if (mode === 'download')
    return [workloadPath, 'http-download', ...target, `/bytes/${DOWNLOAD_BYTES}`, LOOPBACK];
  return [workloadPath, 'http-hold', ...target, '/small', LOOPBACK];
}

/** The default capabilities with an allow-list of the test name and the loopback address it maps to. */
export function allowlistCapabilities(capabilities: Capabilities, port: number): Capabilities {
  // The proxy refuses an allowed name that resolves to loopback (DNS rebinding) unless the address
  // itself is allowed: exactly the rules the CLI's --resolve adds.
  const allow = [{ host: NETWORK_HOST, port }];
  const addresses = rulesForResolveEntries(allow, [`${NETWORK_HOST}:${LOOPBACK}`]);
  return { ...capabilities, network: { mode: 'allowlist', allow: [...allow, ...addresses] } };
}

/** tier-process in namespace mode with a proxy of its own whose resolver knows the test name. */
async function networkProvider(): Promise<IsolationProvider> {
  const { createProcessProvider } = await import('@bulkhead/tier-process');
  return createProcessProvider({
    mode: 'namespace',
    egress: { resolver: createStaticResolver([`${NETWORK_HOST}:${LOOPBACK}`]) },
  });
}

function networkSubject(
  mode: 'none' | 'allowlist',
  port: number,
  provider: () => Promise<IsolationProvider>,
) {
  return bulkheadSubject({
    id: `network-${mode}`,
    label: `tier-process, network ${mode}`,
    tier: 'process',
    packageName: '@bulkhead/tier-process',
    description: '',
    provider,
    ...(mode === 'allowlist'
      ? { capabilities: (capabilities: Capabilities) => allowlistCapabilities(capabilities, port) }
      : {}),
  });
}

export interface NetworkJob {
  kind: 'network';
  subject: string;
  context: SubjectContext;
  port: number;
  /** Launches per side for the latency figure (each makes REQUESTS_PER_LAUNCH requests). */
  rounds: number;
  warmup: number;
  downloads: number;
  launches: number;
}

export interface NetworkReport {
  latencyBareMs: number[];
  latencyAllowlistedMs: number[];
  downloadBareMs: number[];
  downloadAllowlistedMs: number[];
  /** The same download through the workload's bare relay (`tcp-relay`): the floor of any relay. */
  downloadRelayedMs?: number[];
  launchNoneMs: number[];
  launchAllowlistMs: number[];
  failures: string[];
}

export interface NetworkMemoryJob {
  kind: 'network-memory';
  subject: string;
  context: SubjectContext;
  port: number;
  mode: 'none' | 'allowlist';
  sandboxes: number;
}

export interface NetworkMemoryReport {
  sandboxes: number;
  launcherGrowthBytes: number;
  processesBytes: number;
  processes: { name: string; count: number; pssBytes: number }[];
}

/** Parses what the workload printed: one number of nanoseconds per line (its first field). */
export function parseNanosecondLines(stdout: string): number[] {
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => Number.parseInt(line.split(/\s+/)[0] ?? '', 10) / 1e6);
}

async function clientRun(session: SubjectSession, command: string[]): Promise<number[]> {
  const outcome = await withDeadline(runToCompletion(session, command), 120_000, command[1] ?? 'client');
  const values = parseNanosecondLines(outcome.stdout);
  if (outcome.exitCode !== 0 || values.length === 0 || values.some((value) => !Number.isFinite(value))) {
    throw new Error(
      `${command.slice(1, 3).join(' ')} exited ${outcome.exitCode}: ${outcome.stdout.slice(0, 200)}`,
    );
  }
  return values;
}

/**
 * Runs `sample` for each side in turn (A B A B ...), warm-up rounds discarded, and gives up on the
 * part after repeated failures, keeping the first errors.
 */
async function alternate(
  sides: { name: string; sample: () => Promise<number[]> }[],
  rounds: number,
  warmup: number,
  failures: string[],
): Promise<Map<string, number[]>> {
  const samples = new Map(sides.map((side) => [side.name, [] as number[]]));
  let consecutiveFailures = 0;
  for (let round = 0; round < warmup + rounds; round++) {
    for (const side of sides) {
      try {
        // As between launch samples: what the previous side left working in the background (its
        // next sandbox being prepared) lands in neither figure.
        await delay(SETTLE_MS);
        const values = await side.sample();
        consecutiveFailures = 0;
        if (round >= warmup) samples.get(side.name)!.push(...values);
      } catch (error) {
        consecutiveFailures += 1;
        if (failures.length < 5) failures.push(`${side.name}: ${describeError(error)}`);
        if (consecutiveFailures >= FAILURES_BEFORE_GIVING_UP) return samples;
      }
    }
  }
  return samples;
}

/** In a worker: latency, throughput and launch, the allow-listed sandbox against bare and `none`. */
export async function networkJob(job: NetworkJob): Promise<NetworkReport> {
  const provider = await networkProvider();
  // One provider, so one proxy, for both: as in a harness that runs sandboxes with and without lists.
  const shared = async () => provider;
  const bare = await bareSubject.prepare(job.context);
  const none = await networkSubject('none', job.port, shared).prepare(job.context);
  const allowlist = await networkSubject('allowlist', job.port, shared).prepare(job.context);
  const failures: string[] = [];
  try {
    const latencyCommand = clientCommand(job.context.workloadPath, job.port, 'latency');
    const latency = await alternate(
      [
        { name: 'bare', sample: () => clientRun(bare, latencyCommand) },
        { name: 'allow-listed', sample: () => clientRun(allowlist, latencyCommand) },
      ],
      job.rounds,
      job.warmup,
      failures,
    );
    const downloadCommand = clientCommand(job.context.workloadPath, job.port, 'download');
    const relay = await startBareRelay(job.context.workloadPath, job.port).catch((error: unknown) => {
      failures.push(`bare relay: ${describeError(error)}`);
      return undefined;
    });
    const download = await alternate(
      [
        { name: 'bare download', sample: () => clientRun(bare, downloadCommand) },
        { name: 'allow-listed download', sample: () => clientRun(allowlist, downloadCommand) },
        ...(relay
          ? [
              {
                name: 'relayed download',
                sample: () =>
                  clientRun(bare, clientCommand(job.context.workloadPath, relay.port, 'download')),
              },
            ]
          : []),
      ],
      job.downloads,
      1,
      failures,
    ).finally(() => relay?.close());
    const launch = await alternate(
      [
        { name: 'launch none', sample: async () => [await timeToExit(none, ['/bin/true'])] },
        { name: 'launch allow-list', sample: async () => [await timeToExit(allowlist, ['/bin/true'])] },
      ],
      job.launches,
      job.warmup,
      failures,
    );
    return {
      latencyBareMs: latency.get('bare')!,
      latencyAllowlistedMs: latency.get('allow-listed')!,
      downloadBareMs: download.get('bare download')!,
      downloadAllowlistedMs: download.get('allow-listed download')!,
      ...(relay ? { downloadRelayedMs: download.get('relayed download')! } : {}),
      launchNoneMs: launch.get('launch none')!,
      launchAllowlistMs: launch.get('launch allow-list')!,
      failures,
    };
  } finally {
    await Promise.all([bare.close(), none.close(), allowlist.close()]);
  }
}

/**
 * The workload's `tcp-relay` on an ephemeral loopback port, relaying to the server: a client that
 * connects to it directly downloads through one relay process and nothing else.
 */
async function startBareRelay(workloadPath: string, port: number): Promise<{ port: number; close(): void }> {
  const child = spawn(workloadPath, ['tcp-relay', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const close = () => {
    child.stdin.end();
    child.kill('SIGKILL');
  };
  try {
    const line = await withDeadline(
      new Promise<string>((resolve, reject) => {
        child.once('error', reject);
        child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        child.once('exit', (code) => reject(new Error(`tcp-relay exited ${code} before it was ready`)));
      }),
      10_000,
      'tcp-relay',
    );
    const relayPort = Number(/^ready (\d+)/.exec(line)?.[1]);
    if (!Number.isInteger(relayPort)) throw new Error(`tcp-relay said ${JSON.stringify(line)}`);
    return { port: relayPort, close };
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * In a fresh worker: N sandboxes running at once, each after one request through the proxy
 * (allow-list) or without network (none). The launcher's growth holds the proxy and its channels.
 */
export async function networkMemoryJob(job: NetworkMemoryJob): Promise<NetworkMemoryReport> {
  const provider = await networkProvider();
  const shared = async () => provider;
  const session = await networkSubject(job.mode, job.port, shared).prepare(job.context);
  // Both modes first launch one network-none sandbox, so that the library, the shim and the probe
  // are loaded alike before the reading starts: the growth left is what the N sandboxes hold, the
  // proxy included (it starts with the first channel).
  const warmup = await networkSubject('none', job.port, shared).prepare(job.context);
  await timeToExit(warmup, ['/bin/true']);
  await warmup.close();
  const hostBefore = settledPss() ?? 0;
  const handles: SubjectHandle[] = [];
  const command =
    job.mode === 'allowlist'
      ? clientCommand(job.context.workloadPath, job.port, 'hold')
      : [job.context.workloadPath, 'hold'];
  try {
    for (let index = 0; index < job.sandboxes; index++) {
      const handle = await session.start!(command);
      handles.push(handle);
      // `ready` comes after the request's response: every channel has carried a connection.
      await withDeadline(firstChunk(handle.stdout), 60_000, 'the payload saying it made its request');
    }
    // Let lazily started helpers settle before reading.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const processes = memoryByName(isolationProcesses().isolation);
    return {
      sandboxes: job.sandboxes,
      launcherGrowthBytes: Math.max(0, (settledPss() ?? hostBefore) - hostBefore),
      processesBytes: processes.reduce((sum, entry) => sum + entry.pssBytes, 0),
      processes,
    };
  } finally {
    await Promise.all(handles.map((handle) => handle.kill()));
    await session.close();
  }
}

function sampleSet(samples: number[]): SampleSet | undefined {
  return samples.length === 0 ? undefined : { unit: 'ms', samples, summary: summarize(samples) };
}

/** The figure from the workers' reports: differences and ratios against the bare side. */
export function networkFigure(
  report: NetworkReport,
  memory: { none?: NetworkMemoryReport; allowlist?: NetworkMemoryReport },
  memoryFailure?: string,
): NetworkFigure {
  const figure: NetworkFigure = { status: 'measured', failures: [...report.failures] };
  const latencyBare = sampleSet(report.latencyBareMs);
  const latencyAllowlisted = sampleSet(report.latencyAllowlistedMs);
  if (latencyBare && latencyAllowlisted) {
    figure.latency = {
      requestsPerLaunch: REQUESTS_PER_LAUNCH,
      bare: latencyBare,
      allowlisted: latencyAllowlisted,
      addedMedianMs: median(report.latencyAllowlistedMs) - median(report.latencyBareMs),
      addedP95Ms: p95(report.latencyAllowlistedMs) - p95(report.latencyBareMs),
    };
  }
  const downloadBare = sampleSet(report.downloadBareMs);
  const downloadAllowlisted = sampleSet(report.downloadAllowlistedMs);
  const throughputRatio = ratio(downloadBare?.summary.median, downloadAllowlisted?.summary.median);
  if (downloadBare && downloadAllowlisted && throughputRatio !== undefined) {
    const relayed = report.downloadRelayedMs ? sampleSet(report.downloadRelayedMs) : undefined;
    const relayedRatio = ratio(downloadBare.summary.median, relayed?.summary.median);
    figure.throughput = {
      bytes: DOWNLOAD_BYTES,
      bare: downloadBare,
      allowlisted: downloadAllowlisted,
      ratio: throughputRatio,
      ...(relayed && relayedRatio !== undefined ? { relayed, relayedRatio } : {}),
    };
  }
  const launchNone = sampleSet(report.launchNoneMs);
  const launchAllowlist = sampleSet(report.launchAllowlistMs);
  if (launchNone && launchAllowlist) {
    figure.launch = {
      none: launchNone,
      allowlist: launchAllowlist,
      addedMs: launchAllowlist.summary.median - launchNone.summary.median,
    };
  }
  if (memory.none && memory.allowlist) {
    figure.memory = {
      sandboxes: memory.allowlist.sandboxes,
      launcherGrowthNone: memory.none.launcherGrowthBytes,
      launcherGrowthAllowlist: memory.allowlist.launcherGrowthBytes,
      proxyBytes: memory.allowlist.launcherGrowthBytes - memory.none.launcherGrowthBytes,
      processesNone: memory.none.processesBytes,
      processesAllowlist: memory.allowlist.processesBytes,
      processes: memory.allowlist.processes,
    };
  }
  const missing = [
    figure.latency ? undefined : 'latency',
    figure.throughput ? undefined : 'throughput',
    figure.launch ? undefined : 'launch',
    figure.memory ? undefined : 'memory',
  ].filter((part): part is string => part !== undefined);
  if (missing.length > 0) {
    const why = [...(figure.failures ?? []), ...(memoryFailure ? [memoryFailure] : [])][0] ?? 'no samples';
    figure.reason = `not measured: ${missing.join(', ')} (${why})`;
    if (missing.length === 4) figure.status = 'not-measured';
  }
  return figure;
}

/** The orchestrator's side: readiness, the loopback server, then the workers. */
export async function measureNetwork(bench: Bench): Promise<NetworkFigure> {
  const tiers = bench.options.tiers;
  if (tiers !== undefined && !tiers.includes('process')) {
    return { status: 'not-measured', reason: 'the figures are of tier-process, which --tier left out' };
  }
  const readiness = await networkReadiness();
  if (!readiness.ready) return { status: 'not-measured', reason: readiness.reason };
  const server = await startLoopbackServer();
  const base = { subject: NETWORK_SUBJECT, context: bench.context, port: server.port };
  try {
    bench.progress.update('network', 'latency, throughput and launch', 0, 3);
    let report: NetworkReport;
    try {
      report = await runWorker<NetworkReport>(
        {
          kind: 'network',
          ...base,
          rounds: bench.options.runs,
          warmup: bench.options.warmup,
          // A download takes tens of milliseconds: enough of them that one slow one moves no median.
          downloads: bench.options.quick ? 7 : 9,
          launches: bench.options.runs,
        },
        { deadlineMs: 600_000 },
      );
    } catch (error) {
      return { status: 'not-measured', reason: describeError(error) };
    }
    const memory: { none?: NetworkMemoryReport; allowlist?: NetworkMemoryReport } = {};
    let memoryFailure: string | undefined;
    for (const [index, mode] of (['none', 'allowlist'] as const).entries()) {
      bench.progress.update(
        'network',
        `memory, ${NETWORK_MEMORY_SANDBOXES} sandboxes, ${mode}`,
        index + 1,
        3,
      );
      try {
        memory[mode] = await runWorker<NetworkMemoryReport>(
          { kind: 'network-memory', ...base, mode, sandboxes: NETWORK_MEMORY_SANDBOXES },
          { deadlineMs: 300_000 },
        );
      } catch (error) {
        memoryFailure ??= `memory, ${mode}: ${describeError(error)}`;
      }
    }
    bench.progress.update('network', 'done', 3, 3);
    return networkFigure(report, memory, memoryFailure);
  } finally {
    await server.close();
  }
}
