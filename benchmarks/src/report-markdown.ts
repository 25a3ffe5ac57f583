import { NETWORK_TARGETS } from './check.js';
import { formatBytes, formatMilliseconds, formatRatio } from './format.js';
import type { BenchResult, SampleSet, SubjectRecord } from './result.js';
import { cpuFigureNoisy, PAIR_RATIO_IQR_LIMIT } from './statistics.js';

const NOISY = '⚠';

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
  ].join('\n');
}

function median(set: SampleSet | undefined): string {
  if (!set) return '–';
  return `${formatMilliseconds(set.summary.median)}${set.summary.noisy ? ` ${NOISY}` : ''}`;
}

function range(set: SampleSet | undefined): string {
  return set ? `${formatMilliseconds(set.summary.min)}–${formatMilliseconds(set.summary.max)}` : '–';
}

function labelOf(result: BenchResult, id: string): string {
  return result.subjects.find((subject) => subject.id === id)?.label ?? id;
}

function machineLine(result: BenchResult): string {
  const machine = result.machine;
  return [
    `**Machine:** ${machine.cpuModel}, ${machine.cores} cores, ${formatBytes(machine.memoryBytes)} RAM; ${machine.os}, kernel ${machine.kernel}`,
    `cgroup ${machine.cgroup}; Landlock ABI ${machine.landlockAbi ?? 'unknown'}; KVM: ${machine.kvm}; Node ${machine.node}`,
    `load average at start ${machine.loadAverage.join(' / ')}`,
  ].join('; ');
}

function runLine(result: BenchResult): string {
  const options = result.options;
  return `**Run:** ${options.quick ? 'quick (CI)' : 'full'} mode, ${result.startedAt}; warm launch ${options.runs} counted runs after ${options.warmup} warm-up, interleaved across subjects; cold ${options.coldRuns} fresh processes per subject; CPU ${options.cpuRuns} alternating pairs; memory with ${options.memorySandboxes} idle sandboxes per subject.`;
}

/** The Markdown report of a result: what the README shows and what results/<date>-<host>.md holds. */
export function renderMarkdown(result: BenchResult, options: { chartPath?: string } = {}): string {
  const sections: string[] = [];
  sections.push(`${machineLine(result)}\n\n${runLine(result)}`);
  if (options.chartPath) sections.push(`![Launch and memory per subject, log scale](${options.chartPath})`);

  if (result.launch.length > 0 || result.cold.length > 0) {
    const launches = new Map(result.launch.map((figure) => [figure.subject, figure]));
    const colds = new Map(result.cold.map((figure) => [figure.subject, figure]));
    const ids = result.subjects
      .map((subject) => subject.id)
      .filter((id) => launches.has(id) || colds.has(id));
    const rows = ids.map((id) => {
      const subject = result.subjects.find((candidate) => candidate.id === id);
      const figure = launches.get(id);
      const coldFigure = colds.get(id);
      return [
        labelOf(result, id),
        subject?.scope ?? '',
        median(figure?.exit),
        figure?.exit ? formatMilliseconds(figure.exit.summary.p95) : '–',
        range(figure?.exit),
        formatRatio(figure?.exitRatio),
        median(figure?.firstByte),
        formatRatio(figure?.firstByteRatio),
        coldFigure ? median(coldFigure.launch) : subject?.scope === 'whole-process' ? '(every run)' : '–',
        coldFigure ? median(coldFigure.firstLaunch) : '–',
        formatRatio(coldFigure?.ratio),
      ];
    });
    sections.push(
      [
        '### Launch',
        'Warm: the SDK prepared and used before (in-process), or a fresh command per launch (whole-process). Cold: a fresh Node process per sample, from the first API call (import of the library, initialisation, probe) to the exit of the first `/bin/true`; *of which first launch* leaves out the import and initialisation. Whole-process rows start a fresh process for every launch, so they have no separate cold figure, and no CPU or concurrency rows (their payload runs in the same sandbox as their SDK row). Ratios divide by the bare spawn measured in the same run.',
        table(
          [
            'subject',
            'scope',
            'to exit (`/bin/true`) median',
            'p95',
            'min–max',
            '× bare',
            'to first byte (`echo`) median',
            '× bare',
            'cold median',
            'of which first launch',
            '× bare cold',
          ],
          rows,
        ),
      ].join('\n\n'),
    );
  }

  if (result.memory.length > 0) {
    const rows = result.memory.map((figure) => [
      labelOf(result, figure.subject),
      formatBytes(figure.processesPerSandbox),
      formatBytes(figure.hostGrowth),
      formatBytes(figure.perSandbox),
      formatRatio(figure.ratio),
      formatBytes(figure.chargedPerSandbox),
      formatBytes(figure.kernelPerSandbox),
      figure.processes
        .slice(0, 3)
        .map((process) => `${process.name}×${process.count} ${formatBytes(process.pssBytes)}`)
        .join(', ') || '–',
    ]);
    sections.push(
      [
        '### Memory per sandbox',
        `Each subject launches ${result.options.memorySandboxes} sandboxes running an idle \`sleep\` from a fresh Node process. *Processes*: PSS (/proc/PID/smaps_rollup) of every process the isolation added, payloads excluded, per sandbox. *Launcher growth*: how much the launching Node process itself grew (library, proxies, native code), in total. *All told*: both, per sandbox. *Charged* and *kernel*: what the launcher's memory cgroup was charged beyond the bare baseline, per sandbox.`,
        table(
          [
            'subject',
            'processes / sandbox',
            'launcher growth',
            'all told / sandbox',
            '× bare payload',
            'charged / sandbox',
            'kernel / sandbox',
            'largest processes',
          ],
          rows,
        ),
        ...leftoverLines(result),
      ].join('\n\n'),
    );
  }

  if (result.cpu.length > 0) {
    const subjects = [...new Set(result.cpu.map((figure) => figure.subject))];
    const rows = subjects.map((id) => {
      const bound = result.cpu.find((figure) => figure.subject === id && figure.job === 'cpu-bound');
      const heavy = result.cpu.find((figure) => figure.subject === id && figure.job === 'syscall-heavy');
      const noisy = (figure: typeof bound) => (figure && cpuFigureNoisy(figure) ? ` ${NOISY}` : '');
      return [
        labelOf(result, id),
        `${formatRatio(bound?.ratio)}${noisy(bound)}`,
        bound
          ? `${formatMilliseconds(bound.inside.summary.median)} / ${formatMilliseconds(bound.outside.summary.median)}`
          : '–',
        `${formatRatio(heavy?.ratio)}${noisy(heavy)}`,
        heavy
          ? `${formatMilliseconds(heavy.inside.summary.median)} / ${formatMilliseconds(heavy.outside.summary.median)}`
          : '–',
      ];
    });
    sections.push(
      [
        '### CPU overhead',
        `The workload times itself (CLOCK_MONOTONIC), so launch cost is not part of it. CPU-bound: ${result.options.cpuIterations.toLocaleString('en')} xorshift rounds; syscall-heavy: ${result.options.syscallIterations.toLocaleString('en')} × stat+open+read+close, holding the same 0-15 open files on both sides, a new count each round (see What is measured). Inside and outside alternate; the ratio is of the medians.`,
        table(
          [
            'subject',
            'CPU-bound inside/outside',
            'medians (in / out)',
            'syscall-heavy inside/outside',
            'medians (in / out)',
          ],
          rows,
        ),
      ].join('\n\n'),
    );
  }

  if (result.concurrency.length > 0) {
    const rows = result.concurrency.map((figure) => [
      labelOf(result, figure.subject),
      String(figure.level),
      `${figure.succeeded}/${figure.attempted}`,
      formatMilliseconds(figure.allStartedMs),
      formatRatio(figure.allStartedRatio),
      figure.launch ? formatMilliseconds(figure.launch.summary.median) : '–',
      figure.launch ? formatMilliseconds(figure.launch.summary.p95) : '–',
      formatBytes(figure.totalMemoryBytes),
      figure.observed === 'completion' ? 'run() completion' : 'first byte',
      figure.errors[0] ?? '',
    ]);
    sections.push(
      [
        '### Concurrency',
        "N sandboxes launched at once from one fresh Node process, each payload printing `ready` and waiting for stdin to close. *All started*: from the first launch call until every payload said ready. *Memory*: PSS of the isolation processes plus the launcher's growth while all run.",
        table(
          [
            'subject',
            'sandboxes',
            'succeeded',
            'all started',
            '× bare',
            'launch p50',
            'launch p95',
            'memory',
            'observed at',
            'first error',
          ],
          rows,
        ),
      ].join('\n\n'),
    );
  }

  sections.push(networkSection(result));

  const unavailable = result.subjects.filter((subject) => !subject.available);
  const omissions = [
    ...unavailable.map(
      (subject) => `- **${subject.label}** could not run here: ${subject.reason ?? 'no reason given'}`,
    ),
    ...result.omissions.map(
      (omission) =>
        `- ${omission.subject === '*' ? 'all' : `**${labelOf(result, omission.subject)}**`}, ${omission.measurement}: ${omission.reason}`,
    ),
  ];
  if (omissions.length > 0) sections.push(`### Not measured\n\n${omissions.join('\n')}`);

  const noisy = noisyFigures(result);
  if (noisy.length > 0) {
    sections.push(
      `### Noisy figures (${NOISY})\n\nThe spread of these is too wide to trust the median alone; rerun on a quiet machine.\n\n${noisy.join('\n')}`,
    );
  }

  sections.push(`### Subjects\n\n${result.subjects.map((subject) => subjectLine(subject)).join('\n')}`);
  return `${sections.join('\n\n')}\n`;
}

function withTarget(within: boolean | undefined, target: string): string {
  return within === undefined ? target : `${target} ${within ? '✓' : '✗'}`;
}

/** Issue 4's figures: an allow-listed tier-process sandbox against bare, and against network none. */
function networkSection(result: BenchResult): string {
  const network = result.network;
  if (network.status !== 'measured')
    return `### Network\n\nNot measured: ${network.reason ?? 'no reason given'}`;
  const rows: string[][] = [];
  const { latency, throughput, launch, memory } = network;
  if (latency) {
    rows.push([
      `per connection, median (${latency.bare.summary.count} requests each)`,
      median(latency.bare),
      median(latency.allowlisted),
      `+${formatMilliseconds(latency.addedMedianMs)}`,
      withTarget(
        latency.addedMedianMs < NETWORK_TARGETS.addedLatencyMs,
        `< +${formatMilliseconds(NETWORK_TARGETS.addedLatencyMs)}`,
      ),
    ]);
    rows.push([
      'per connection, p95',
      formatMilliseconds(latency.bare.summary.p95),
      formatMilliseconds(latency.allowlisted.summary.p95),
      `+${formatMilliseconds(latency.addedP95Ms)}`,
      'measured',
    ]);
  }
  if (throughput) {
    const rate = (set: SampleSet) => `${formatBytes(throughput.bytes / (set.summary.median / 1000))}/s`;
    rows.push([
      `${formatBytes(throughput.bytes)} download, median of ${throughput.bare.summary.count}`,
      `${median(throughput.bare)} (${rate(throughput.bare)})`,
      `${median(throughput.allowlisted)} (${rate(throughput.allowlisted)})`,
      `${(throughput.ratio * 100).toFixed(0)}% of direct`,
      withTarget(
        throughput.ratio >= NETWORK_TARGETS.throughputRatio,
        `≥ ${NETWORK_TARGETS.throughputRatio * 100}% of direct`,
      ),
    ]);
    if (throughput.relayed && throughput.relayedRatio !== undefined) {
      rows.push([
        'the same download through a bare relay process (no sandbox, no proxy): the floor of any relay',
        `${median(throughput.bare)} (${rate(throughput.bare)})`,
        `${median(throughput.relayed)} (${rate(throughput.relayed)})`,
        `${(throughput.relayedRatio * 100).toFixed(0)}% of direct`,
        'measured',
      ]);
    }
  }
  if (launch) {
    rows.push([
      'launch to exit (`/bin/true`), median; left: network none',
      median(launch.none),
      median(launch.allowlist),
      `${launch.addedMs >= 0 ? '+' : ''}${formatMilliseconds(launch.addedMs)}`,
      withTarget(
        launch.addedMs < NETWORK_TARGETS.launchAddedMs,
        `< +${formatMilliseconds(NETWORK_TARGETS.launchAddedMs)}`,
      ),
    ]);
  }
  if (memory) {
    rows.push([
      `launcher (proxy and channels), ${memory.sandboxes} sandboxes; left: network none`,
      formatBytes(memory.launcherGrowthNone),
      formatBytes(memory.launcherGrowthAllowlist),
      `${memory.proxyBytes >= 0 ? '+' : ''}${formatBytes(memory.proxyBytes)}`,
      withTarget(
        memory.proxyBytes < NETWORK_TARGETS.proxyMemoryBytes,
        `< ${formatBytes(NETWORK_TARGETS.proxyMemoryBytes)}`,
      ),
    ]);
    rows.push([
      `isolation processes, ${memory.sandboxes} sandboxes; left: network none`,
      formatBytes(memory.processesNone),
      formatBytes(memory.processesAllowlist),
      `${memory.processesAllowlist >= memory.processesNone ? '+' : ''}${formatBytes(memory.processesAllowlist - memory.processesNone)} (${formatBytes((memory.processesAllowlist - memory.processesNone) / memory.sandboxes)} per sandbox)`,
      'measured',
    ]);
  }
  return [
    '### Network',
    "tier-process in namespace mode with an allow-list (the egress proxy in the launching process, a relay in each sandbox's network namespace) against the same client run bare on the host, both against a loopback HTTP server of the benchmark's; the proxy's resolver maps the test name to it. The client is the workload program: each request a new connection (through `HTTPS_PROXY` with `CONNECT` inside), a small GET and its whole response, timed by the client itself, never the launch. Bare and allow-listed runs alternate. Targets are issue 4's.",
    table(['figure', 'bare (or network none)', 'allow-listed', 'added', 'target'], rows),
    ...(network.reason ? [`Partly measured: ${network.reason}`] : []),
    ...(network.failures?.length ? [`Failed samples: ${network.failures.join('; ')}`] : []),
  ].join('\n\n');
}

/** Processes a subject left running after its sandboxes were disposed: said aloud, since it is a leak. */
function leftoverLines(result: BenchResult): string[] {
  const lines = result.memory
    .filter((figure) => figure.leftoverProcesses?.length)
    .map((figure) => `- **${labelOf(result, figure.subject)}**: ${figure.leftoverProcesses!.join(', ')}`);
  if (lines.length === 0) return [];
  return [
    `**Still running after every sandbox was disposed and the launcher exited** (killed by the benchmark):\n\n${lines.join('\n')}`,
  ];
}

function subjectLine(subject: SubjectRecord): string {
  return `- **${subject.label}** (\`${subject.id}\`${subject.version ? `, ${subject.version}` : ''}): ${subject.description}`;
}

function noisyFigures(result: BenchResult): string[] {
  const lines: string[] = [];
  const note = (what: string, set: SampleSet | undefined) => {
    if (set?.summary.noisy) lines.push(`- ${what}: ${set.summary.spreadReasons.join('; ')}`);
  };
  for (const figure of result.launch) {
    note(`${labelOf(result, figure.subject)}, launch to exit`, figure.exit);
    note(`${labelOf(result, figure.subject)}, launch to first byte`, figure.firstByte);
  }
  for (const figure of result.cold) note(`${labelOf(result, figure.subject)}, cold launch`, figure.launch);
  const network = result.network;
  note('network, per-connection latency bare', network.latency?.bare);
  note('network, per-connection latency allow-listed', network.latency?.allowlisted);
  note('network, download bare', network.throughput?.bare);
  note('network, download allow-listed', network.throughput?.allowlisted);
  note('network, launch with network none', network.launch?.none);
  note('network, launch with an allow-list', network.launch?.allowlist);
  for (const figure of result.cpu) {
    note(`${labelOf(result, figure.subject)}, ${figure.job} inside`, figure.inside);
    note(`${labelOf(result, figure.subject)}, ${figure.job} outside`, figure.outside);
    if (figure.pairRatios && figure.pairRatios.iqr > PAIR_RATIO_IQR_LIMIT) {
      lines.push(
        `- ${labelOf(result, figure.subject)}, ${figure.job}: inside/outside of back-to-back pairs spread by ${figure.pairRatios.iqr.toFixed(2)} (IQR), too coarse to tell ${(PAIR_RATIO_IQR_LIMIT * 100).toFixed(0)}% apart`,
      );
    }
  }
  return lines;
}
