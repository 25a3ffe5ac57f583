import type { Readable, Writable } from 'node:stream';
import type { Capabilities, CapabilityKey, TierName } from './capabilities.js';

/** The version of the provider contract below. The core refuses providers of another version. */
export const SPECIFICATION_VERSION = 'bulkhead-isolation-v1' as const;
export type SpecificationVersion = typeof SPECIFICATION_VERSION;

/** A kernel, hypervisor or library mechanism that enforces a capability. */
export type EnforcementMechanism =
  | 'landlock'
  | 'mount-namespace'
  | 'user-namespace'
  | 'pid-namespace'
  | 'network-namespace'
  | 'ipc-namespace'
  | 'seccomp'
  | 'cgroup-v2'
  | 'cgroup-v1'
  | 'rlimit'
  | 'hypervisor'
  | 'egress-proxy'
  | 'uid-switch'
  | 'environment'
  | 'supervisor'
  | 'device-nodes'
  | (string & {});

export type Enforcement =
  | { enforced: true; mechanisms: EnforcementMechanism[]; note?: string }
  | { enforced: false; reason: string; fix?: string };

export interface ProbeReport {
  tier: TierName;
  /** Can this tier launch anything at all on this host? */
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  /** The command or change that makes it available. */
  fix?: string;
  /** Per capability: the mechanisms that enforce it here, or why nothing can. */
  enforcement: Partial<Record<CapabilityKey, Enforcement>>;
  /** Host facts the probe relied on (kernel, Landlock ABI, cgroup version, ...), for `doctor`. */
  facts: Record<string, string | number | boolean>;
  warnings: string[];
}

export interface LaunchSpec {
  /** argv of the payload; `command[0]` is looked up on the sandbox's PATH. MUST be non-empty. */
  command: string[];
  capabilities: Capabilities;
  /** Stable id for logs, events and spans; the core fills it in when absent. */
  id?: string;
  /** Digest of the manifest the capabilities came from, for audit and tracing. */
  manifestDigest?: string;
  /**
   * Called for each violation the provider observes, as it happens. Providers MUST also include
   * every violation in `SandboxResult.violations`.
   */
  onViolation?: (violation: Violation) => void;
}

export interface Violation {
  /** ISO-8601 time. */
  time: string;
  sandboxId: string;
  kind: 'network' | 'filesystem' | 'process' | 'syscall' | 'resource' | (string & {});
  /** One line a person can read. */
  message: string;
  host?: string;
  port?: number;
  protocol?: string;
  path?: string;
  /** The rule that refused it. */
  rule?: string;
}

export interface SandboxResult {
  /** Exit status, or null when a signal ended the payload. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The timeout in the capabilities ended the sandbox. */
  timedOut: boolean;
  /** `kill()` or an abort signal ended the sandbox. */
  canceled: boolean;
  /** The memory cap ended the sandbox (or a process in it). */
  oomKilled: boolean;
  durationMs: number;
  /** Peak memory of the whole sandbox in bytes, when the tier can measure it. */
  peakMemoryBytes?: number;
  /** CPU time of the whole sandbox in milliseconds, when the tier can measure it. */
  cpuMs?: number;
  violations: Violation[];
  /** Settings honoured only partly, said aloud. */
  warnings: string[];
  /** Which mechanism enforced what in this run (`resources.memory: cgroup-v1`, ...). */
  enforcement: Partial<Record<CapabilityKey, EnforcementMechanism[]>>;
}

/**
 * A running sandbox. The payload's stdio is always piped: the payload never holds the caller's
 * terminal.
 *
 * Providers MUST:
 * - resolve `exited` exactly once, after every process of the sandbox is gone;
 * - end the whole process tree (also `setsid` and double-forked descendants) at the timeout, on
 *   `kill()` and on dispose;
 * - leave no process, mount, cgroup, socket or temporary directory behind once `exited` resolved and
 *   `[Symbol.asyncDispose]()` returned.
 */
export interface Sandbox extends AsyncDisposable {
  readonly id: string;
  readonly tier: TierName;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<SandboxResult>;
  /** Signal the whole sandbox (default SIGKILL); resolves once the signal is sent. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * An isolation tier. Implementations live in their own packages and are plugged in through a
 * registry; `@bulkhead/conformance` proves an implementation.
 */
export interface IsolationProvider {
  readonly specificationVersion: SpecificationVersion;
  readonly tier: TierName;
  /** Place on the ladder; see `TIER_STRENGTH`. */
  readonly strength: number;
  /**
   * Says whether the tier can run here and how each capability would be enforced. MUST NOT have
   * side effects a user would notice; MAY cache its answer for the process's lifetime.
   */
  probe(): Promise<ProbeReport>;
  /**
   * Starts the payload. MUST throw `UnenforceableCapabilityError` for any capability of
   * `requiredCapabilityKeys(spec.capabilities)` it cannot enforce on this host, before anything runs.
   * MUST NOT weaken a capability silently.
   */
  launch(spec: LaunchSpec): Promise<Sandbox>;
}
