import type { Summary } from './statistics.js';

/** Bumped when the JSON below changes shape, so `--check` never compares different things. */
export const RESULT_SCHEMA_VERSION = 1;

export const MEASUREMENTS = ['launch', 'cold', 'memory', 'cpu', 'concurrency', 'network'] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

export interface SampleSet {
  unit: 'ms' | 'bytes';
  samples: number[];
  summary: Summary;
}

export interface MachineFacts {
  host: string;
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  os: string;
  /** /dev/kvm opened and answered KVM_GET_API_VERSION. */
  kvmUsable: boolean;
  /** What was found: the API version, or why not, and which kvm module is loaded. */
  kvm: string;
  /** `v1`, `v2`, or `hybrid (v1 controllers, v2 without controllers)`. */
  cgroup: string;
  /** Landlock ABI version, or a negative errno when unavailable. */
  landlockAbi: number | undefined;
  unprivilegedUserNamespaces: string;
  node: string;
  /** Versions of every subject that could be told, by subject id. */
  versions: Record<string, string>;
  /** Load averages at the start, since other work on the machine makes figures noisy. */
  loadAverage: number[];
}

export interface SubjectRecord {
  id: string;
  label: string;
  family: 'baseline' | 'bulkhead' | 'peer';
  group: string;
  scope: 'in-process' | 'whole-process';
  description: string;
  version?: string;
  available: boolean;
  /** Why the subject could not run here (the caught error's text). */
  reason?: string;
  /** Why `--check` does not hold this Bulkhead row to the mission targets on this host. */
  targetExemption?: string;
  /** Caps applied to a slow subject: fewer runs, lower concurrency, a smaller CPU job. */
  limits?: import('./subject.js').SubjectLimits;
}

/** A figure a subject could not produce in one measurement, and why. */
export interface Omission {
  measurement: Measurement;
  subject: string;
  reason: string;
}

export interface LaunchFigure {
  subject: string;
  /** API call to the payload's exit, `/bin/true`, warm (the subject prepared and launched before). */
  exit?: SampleSet;
  exitRatio?: number;
  /** API call to the first byte of stdout of `/bin/echo`. */
  firstByte?: SampleSet;
  firstByteRatio?: number;
  failures: string[];
}

export interface ColdFigure {
  subject: string;
  /** First API call (prepare: import, probe, initialise) to the exit of the first `/bin/true`, in a fresh Node. */
  launch: SampleSet;
  /** The part of it spent preparing (library import, proxies, initialisation). */
  prepare: SampleSet;
  /** The rest: the first launch call (with any probe it makes) to the first exit. */
  firstLaunch: SampleSet;
  ratio?: number;
  failures: string[];
}

export interface MemoryFigure {
  subject: string;
  sandboxes: number;
  /**
   * PSS of every process the isolation added (supervisors, bwrap, shims, relays, proxies, VMMs),
   * the idle `sleep` payloads excluded, divided by the number of sandboxes.
   */
  processesPerSandbox: number;
  /** Growth of the launching Node process itself (the library, its proxies, its native code), in total. */
  hostGrowth: number;
  /** (processes + host growth) / sandboxes: what each sandbox costs all told. */
  perSandbox: number;
  /** The sandbox tree's PSS (payload included) over the bare payload's. */
  ratio?: number;
  /** Charged to the measurement cgroup beyond the bare baseline's charge, per sandbox. */
  chargedPerSandbox?: number;
  kernelPerSandbox?: number;
  /** PSS per process name, all sandboxes together. */
  processes: { name: string; count: number; pssBytes: number }[];
  /** PSS of the payload processes alone, per sandbox. */
  payloadPerSandbox: number;
  /** Processes still running once every sandbox was disposed and the launcher exited: a leak. */
  leftoverProcesses?: string[];
}

export interface CpuFigure {
  subject: string;
  job: 'cpu-bound' | 'syscall-heavy';
  /** Elapsed time the job measured itself, inside the sandbox. */
  inside: SampleSet;
  /** The same job spawned bare, run alternately with `inside`. */
  outside: SampleSet;
  /** median(inside) / median(outside). */
  ratio: number;
  /** inside/outside of each back-to-back pair: its IQR is how finely this run resolves the ratio. */
  pairRatios?: Summary;
}

export interface ConcurrencyFigure {
  subject: string;
  level: number;
  attempted: number;
  /** Payloads that said they were running and exited 0. */
  succeeded: number;
  /** From the first launch call until every payload said it was running; absent when some never did. */
  allStartedMs?: number;
  /** allStartedMs over the bare spawn's at the same level. */
  allStartedRatio?: number;
  /** Per sandbox: launch call to its payload's first byte, under this load. */
  launch?: SampleSet;
  /** PSS of everything the isolation added while all were running, plus the host's growth. */
  totalMemoryBytes?: number;
  /** How `launch` was observed: the payload's first byte, or the run() call's completion. */
  observed: 'first-byte' | 'completion';
  errors: string[];
}

/**
 * An allow-listed tier-process sandbox (namespace mode, the egress proxy in the launching process)
 * against the same client run bare, both against a loopback server the benchmark runs.
 */
export interface NetworkFigure {
  status: 'measured' | 'not-measured';
  /** Why it was not measured, or what kept part of it from being measured. */
  reason?: string;
  /** Per connection: connect (and CONNECT through the proxy), a small GET, the whole response. */
  latency?: {
    requestsPerLaunch: number;
    bare: SampleSet;
    allowlisted: SampleSet;
    /** median(allow-listed) - median(bare). */
    addedMedianMs: number;
    /** p95(allow-listed) - p95(bare). */
    addedP95Ms: number;
  };
  /** One download of `bytes`, read to its end: the time it took, bare and through the proxy. */
  throughput?: {
    bytes: number;
    bare: SampleSet;
    allowlisted: SampleSet;
    /** Throughput through the proxy over direct: median(bare time) / median(allow-listed time). */
    ratio: number;
    /** The same download through the workload's bare relay (no sandbox, no proxy): the floor of any relay. */
    relayed?: SampleSet;
    /** median(bare time) / median(relayed time). */
    relayedRatio?: number;
  };
  /** Launch to the exit of `/bin/true`: network `none` against an allow-list, interleaved. */
  launch?: {
    none: SampleSet;
    allowlist: SampleSet;
    /** median(allow-list) - median(none). */
    addedMs: number;
  };
  /** A fresh launcher with N sandboxes running, each after one request (allow-list) or none. */
  memory?: {
    sandboxes: number;
    /** The launching Node process's growth: the proxy and its channels live there. */
    launcherGrowthNone: number;
    launcherGrowthAllowlist: number;
    /** launcherGrowthAllowlist - launcherGrowthNone: the proxy's share, for all N together. */
    proxyBytes: number;
    /** PSS of the isolation processes (relays included, payloads excluded), all N together. */
    processesNone: number;
    processesAllowlist: number;
    processes: { name: string; count: number; pssBytes: number }[];
  };
  /** The first few errors of samples that failed. */
  failures?: string[];
}

export interface BenchResult {
  schemaVersion: typeof RESULT_SCHEMA_VERSION;
  startedAt: string;
  finishedAt: string;
  options: {
    quick: boolean;
    runs: number;
    warmup: number;
    coldRuns: number;
    cpuRuns: number;
    memorySandboxes: number;
    concurrencyLevels: number[];
    measurements: Measurement[];
    cpuIterations: number;
    syscallIterations: number;
  };
  machine: MachineFacts;
  subjects: SubjectRecord[];
  launch: LaunchFigure[];
  cold: ColdFigure[];
  memory: MemoryFigure[];
  cpu: CpuFigure[];
  concurrency: ConcurrencyFigure[];
  network: NetworkFigure;
  omissions: Omission[];
}
