import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Capabilities, Sandbox, SandboxResult } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { ensureAttackHelper } from './attack-helper.js';
import { BEHAVIOUR_TESTS, type BehaviourTestName } from './conformance-tests.js';
import { describeEscapeCorpus } from './escape-runner.js';
import {
  cgroupDirectoriesOf,
  cgroupHierarchies,
  findProcessesByMarker,
  listDirectory,
  newMounts,
  readMounts,
  walkCgroupTree,
} from './host-inspection.js';
import { collectStream, describeOutcome, runInSandbox, waitForOutput } from './sandbox-session.js';
import {
  CONFORMANCE_TEMPORARY_PREFIX,
  type DescribeIsolationProviderOptions,
  helperCommand,
  type ProviderSource,
  prepareLaunch,
  type SuiteState,
  TRAVERSABLE_DIRECTORY_MODE,
} from './suite-state.js';

const KNOWN_TIER_VARIABLES = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG']);

/**
 * Registers the conformance suite of an isolation provider with vitest: the behaviour tests and the
 * escape corpus. Call it at the top level of a test file:
 *
 * ```ts
 * describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
 *   skip: { 'tcp-to-loopback-ipv6': 'this host has no IPv6 loopback' },
 * });
 * ```
 *
 * It calls `provider.launch()` directly, not core's `launch()`, so that the provider itself is proven
 * (core's fail-closed check is not there to catch what the provider forgot).
 */
export function describeIsolationProvider(
  provider: ProviderSource,
  options: DescribeIsolationProviderOptions = {},
): void {
  const scale = options.timeoutScale ?? 1;
  const title =
    options.name ??
    (typeof provider === 'function' ? 'isolation provider' : `isolation provider '${provider.tier}'`);
  const state = {} as SuiteState;

  describe(`${title} conformance`, () => {
    beforeAll(async () => {
      state.provider = typeof provider === 'function' ? await provider() : provider;
      state.helper = await ensureAttackHelper(
        options.helperDirectory === undefined ? {} : { directory: options.helperDirectory },
      );
      state.helperDirectory = dirname(state.helper);
      state.root = await realpath(await mkdtemp(join(tmpdir(), CONFORMANCE_TEMPORARY_PREFIX)));
      await chmod(state.root, TRAVERSABLE_DIRECTORY_MODE);
      state.canary = {
        name: `BULKHEAD_CONFORMANCE_CANARY_${randomBytes(4).toString('hex').toUpperCase()}`,
        value: `caller-secret-${randomUUID()}`,
      };
      process.env[state.canary.name] = state.canary.value;
      state.options = options;
      state.scale = scale;
    }, 120_000 * scale);

    afterAll(async () => {
      if (state.canary) delete process.env[state.canary.name];
      if (state.root) await rm(state.root, { recursive: true, force: true });
    });

    const behaviourTests = BEHAVIOUR_TESTS.filter((name) => !options.only || options.only.includes(name));
    // vitest fails an empty describe block, and `only` may select no behaviour test at all.
    if (behaviourTests.length > 0)
      describe('behaviour', () => {
        for (const name of behaviourTests) {
          const reason = options.skip?.[name];
          const body = BEHAVIOUR[name];
          if (reason) it.skip(`${name} (skipped: ${reason})`, () => {});
          else it(name, (context) => body(state, context), 60_000 * scale);
        }
      });

    describeEscapeCorpus(state, options);
  });
}

const SANDBOX_ID_PATTERN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/**
 * Other sandboxes on the same host (other suites, other tiers, other users) mount and unmount while
 * this test runs. A mount whose path carries a sandbox id other than this sandbox's is theirs; one
 * that carries this id, or none, is counted against the provider.
 */
function namesAnotherSandbox(mount: { mountPoint: string; source: string }, sandboxId: string): boolean {
  const ids = `${mount.mountPoint} ${mount.source}`.match(SANDBOX_ID_PATTERN) ?? [];
  return ids.length > 0 && !ids.some((id) => sandboxId.includes(id) || id.includes(sandboxId));
}

function withTimeout(capabilities: Capabilities, timeoutMs: number): Capabilities {
  return { ...capabilities, resources: { ...capabilities.resources, timeoutMs } };
}

async function launchHelper(
  state: SuiteState,
  capabilities: Capabilities,
  marker: string,
  id: string,
  ...args: string[]
): Promise<Sandbox> {
  return state.provider.launch({ command: helperCommand(state, marker, ...args), capabilities, id });
}

/**
 * Expects no process of the sandbox to remain on the host. SIGKILL is delivered asynchronously: a
 * process already killed can linger in /proc for a moment while it exits, so the check allows a short
 * grace. A survivor stays; a dying process is gone well within it.
 */
async function expectNoProcesses(state: SuiteState, marker: string, when: string): Promise<void> {
  let left = findProcessesByMarker(marker);
  for (let attempt = 0; left.length > 0 && attempt < 20; attempt++) {
    await sleep(100 * state.scale);
    left = findProcessesByMarker(marker);
  }
  expect(left, `processes of the sandbox still running ${when} (pids ${left.join(', ')})`).toEqual([]);
}

/** A pattern the helper's `spew` writes: byte i is i % 251. */
function spewPattern(size: number): Buffer {
  const buffer = Buffer.allocUnsafe(size);
  for (let index = 0; index < size; index++) buffer[index] = index % 251;
  return buffer;
}

const digest = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex');

type BehaviourTest = (state: SuiteState, context: TestContext) => Promise<void>;

async function expectExitCode(state: SuiteState, code: number): Promise<void> {
  const { capabilities, marker, id } = await prepareLaunch(state);
  const outcome = await runInSandbox({
    provider: state.provider,
    capabilities,
    id,
    command: helperCommand(state, marker, 'exit', String(code)),
  });
  expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(code);
  expect(outcome.result.signal).toBeNull();
  expect(outcome.result.timedOut).toBe(false);
}

async function expectSignal(state: SuiteState, signal: 'TERM' | 'KILL'): Promise<void> {
  const { capabilities, marker, id } = await prepareLaunch(state);
  const outcome = await runInSandbox({
    provider: state.provider,
    capabilities,
    id,
    command: helperCommand(state, marker, 'kill-self', signal),
  });
  expect(outcome.result.signal, describeOutcome(outcome)).toBe(`SIG${signal}`);
  expect(outcome.result.exitCode).toBeNull();
}

/**
 * Runs `tree MODE` under a short timeout and proves that no descendant survived it: none is left in
 * /proc, and none wrote its proof file after the timeout.
 */
async function expectTimeoutEndsTree(state: SuiteState, mode: 'grandchild' | 'setsid'): Promise<void> {
  const timeoutMs = 1000 * state.scale;
  const delayMs = timeoutMs + 1500 * state.scale;
  const { capabilities, marker, id, workspace } = await prepareLaunch(state, (base) =>
    withTimeout(base, timeoutMs),
  );
  const proof = join(workspace, 'survivor');
  const launchedAt = Date.now();
  const outcome = await runInSandbox({
    provider: state.provider,
    capabilities,
    id,
    command: helperCommand(state, marker, 'tree', mode, proof, String(delayMs)),
  });
  expect(outcome.result.timedOut, describeOutcome(outcome)).toBe(true);
  await expectNoProcesses(state, marker, 'after the timeout');
  // A descendant hidden from this host's /proc (in a guest) would still write its proof file.
  await sleep(Math.max(0, launchedAt + delayMs + 1000 * state.scale - Date.now()));
  expect(
    listDirectory(workspace),
    'a descendant outlived the timeout and wrote its proof file',
  ).not.toContain(`survivor.${mode}`);
}

/** Launches `tree MODE - 0`, waits until it runs, and returns what the dispose tests need. */
async function startTree(
  state: SuiteState,
  mode: 'grandchild' | 'setsid' | 'none',
): Promise<{ sandbox: Sandbox; marker: string; id: string; capabilities: Capabilities }> {
  const { capabilities, marker, id } = await prepareLaunch(state);
  const sandbox =
    mode === 'none'
      ? await launchHelper(state, capabilities, marker, id, 'pause')
      : await launchHelper(state, capabilities, marker, id, 'tree', mode, '-', '0');
  sandbox.stdin.on('error', () => {});
  sandbox.stderr.resume();
  await waitForOutput(sandbox.stdout, 'ready');
  sandbox.stdout.resume();
  return { sandbox, marker, id, capabilities };
}

async function expectDisposeEndsTree(state: SuiteState, mode: 'grandchild' | 'setsid'): Promise<void> {
  const { sandbox, marker } = await startTree(state, mode);
  const running = findProcessesByMarker(marker);
  expect(
    running.length,
    'no process of the sandbox is visible in /proc of the host, so this test cannot prove anything; a tier whose payload runs in a guest kernel should skip it with that reason',
  ).toBeGreaterThanOrEqual(2);
  await sandbox[Symbol.asyncDispose]();
  await expectNoProcesses(state, marker, 'after [Symbol.asyncDispose]() returned');
  const settled = await Promise.race([
    sandbox.exited.then(
      () => true,
      () => true,
    ),
    sleep(0).then(() => false),
  ]);
  expect(settled, '`exited` must be settled once dispose returned').toBe(true);
}

const BEHAVIOUR: Record<BehaviourTestName, BehaviourTest> = {
  'exit-code-zero': (state) => expectExitCode(state, 0),
  'exit-code-one': (state) => expectExitCode(state, 1),
  'exit-code-forty-two': (state) => expectExitCode(state, 42),
  'signal-sigterm': (state) => expectSignal(state, 'TERM'),
  'signal-sigkill': (state) => expectSignal(state, 'KILL'),

  async 'stdout-stderr-streaming'(state) {
    const { capabilities, marker, id } = await prepareLaunch(state);
    const sandbox = await launchHelper(state, capabilities, marker, id, 'stream');
    try {
      let exited = false;
      void sandbox.exited.then(
        () => {
          exited = true;
        },
        () => {},
      );
      // The payload blocks on stdin until we answer, so seeing its output now proves it streamed.
      const [out, err] = await Promise.all([
        waitForOutput(sandbox.stdout, 'ready-out'),
        waitForOutput(sandbox.stderr, 'ready-err'),
      ]);
      expect(exited).toBe(false);
      expect(out).toContain('ready-out');
      expect(err).toContain('ready-err');
      const rest = collectStream(sandbox.stdout);
      sandbox.stderr.resume();
      sandbox.stdin.end('go\n');
      const result = await sandbox.exited;
      expect(result.exitCode).toBe(0);
      expect((await rest).toString()).toContain('done');
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
  },

  async 'large-output'(state) {
    const size = 20 * 1024 * 1024;
    const { capabilities, marker, id } = await prepareLaunch(state);
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      command: helperCommand(state, marker, 'spew', String(size)),
    });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(0);
    const expected = digest(spewPattern(size));
    expect(outcome.stdout.length).toBe(size);
    expect(outcome.stderr.length).toBe(size);
    expect(digest(outcome.stdout), 'stdout lost or reordered bytes').toBe(expected);
    expect(digest(outcome.stderr), 'stderr lost or reordered bytes').toBe(expected);
  },

  async stdin(state) {
    const input = randomBytes(1024 * 1024);
    const { capabilities, marker, id } = await prepareLaunch(state);
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      input,
      command: helperCommand(state, marker, 'copy-stdin'),
    });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(0);
    expect(outcome.stdout.length).toBe(input.length);
    expect(outcome.stdout.equals(input), 'stdin did not arrive intact').toBe(true);
  },

  async 'working-directory'(state) {
    const { capabilities, marker, id } = await prepareLaunch(state);
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      command: helperCommand(state, marker, 'print-cwd'),
    });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(0);
    expect(outcome.stdout.toString().trim()).toBe(capabilities.workdir);
  },

  async environment(state) {
    const env = {
      BULKHEAD_CONFORMANCE_PLAIN: 'plain',
      BULKHEAD_CONFORMANCE_SPACES: ' a  b ',
      BULKHEAD_CONFORMANCE_SPECIAL: `quote' "double" $HOME ; a=b \\ ünïcødé`,
      BULKHEAD_CONFORMANCE_EMPTY: '',
    };
    const { capabilities, marker, id } = await prepareLaunch(state, (base) => ({ ...base, env }));
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      command: helperCommand(state, marker, 'print-environ'),
    });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(0);
    const text = outcome.stdout.toString('utf8');
    const seen = new Map<string, string>();
    for (const entry of text.split('\0').filter(Boolean)) {
      const equals = entry.indexOf('=');
      seen.set(entry.slice(0, equals), entry.slice(equals + 1));
    }
    for (const [name, value] of Object.entries(capabilities.env)) expect(seen.get(name), name).toBe(value);
    const extra = [...seen.keys()].filter(
      (name) => !(name in capabilities.env) && !KNOWN_TIER_VARIABLES.has(name),
    );
    expect(extra, 'variables beyond capabilities.env and the tier’s PATH/HOME/TMPDIR/LANG').toEqual([]);
    expect(text, 'the caller’s environment leaked into the sandbox').not.toContain(state.canary.value);
    expect(seen.has(state.canary.name)).toBe(false);
  },

  async 'command-not-found'(state) {
    const { capabilities, id } = await prepareLaunch(state);
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      command: [`bulkhead-conformance-no-such-command-${randomUUID()}`],
    });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(127);
  },

  async 'command-not-executable'(state) {
    const { capabilities, id, workspace } = await prepareLaunch(state);
    const script = join(workspace, 'not-executable');
    await writeFile(script, '#!/bin/sh\necho should not run\n');
    await chmod(script, 0o644);
    const outcome = await runInSandbox({ provider: state.provider, capabilities, id, command: [script] });
    expect(outcome.result.exitCode, describeOutcome(outcome)).toBe(126);
    expect(outcome.stdout.toString()).not.toContain('should not run');
  },

  async timeout(state) {
    const { capabilities, marker, id } = await prepareLaunch(state, (base) =>
      withTimeout(base, 1000 * state.scale),
    );
    const outcome = await runInSandbox({
      provider: state.provider,
      capabilities,
      id,
      command: helperCommand(state, marker, 'pause'),
    });
    expect(outcome.result.timedOut, describeOutcome(outcome)).toBe(true);
    expect(outcome.result.exitCode).not.toBe(0);
    expect(outcome.result.canceled).toBe(false);
    await expectNoProcesses(state, marker, 'after the timeout');
  },

  'timeout-ends-grandchild': (state) => expectTimeoutEndsTree(state, 'grandchild'),
  'timeout-ends-setsid-descendant': (state) => expectTimeoutEndsTree(state, 'setsid'),

  async kill(state) {
    const { sandbox, marker } = await startTree(state, 'grandchild');
    try {
      await sandbox.kill();
      const result: SandboxResult = await sandbox.exited;
      expect(result.canceled).toBe(true);
      expect(result.timedOut).toBe(false);
      expect(result.signal !== null || result.exitCode !== 0, 'a killed sandbox reported success').toBe(true);
      await expectNoProcesses(state, marker, 'after kill() and exited');
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
  },

  'dispose-leaves-no-process': (state) => expectDisposeEndsTree(state, 'grandchild'),
  'dispose-ends-setsid-descendant': (state) => expectDisposeEndsTree(state, 'setsid'),

  async 'dispose-leaves-no-mount'(state) {
    const before = readMounts();
    const { sandbox } = await startTree(state, 'none');
    await sandbox[Symbol.asyncDispose]();
    // Concurrent conformance runs of the none tier mount fixtures under their own roots; those are theirs.
    const others = join(tmpdir(), CONFORMANCE_TEMPORARY_PREFIX);
    const left = newMounts(before, readMounts()).filter(
      (mount) =>
        (!mount.mountPoint.startsWith(others) || mount.mountPoint.startsWith(state.root)) &&
        !namesAnotherSandbox(mount, sandbox.id),
    );
    expect(left, 'mounts left on the host after dispose').toEqual([]);
  },

  async 'dispose-leaves-no-temporary-directory'(state) {
    // The provider runs in this process: pointing TMPDIR at an empty directory of ours shows exactly
    // what it creates through os.tmpdir(); names carrying the sandbox id are looked for elsewhere.
    const privateTemporary = await mkdtemp(join(state.root, 'tmpdir-'));
    const places = [tmpdir(), '/dev/shm', process.env.XDG_RUNTIME_DIR].filter(
      (place): place is string => typeof place === 'string' && existsSync(place),
    );
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = privateTemporary;
    let id = '';
    let marker = '';
    try {
      const started = await startTree(state, 'none');
      id = started.id;
      marker = started.marker;
      await started.sandbox[Symbol.asyncDispose]();
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
    expect(listDirectory(privateTemporary), `left in TMPDIR (${privateTemporary})`).toEqual([]);
    for (const place of places) {
      const left = listDirectory(place).filter((entry) => entry.includes(id) || entry.includes(marker));
      expect(left, `left in ${place}`).toEqual([]);
    }
  },

  async 'dispose-leaves-no-cgroup'(state, context) {
    const hierarchies = cgroupHierarchies();
    if (hierarchies.length === 0) context.skip('no cgroup hierarchy is mounted on this host');
    const before = walkCgroupTree(hierarchies);
    const { sandbox, marker, id } = await startTree(state, 'none');
    let sandboxCgroups: string[] = [];
    try {
      const pids = findProcessesByMarker(marker);
      const own = new Set(cgroupDirectoriesOf('self', hierarchies));
      for (const pid of pids) {
        try {
          sandboxCgroups.push(
            ...cgroupDirectoriesOf(pid, hierarchies).filter((directory) => !own.has(directory)),
          );
        } catch {
          // A process of another user may hide its cgroup file; the tree walk below still runs.
        }
      }
      sandboxCgroups = [...new Set(sandboxCgroups)].filter((directory) => !before.directories.has(directory));
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
    const left = sandboxCgroups.filter((directory) => existsSync(directory));
    expect(left, 'cgroups of the sandbox left after dispose').toEqual([]);
    const after = walkCgroupTree(hierarchies);
    const named = [...after.directories].filter(
      (directory) =>
        !before.directories.has(directory) && (directory.includes(id) || directory.includes(marker)),
    );
    expect(named, 'cgroups named after the sandbox left after dispose').toEqual([]);
    if (sandboxCgroups.length === 0 && before.unreadable > 0) {
      context.skip(
        `the sandbox's processes showed no cgroup of their own and ${before.unreadable} cgroup directories are not readable by this user, so leftovers cannot be ruled out`,
      );
    }
  },
};
