/**
 * Provider-neutral capabilities: what a sandbox may do. `@bulkhead/manifest` produces them from a
 * manifest; a provider enforces them or refuses to launch (fail closed).
 */

/** Names of the tiers on the ladder. Plugins may add their own. */
export type TierName = 'none' | 'process' | 'session' | 'microvm' | 'wsl' | (string & {});

/**
 * Place of each built-in tier on the ladder; higher is a stronger boundary. `none` (0) is no
 * isolation at all and is never chosen automatically.
 */
export const TIER_STRENGTH = {
  none: 0,
  process: 10,
  session: 20,
  wsl: 25,
  microvm: 30,
} as const satisfies Record<string, number>;

/** A network endpoint the sandbox may reach. */
export interface Endpoint {
  /**
   * One of: an exact host name (lower-case, punycode, no trailing dot), `*.domain` (subdomains of
   * domain only, never domain itself or `evil-domain`), an IPv4/IPv6 literal, or a CIDR.
   */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
}

export type NetworkMode = 'none' | 'allowlist' | 'open';

export interface Capabilities {
  filesystem: {
    /** Absolute, normalised paths the sandbox may read (and execute). */
    read: string[];
    /** Absolute, normalised paths the sandbox may read and write. */
    write: string[];
    /** Absolute, normalised paths that are neither readable nor writable, even inside a grant. */
    deny: string[];
  };
  network: {
    mode: NetworkMode;
    /** Only meaningful with mode `allowlist`. */
    allow: Endpoint[];
  };
  process: {
    /** May the payload create processes (fork, vfork, clone without CLONE_THREAD)? */
    spawn: boolean;
    /** Upper bound on processes and threads alive at once in the sandbox. */
    maxProcesses: number;
  };
  resources: {
    /** Memory cap of the whole sandbox in bytes, tmpfs pages included. */
    memoryBytes: number;
    /** Wall-clock limit in milliseconds for the whole process tree. */
    timeoutMs: number;
    /** CPU bandwidth as a number of CPUs (0.5 = half of one CPU). Absent: unlimited. */
    cpus?: number;
    gpus: 'none' | 'all' | number[];
  };
  devices: {
    clipboard: boolean;
    audio: boolean;
    webcam: boolean;
    display: boolean;
    input: boolean;
  };
  /** The payload's whole environment; nothing else is passed (the tier adds PATH/HOME/TMPDIR/LANG if absent). */
  env: Record<string, string>;
  /** Absolute working directory of the payload. */
  workdir: string;
  /** Identity the session tier binds the sandbox to. */
  identity?: { name: string };
}

/**
 * Keys of the enforcement map. A provider's probe says, for each, which mechanism enforces it on this
 * host or why nothing can.
 */
export const CAPABILITY_KEYS = [
  'filesystem',
  'network.none',
  'network.allowlist',
  'network.open',
  'process.spawn',
  'process.maxProcesses',
  'resources.memory',
  'resources.timeout',
  'resources.cpus',
  'resources.gpus',
  'devices.deny',
  'devices.clipboard',
  'devices.audio',
  'devices.webcam',
  'devices.display',
  'devices.input',
  'env',
  'identity',
] as const;

export type CapabilityKey = (typeof CAPABILITY_KEYS)[number];

/**
 * The capability keys that must be enforced for these capabilities. A restriction always needs a
 * mechanism; a grant (a device, a GPU, an allow-list) needs one only when asked for.
 */
export function requiredCapabilityKeys(capabilities: Capabilities): CapabilityKey[] {
  const keys: CapabilityKey[] = ['filesystem', `network.${capabilities.network.mode}`, 'env'];
  if (!capabilities.process.spawn) keys.push('process.spawn');
  if (Number.isFinite(capabilities.process.maxProcesses)) keys.push('process.maxProcesses');
  if (Number.isFinite(capabilities.resources.memoryBytes)) keys.push('resources.memory');
  if (Number.isFinite(capabilities.resources.timeoutMs)) keys.push('resources.timeout');
  if (capabilities.resources.cpus !== undefined) keys.push('resources.cpus');
  if (capabilities.resources.gpus !== 'none') keys.push('resources.gpus');
  keys.push('devices.deny');
  for (const device of ['clipboard', 'audio', 'webcam', 'display', 'input'] as const) {
    if (capabilities.devices[device]) keys.push(`devices.${device}`);
  }
  if (capabilities.identity) keys.push('identity');
  return keys;
}
