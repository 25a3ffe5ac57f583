import { chmodSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Capabilities, SandboxResult } from '@bulkhead/core';
import type { EscapeCaseId } from './escape-case-ids.js';
import type { HostFixtureName, HostFixtures } from './host-fixtures.js';

export type EscapeCategory =
  | 'filesystem'
  | 'kernel-interfaces'
  | 'mount'
  | 'process'
  | 'terminal'
  | 'ipc'
  | 'network'
  | 'resources'
  | 'timeout';

/**
 * Where a case runs. Every case gets a fresh layout on the host:
 * - `workspace`: granted read-write, the working directory;
 * - `granted`: granted read-only, holds `granted/file.txt`;
 * - `denied` (= `granted/denied`): denied although inside the grant, holds `denied/secret.txt`;
 * - `outside`: not granted at all, holds `outside/secret.txt`.
 * Both secrets contain `token`; any output containing it proves a read escaped.
 */
export interface EscapeContext {
  /** argv of one helper subcommand (absolute helper path, tagged with the case's marker). */
  helper(...args: string[]): string[];
  workspace: string;
  granted: string;
  denied: string;
  outside: string;
  secretFile: string;
  deniedSecretFile: string;
  /** Unique to this run of the case: in the secrets, in what network attacks send. */
  token: string;
  /** The capabilities the sandbox is launched with (final, after every adjustment). */
  capabilities: Capabilities;
  fixtures: HostFixtures;
  /** `timeoutScale` of the suite. */
  scale: number;
  /** `Date.now()` just before the launch. */
  launchedAt: number;
}

export interface HelperVerdict {
  verdict: 'ESCAPED' | 'REFUSED' | 'ERROR';
  detail: string;
}

export interface EscapeObservation {
  stdout: string;
  stderr: string;
  result: SandboxResult;
  /** The helper's own last verdict line, if it printed one. */
  helper?: HelperVerdict;
}

export interface EscapeVerdict {
  outcome: 'escaped' | 'refused' | 'inconclusive';
  reason: string;
}

export interface EscapeCase {
  id: EscapeCaseId;
  title: string;
  category: EscapeCategory;
  /** What the payload attempts, in a sentence. */
  attempts: string;
  /** Host-side fixtures the runner starts before the launch (servers, a terminal, a host process). */
  fixtures: readonly HostFixtureName[];
  /**
   * What the `none` tier needs on this host for the attempt to succeed there. Without it, the
   * `expectEscapes` run skips the case with that reason; a real tier runs it regardless.
   */
  escapeNeeds?: readonly 'host-root'[];
  /** The case's changes to the base capabilities (a smaller memory cap, a short timeout). */
  capabilities?: (capabilities: Capabilities, suite: { scale: number }) => Capabilities;
  command: (context: EscapeContext) => string[];
  /** Decides from the run and from what the host can see itself whether the attempt escaped. */
  judge: (observation: EscapeObservation, context: EscapeContext) => EscapeVerdict | Promise<EscapeVerdict>;
}

/** Memory cap of the resource cases: small, so that proving the cap costs little on the host. */
export const ESCAPE_MEMORY_BYTES = 128 * 1024 * 1024;
/** Process cap of the fork bomb case. */
export const ESCAPE_MAX_PROCESSES = 32;

/** Parses the helper's last verdict line. */
export function parseHelperVerdict(stdout: string): HelperVerdict | undefined {
  const lines = stdout.split('\n').filter((line) => /^(ESCAPED|REFUSED|ERROR)( |$)/.test(line));
  const last = lines[lines.length - 1];
  if (!last) return undefined;
  const space = last.indexOf(' ');
  return {
    verdict: (space < 0 ? last : last.slice(0, space)) as HelperVerdict['verdict'],
    detail: space < 0 ? '' : last.slice(space + 1),
  };
}

/** The helper's word, or a seccomp kill (SIGSYS), which is a refusal too. */
export function judgeByHelper(observation: EscapeObservation): EscapeVerdict {
  const { helper, result } = observation;
  if (helper?.verdict === 'ESCAPED') return { outcome: 'escaped', reason: helper.detail };
  if (helper?.verdict === 'REFUSED') return { outcome: 'refused', reason: helper.detail };
  if (!helper && result.signal === 'SIGSYS')
    return { outcome: 'refused', reason: 'killed by a seccomp filter (SIGSYS)' };
  return {
    outcome: 'inconclusive',
    reason: helper
      ? `the helper failed: ${helper.detail}`
      : 'the helper printed no verdict (did it run at all?)',
  };
}

/** A read escaped only when the secret's token came out. */
function judgeBySecret(observation: EscapeObservation, context: EscapeContext): EscapeVerdict {
  if (observation.stdout.includes(context.token))
    return { outcome: 'escaped', reason: 'the secret was read' };
  const helper = judgeByHelper(observation);
  if (helper.outcome === 'escaped')
    return { outcome: 'refused', reason: `read something, not the secret: ${helper.reason}` };
  return helper;
}

/**
 * The host's own evidence decides; the helper's verdict only tells a refusal (it ran and failed) from a
 * run that proved nothing. A helper that "escaped" into a private view of the world did not escape.
 * Evidence that arrives asynchronously (a shell's log, a server's buffer) is awaited for a bounded time
 * only when the helper claims success; a refused attempt is checked once.
 */
function judgeByEvidence(evidence: (context: EscapeContext) => boolean, what: string) {
  return async (observation: EscapeObservation, context: EscapeContext): Promise<EscapeVerdict> => {
    const helper = judgeByHelper(observation);
    const seen =
      helper.outcome === 'escaped'
        ? await eventually(() => evidence(context), context.scale)
        : evidence(context);
    if (seen) return { outcome: 'escaped', reason: what };
    if (helper.outcome === 'escaped')
      return { outcome: 'refused', reason: `the host saw no effect (${helper.reason})` };
    return helper;
  };
}

/** Polls for evidence that arrives asynchronously on the host, for a bounded time. */
async function eventually(check: () => boolean, scale: number): Promise<boolean> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if (check()) return true;
    await sleep(100 * scale);
  }
  return check();
}

function fileHolds(path: string, token: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(token);
  } catch {
    return false;
  }
}

function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** A resource case is refused when the cap stopped it: the helper saw the failure, or the tier OOM-killed it. */
function judgeByCap(observation: EscapeObservation): EscapeVerdict {
  if (observation.result.oomKilled) return { outcome: 'refused', reason: 'OOM-killed at the memory cap' };
  const helper = judgeByHelper(observation);
  if (helper.outcome === 'inconclusive' && observation.result.signal === 'SIGKILL') {
    return {
      outcome: 'inconclusive',
      reason:
        'killed by SIGKILL without `oomKilled`: a tier that stops a sandbox at its memory cap must say so',
    };
  }
  return helper;
}

const withResources = (change: Partial<Capabilities['resources']>) => (capabilities: Capabilities) => ({
  ...capabilities,
  resources: { ...capabilities.resources, ...change },
});

/** The read grant inside the workspace of 'write-read-grant-inside-write-grant'. */
const NESTED_READ_GRANT = 'read-only';
const written = (context: EscapeContext, directory: string) => join(directory, `written-${context.token}`);

/**
 * The escape corpus: each case is an attempt that a real tier MUST refuse and that the `none` tier
 * lets through (which shows the case can fail). The runner in `describeIsolationProvider` runs them;
 * another harness (a VM guest's, a benchmark's) can run the same data.
 */
export const ESCAPE_CASES: readonly EscapeCase[] = [
  {
    id: 'read-outside-grant',
    title: 'read a file outside every grant',
    category: 'filesystem',
    attempts: 'opens outside/secret.txt directly',
    fixtures: [],
    command: (context) => context.helper('read', context.secretFile),
    judge: judgeBySecret,
  },
  {
    id: 'write-outside-grant',
    title: 'write a file outside every grant',
    category: 'filesystem',
    attempts: 'creates a file in the non-granted directory',
    fixtures: [],
    command: (context) => context.helper('write', written(context, context.outside), context.token),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, context.outside), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'write-read-only-grant',
    title: 'write into a read-only grant',
    category: 'filesystem',
    attempts: 'creates a file in a directory granted for reading only',
    fixtures: [],
    command: (context) => context.helper('write', written(context, context.granted), context.token),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, context.granted), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'write-read-grant-inside-write-grant',
    title: 'write into a read grant inside the writable workspace',
    category: 'filesystem',
    attempts:
      'creates a file in workspace/read-only, a read grant inside the write grant (the most specific path wins: read-only)',
    fixtures: [],
    // The folder is made here, with the launch's capabilities: the workspace is new for each launch.
    capabilities: (capabilities) => {
      const nested = join(capabilities.workdir, NESTED_READ_GRANT);
      mkdirSync(nested);
      chmodSync(nested, 0o777); // world-writable: only the sandbox may refuse the write
      const { filesystem } = capabilities;
      return { ...capabilities, filesystem: { ...filesystem, read: [...filesystem.read, nested] } };
    },
    command: (context) =>
      context.helper('write', written(context, join(context.workspace, NESTED_READ_GRANT)), context.token),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, join(context.workspace, NESTED_READ_GRANT)), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'read-denied-path-inside-grant',
    title: 'read a denied path inside a read grant',
    category: 'filesystem',
    attempts: 'opens granted/denied/secret.txt, denied although its parent is granted',
    fixtures: [],
    command: (context) => context.helper('read', context.deniedSecretFile),
    judge: judgeBySecret,
  },
  {
    id: 'read-through-symlink',
    title: 'read outside through a symlink planted in the workspace',
    category: 'filesystem',
    attempts: 'creates workspace/link -> outside/secret.txt and reads the link',
    fixtures: [],
    command: (context) => context.helper('symlink-read', join(context.workspace, 'link'), context.secretFile),
    judge: judgeBySecret,
  },
  {
    id: 'write-through-symlink',
    title: 'write outside through a symlink planted in the workspace',
    category: 'filesystem',
    attempts: 'creates workspace/link -> a new file outside and writes through the link',
    fixtures: [],
    command: (context) =>
      context.helper(
        'symlink-write',
        join(context.workspace, 'link'),
        written(context, context.outside),
        context.token,
      ),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, context.outside), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'read-through-dot-dot',
    title: 'read outside by `..` traversal from the workspace',
    category: 'filesystem',
    attempts: 'opens workspace/../outside/secret.txt without normalising the path',
    fixtures: [],
    command: (context) =>
      context.helper('read', `${context.workspace}/${relative(context.workspace, context.secretFile)}`),
    judge: judgeBySecret,
  },
  {
    id: 'write-through-dot-dot',
    title: 'write outside by `..` traversal from the workspace',
    category: 'filesystem',
    attempts: 'creates workspace/../outside/written-TOKEN',
    fixtures: [],
    command: (context) =>
      context.helper(
        'write',
        `${context.workspace}/${relative(context.workspace, written(context, context.outside))}`,
        context.token,
      ),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, context.outside), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'read-through-hard-link',
    title: 'read outside through a hard link made in the workspace',
    category: 'filesystem',
    attempts: 'links outside/secret.txt into the workspace and reads the link',
    fixtures: [],
    command: (context) =>
      context.helper('hardlink-read', join(context.workspace, 'hard-link'), context.secretFile),
    judge: judgeBySecret,
  },
  {
    id: 'read-through-proc-self-root',
    title: 'read outside through /proc/self/root',
    category: 'filesystem',
    attempts: 'opens /proc/self/root/<host path of outside/secret.txt>',
    fixtures: [],
    command: (context) => context.helper('read', `/proc/self/root${context.secretFile}`),
    judge: judgeBySecret,
  },
  {
    id: 'read-through-host-process-cwd',
    title: 'read through /proc/PID/cwd of a host process',
    category: 'filesystem',
    attempts: 'opens /proc/PID/cwd/secret.txt of a host process whose cwd is the non-granted directory',
    fixtures: ['host-process'],
    command: (context) => context.helper('read', `/proc/${context.fixtures.hostProcess!.pid}/cwd/secret.txt`),
    judge: judgeBySecret,
  },
  {
    id: 'read-through-host-process-root',
    title: 'read through /proc/PID/root of a host process',
    category: 'filesystem',
    attempts: 'opens /proc/PID/root/<host path of outside/secret.txt> of a host process',
    fixtures: ['host-process'],
    command: (context) =>
      context.helper('read', `/proc/${context.fixtures.hostProcess!.pid}/root${context.secretFile}`),
    judge: judgeBySecret,
  },
  {
    id: 'write-proc-sys',
    title: 'write a global kernel setting under /proc/sys',
    category: 'kernel-interfaces',
    attempts: 'writes back the current value of global vm/kernel sysctls (harmless where it succeeds)',
    fixtures: [],
    escapeNeeds: ['host-root'],
    command: (context) =>
      context.helper(
        'rewrite',
        '/proc/sys/vm/overcommit_ratio',
        '/proc/sys/vm/swappiness',
        '/proc/sys/kernel/printk_ratelimit',
      ),
    judge: judgeByHelper,
  },
  {
    id: 'write-sys',
    title: 'write a kernel setting under /sys',
    category: 'kernel-interfaces',
    attempts: 'writes back the current value of global memory-management tunables in sysfs',
    fixtures: [],
    escapeNeeds: ['host-root'],
    command: (context) =>
      context.helper(
        'rewrite',
        '/sys/kernel/mm/ksm/sleep_millisecs',
        '/sys/kernel/mm/ksm/pages_to_scan',
        '/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan',
      ),
    judge: judgeByHelper,
  },
  {
    id: 'mount-over-grant',
    title: 'mount a file system over a granted path',
    category: 'mount',
    attempts: 'mounts a tmpfs on the read-only grant (and unmounts it at once)',
    fixtures: [],
    escapeNeeds: ['host-root'],
    command: (context) => context.helper('mount-tmpfs', context.granted),
    judge: judgeByHelper,
  },
  {
    id: 'remount-read-only-grant-writable',
    title: 'remount a read-only grant read-write',
    category: 'mount',
    attempts: 'remounts the read-only grant with MS_REMOUNT|MS_BIND without MS_RDONLY, then writes into it',
    fixtures: ['emulated-mounts'],
    escapeNeeds: ['host-root'],
    command: (context) =>
      context.helper('remount-rw', context.granted, written(context, context.granted), context.token),
    judge: judgeByEvidence(
      (context) => fileHolds(written(context, context.granted), context.token),
      'the file appeared on the host',
    ),
  },
  {
    id: 'unmount-deny-mask',
    title: 'unmount the mask over a denied path',
    category: 'mount',
    attempts: 'unmounts (MNT_DETACH) whatever hides granted/denied, then reads the secret below it',
    fixtures: ['emulated-mounts'],
    escapeNeeds: ['host-root'],
    command: (context) => context.helper('umount', context.denied, context.deniedSecretFile),
    judge: judgeBySecret,
  },
  {
    id: 'ptrace-host-process',
    title: 'ptrace a host process',
    category: 'process',
    attempts: 'PTRACE_ATTACH to a `sleep` the test runs on the host',
    fixtures: ['host-process'],
    command: (context) =>
      context.helper(
        'ptrace',
        String(context.fixtures.hostProcess!.pid),
        context.fixtures.hostProcess!.commandLineMark,
      ),
    judge: judgeByHelper,
  },
  {
    id: 'signal-host-process',
    title: 'signal a host process',
    category: 'process',
    attempts: 'sends SIGKILL to a `sleep` the test runs on the host',
    fixtures: ['host-process'],
    command: (context) =>
      context.helper(
        'kill',
        String(context.fixtures.hostProcess!.pid),
        context.fixtures.hostProcess!.commandLineMark,
      ),
    judge: judgeByEvidence(
      (context) => !processAlive(context.fixtures.hostProcess!.pid),
      'the host process died',
    ),
  },
  {
    id: 'tiocsti-terminal-injection',
    title: "inject input into the caller's terminal (TIOCSTI)",
    category: 'terminal',
    attempts:
      'pushes a line into the input queue of a host pty read by a shell: through stdio, /dev/tty, and the pty opened by path',
    fixtures: ['terminal'],
    command: (context) => context.helper('tiocsti', context.fixtures.terminal!.path, `${context.token}\n`),
    judge: judgeByEvidence(
      (context) => context.fixtures.terminal!.lines().includes(context.token),
      'the host shell read the injected line',
    ),
  },
  {
    id: 'connect-host-unix-socket-path',
    title: 'connect to a host unix socket by path',
    category: 'ipc',
    attempts: 'connects to a socket the test listens on in the non-granted directory',
    fixtures: ['unix-socket-path'],
    command: (context) => context.helper('unix-connect', context.fixtures.unixSocket!.path, context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.unixSocket!.received().includes(context.token),
      'the host server received the token',
    ),
  },
  {
    id: 'connect-host-abstract-socket',
    title: 'connect to a host abstract unix socket',
    category: 'ipc',
    attempts: 'connects to an abstract socket the test binds on the host',
    fixtures: ['abstract-socket'],
    command: (context) =>
      context.helper('unix-connect', `@${context.fixtures.abstractSocket!.name}`, context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.abstractSocket!.received().includes(context.token),
      'the host server received the token',
    ),
  },
  {
    id: 'tcp-to-host-by-name',
    title: 'reach a non-allowed host by name',
    category: 'network',
    attempts: "resolves `localhost` and connects to the test's TCP server on the host",
    fixtures: ['tcp-servers'],
    command: (context) =>
      context.helper('tcp-connect', 'localhost', String(context.fixtures.tcpIpv4!.port), context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.tcpIpv4!.received().includes(context.token),
      'the host server received the token',
    ),
  },
  {
    id: 'tcp-to-loopback-ipv4',
    title: 'reach a host TCP server by raw IPv4',
    category: 'network',
    attempts: "connects to 127.0.0.1:PORT of the test's TCP server",
    fixtures: ['tcp-servers'],
    command: (context) =>
      context.helper('tcp-connect', '127.0.0.1', String(context.fixtures.tcpIpv4!.port), context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.tcpIpv4!.received().includes(context.token),
      'the host server received the token',
    ),
  },
  {
    id: 'tcp-to-loopback-ipv6',
    title: 'reach a host TCP server by raw IPv6',
    category: 'network',
    attempts: "connects to [::1]:PORT of the test's TCP server",
    fixtures: ['tcp-servers'],
    command: (context) =>
      context.helper('tcp-connect', '::1', String(context.fixtures.tcpIpv6!.port), context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.tcpIpv6!.received().includes(context.token),
      'the host server received the token',
    ),
  },
  {
    id: 'udp-to-host',
    title: 'send a UDP datagram to the host',
    category: 'network',
    attempts: "sends a datagram to the test's UDP listener on 127.0.0.1 and waits for its answer",
    fixtures: ['udp-listener'],
    command: (context) =>
      context.helper('udp-send', '127.0.0.1', String(context.fixtures.udp!.port), context.token),
    judge: judgeByEvidence(
      (context) => context.fixtures.udp!.received().includes(context.token),
      'the host listener received the token',
    ),
  },
  {
    id: 'dns-query',
    title: 'exfiltrate through a DNS query',
    category: 'network',
    attempts: "sends an A query for TOKEN.bulkhead-conformance.test to the test's DNS listener",
    fixtures: ['dns-listener'],
    command: (context) =>
      context.helper(
        'dns-query',
        '127.0.0.1',
        String(context.fixtures.dns!.port),
        `${context.token}.bulkhead-conformance.test`,
      ),
    judge: judgeByEvidence(
      (context) => context.fixtures.dns!.received().includes(context.token),
      'the host DNS listener received the query',
    ),
  },
  {
    id: 'fork-bomb',
    title: 'fork past processes.max',
    category: 'resources',
    attempts: `forks ${8 * ESCAPE_MAX_PROCESSES} processes with processes.max = ${ESCAPE_MAX_PROCESSES}`,
    fixtures: [],
    capabilities: (capabilities) => ({
      ...capabilities,
      process: { ...capabilities.process, spawn: true, maxProcesses: ESCAPE_MAX_PROCESSES },
    }),
    command: (context) => context.helper('fork-bomb', String(8 * context.capabilities.process.maxProcesses)),
    judge: (observation) => {
      const verdict = judgeByHelper(observation);
      const made = /after (\d+) processes/.exec(observation.helper?.detail ?? '');
      if (verdict.outcome === 'refused' && !made) return { outcome: 'inconclusive', reason: verdict.reason };
      return verdict;
    },
  },
  {
    id: 'memory-hog',
    title: 'allocate past the memory cap',
    category: 'resources',
    attempts: 'allocates and touches twice the memory cap',
    fixtures: [],
    capabilities: withResources({ memoryBytes: ESCAPE_MEMORY_BYTES }),
    command: (context) =>
      context.helper('memory-hog', String(2 * context.capabilities.resources.memoryBytes)),
    judge: judgeByCap,
  },
  {
    id: 'disk-fill-tmpfs',
    title: 'fill the writable tmpfs paths past the memory cap',
    category: 'resources',
    attempts: 'writes 1.5 times the memory cap, half to /tmp and half to /dev/shm (each half below the cap)',
    fixtures: [],
    capabilities: withResources({ memoryBytes: ESCAPE_MEMORY_BYTES }),
    command: (context) =>
      context.helper(
        'disk-fill',
        String(Math.floor(1.5 * context.capabilities.resources.memoryBytes)),
        context.token,
        '/tmp',
        '/dev/shm',
      ),
    judge: judgeByCap,
  },
  {
    id: 'timeout-escape',
    title: 'outlive the timeout with setsid and a double fork',
    category: 'timeout',
    attempts: 'starts a setsid child and a double-forked grandchild that write a file after the timeout',
    fixtures: [],
    capabilities: (capabilities, suite) => withResources({ timeoutMs: 1000 * suite.scale })(capabilities),
    command: (context) =>
      context.helper(
        'tree',
        'both',
        join(context.workspace, 'survivor'),
        String(context.capabilities.resources.timeoutMs + 1500 * context.scale),
      ),
    judge: async (observation, context) => {
      if (!observation.result.timedOut)
        return { outcome: 'inconclusive', reason: 'the sandbox ended before its timeout' };
      const deadline = context.launchedAt + context.capabilities.resources.timeoutMs + 2500 * context.scale;
      await sleep(Math.max(0, deadline - Date.now()));
      const survivors = readdirSync(context.workspace).filter((entry) => entry.startsWith('survivor.'));
      return survivors.length > 0
        ? { outcome: 'escaped', reason: `descendants outlived the timeout: ${survivors.join(', ')}` }
        : { outcome: 'refused', reason: 'every descendant died at the timeout' };
    },
  },
];

/**
 * The cases that depend on the sandbox's network mode (network and IPC). A tier runs them a second
 * time under an allow-list with `only: NETWORK_ESCAPE_CASE_IDS`, since the rest of the corpus does
 * not change with the network mode.
 */
export const NETWORK_ESCAPE_CASE_IDS: readonly EscapeCaseId[] = ESCAPE_CASES.filter(
  (escapeCase) => escapeCase.category === 'network' || escapeCase.category === 'ipc',
).map((escapeCase) => escapeCase.id);
