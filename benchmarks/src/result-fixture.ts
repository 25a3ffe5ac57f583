import { type BenchResult, RESULT_SCHEMA_VERSION, type SampleSet } from './result.js';
import { summarize } from './statistics.js';

/** A sample set around `median`, tight unless `noisy`. */
export function samples(median: number, noisy = false): SampleSet {
  const values = noisy
    ? [median * 0.5, median, median, median * 1.1, median * 4, median * 5]
    : [median * 0.98, median, median, median * 1.01, median * 1.02];
  return { unit: 'ms', samples: values, summary: summarize(values) };
}

const MEBIBYTE = 1024 * 1024;

/** A small, complete result: the bare baseline, one Bulkhead tier, one peer, one unavailable peer. */
export function resultFixture(): BenchResult {
  return {
    schemaVersion: RESULT_SCHEMA_VERSION,
    startedAt: '2025-11-27T10:00:00.000Z',
    finishedAt: '2025-11-27T10:05:00.000Z',
    options: {
      quick: true,
      runs: 5,
      warmup: 1,
      coldRuns: 3,
      cpuRuns: 3,
      memorySandboxes: 4,
      concurrencyLevels: [10],
      measurements: ['launch', 'cold', 'memory', 'cpu', 'concurrency', 'network'],
      cpuIterations: 1000,
      syscallIterations: 100,
    },
    machine: {
      host: 'test-host',
      cpuModel: 'Test CPU',
      cores: 2,
      memoryBytes: 8 * 1024 * MEBIBYTE,
      kernel: '6.18.0',
      os: 'Debian GNU/Linux 12 (bookworm)',
      kvmUsable: false,
      kvm: 'not usable (errno 2, no kvm module)',
      cgroup: 'v2',
      landlockAbi: 7,
      unprivilegedUserNamespaces: 'max_user_namespaces=1000',
      node: '20.20.2',
      versions: { bare: 'node 20.20.2' },
      loadAverage: [0.1, 0.2, 0.3],
    },
    subjects: [
      {
        id: 'bare',
        label: 'bare spawn',
        family: 'baseline',
        group: 'bare',
        scope: 'in-process',
        description: 'baseline',
        available: true,
      },
      {
        id: 'process-namespace',
        label: 'Bulkhead process (namespace)',
        family: 'bulkhead',
        group: 'process',
        scope: 'in-process',
        description: 'tier-process',
        available: true,
      },
      {
        id: 'mxc',
        label: 'MXC run()',
        family: 'peer',
        group: 'mxc',
        scope: 'in-process',
        description: 'MXC <peer>',
        available: true,
      },
      {
        id: 'qemu',
        label: 'QEMU microvm alone',
        family: 'peer',
        group: 'qemu',
        scope: 'whole-process',
        description: 'QEMU',
        available: false,
        reason: 'qemu-system-x86_64 is not installed',
      },
    ],
    launch: [
      {
        subject: 'bare',
        exit: samples(2),
        exitRatio: 1,
        firstByte: samples(2.5),
        firstByteRatio: 1,
        failures: [],
      },
      {
        subject: 'process-namespace',
        exit: samples(8),
        exitRatio: 4,
        firstByte: samples(9),
        firstByteRatio: 3.6,
        failures: [],
      },
      { subject: 'mxc', exit: samples(20), exitRatio: 10, failures: [] },
    ],
    cold: [
      {
        subject: 'bare',
        launch: samples(5),
        prepare: samples(0.1),
        firstLaunch: samples(4.9),
        ratio: 1,
        failures: [],
      },
      {
        subject: 'process-namespace',
        launch: samples(40),
        prepare: samples(30),
        firstLaunch: samples(10),
        ratio: 8,
        failures: [],
      },
    ],
    memory: [
      {
        subject: 'bare',
        sandboxes: 4,
        processesPerSandbox: 0,
        hostGrowth: 0,
        perSandbox: 0,
        ratio: 1,
        processes: [],
        payloadPerSandbox: 100 * 1024,
      },
      {
        subject: 'process-namespace',
        sandboxes: 4,
        processesPerSandbox: 1.5 * MEBIBYTE,
        hostGrowth: 4 * MEBIBYTE,
        perSandbox: 2.5 * MEBIBYTE,
        ratio: 16,
        chargedPerSandbox: 2 * MEBIBYTE,
        kernelPerSandbox: 0.5 * MEBIBYTE,
        processes: [{ name: 'bwrap', count: 8, pssBytes: 6 * MEBIBYTE }],
        payloadPerSandbox: 100 * 1024,
      },
      {
        subject: 'mxc',
        sandboxes: 4,
        processesPerSandbox: 0.5 * MEBIBYTE,
        hostGrowth: 40 * MEBIBYTE,
        perSandbox: 10.5 * MEBIBYTE,
        processes: [{ name: 'bwrap', count: 8, pssBytes: 2 * MEBIBYTE }],
        payloadPerSandbox: 100 * 1024,
      },
    ],
    cpu: [
      {
        subject: 'process-namespace',
        job: 'cpu-bound',
        inside: samples(101),
        outside: samples(100),
        ratio: 1.01,
      },
      {
        subject: 'process-namespace',
        job: 'syscall-heavy',
        inside: samples(110),
        outside: samples(100),
        ratio: 1.1,
      },
    ],
    concurrency: [
      {
        subject: 'process-namespace',
        level: 10,
        attempted: 10,
        succeeded: 10,
        allStartedMs: 80,
        launch: samples(50),
        totalMemoryBytes: 20 * MEBIBYTE,
        observed: 'first-byte',
        errors: [],
      },
      {
        subject: 'mxc',
        level: 10,
        attempted: 10,
        succeeded: 4,
        launch: samples(30),
        observed: 'completion',
        errors: ['deadline'],
      },
    ],
    network: { status: 'not-measured', reason: 'egress is not there yet' },
    omissions: [
      { measurement: 'launch', subject: 'mxc', reason: 'first byte not measurable: spawn() needs Node 24' },
    ],
  };
}
