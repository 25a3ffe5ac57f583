import { isAbsolute, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  BulkheadError,
  type LaunchedSandbox,
  type LaunchOptions,
  launch,
  type SandboxResult,
  type Violation,
} from '@bulkhead/core';
import type { Command } from 'commander';
import { cacheDirectory } from '../cache-directory.js';
import { type CommandContext, collect } from '../command-context.js';
import { isInformationalNote } from '../enforcement-notes.js';
import { EXIT_STATUS, exitStatusOf, signalExitStatus } from '../exit-status.js';
import { type CliIo, colorsFor, printError, printWarning, writeLine } from '../io.js';
import {
  compileForHost,
  describeManifestSource,
  findManifest,
  type ManifestOverrides,
  type ManifestSource,
} from '../manifest-input.js';
import { assertSomeTierInstalled, KNOWN_TIERS, loadTiersForLaunch, tierNotInstalledError } from '../tiers.js';

export interface RunCommandOptions {
  tier?: string;
  manifest?: string;
  read?: string[];
  write?: string[];
  deny?: string[];
  net?: string;
  /** `NAME:ADDRESS` mappings for the egress proxy of an allow-list (`--resolve`, repeatable). */
  resolve?: string[];
  memory?: string;
  timeout?: string;
  /** False with `--no-spawn`. */
  spawn: boolean;
  /** `--display none|private|host`: a display for the session tier's sandbox. */
  display?: string;
  interactive?: boolean;
  json?: boolean;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ bulkhead run -- ls -la                      # the built-in default manifest (or ./bulkhead.yaml)
  $ bulkhead run -m agent.yaml -- npm test      # your manifest
  $ bulkhead run --write ./out --net api.openai.com:443 -- python3 agent.py
  $ bulkhead run --net api.test:8443 --resolve api.test:127.0.0.1 -- curl https://api.test:8443/
  $ bulkhead run --memory 256MB --timeout 30s --no-spawn -- node script.js
  $ echo data | bulkhead run --json -- wc -c    # stdin streams through; the result as JSON on stderr
  $ bulkhead run --tier none -- env             # NO isolation, for debugging only

Exit status: the command's own; 128+N when signal N ended it; 124 on timeout; 125 when Bulkhead
refused or failed (bad manifest, unenforceable capability, tier unavailable); 126 not executable;
127 not found; 130/143 when you interrupted it (Ctrl-C / SIGTERM) and the sandbox was cleaned up.`;

/** The signals that end the CLI: the sandbox is killed and cleaned up first. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function registerRunCommand(program: Command, context: CommandContext): void {
  program
    .command('run')
    .summary('run a command in a sandbox')
    .description(
      'Run a command in a kernel-enforced sandbox. The manifest (-m FILE, else ./bulkhead.yaml, else the built-in ' +
        'default: read system directories, read/write the current directory, no network) says what it may do; ' +
        'the flags narrow or extend it like its own fields, and the organisation policy is the ceiling.',
    )
    .argument('<command...>', 'the program and its arguments (put them after --)')
    .option(
      '--tier <tier>',
      `the tier to use: ${KNOWN_TIERS.map((known) => known.tier).join(', ')}, or none (NO isolation)`,
    )
    .option(
      '-m, --manifest <file>',
      'the manifest (default: ./bulkhead.yaml when present, else the built-in default)',
    )
    .option('--read <path>', 'also allow reading PATH (repeatable)', collect)
    .option('--write <path>', 'also allow reading and writing PATH (repeatable)', collect)
    .option('--deny <path>', 'deny PATH, even inside a grant (repeatable)', collect)
    .option(
      '--net <network>',
      'the network: none, open, or an allow-list HOST:PORT,... (reached through the egress proxy: HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at it; a refusal names the rule)',
    )
    .option(
      '--resolve <name:address>',
      "with an allow-list, the proxy resolves NAME to ADDRESS (like curl's --resolve; repeatable), and ADDRESS may be loopback or private where NAME is allowed",
      collect,
    )
    .option('--memory <size>', 'memory cap of the whole sandbox, e.g. 512MB, 2GiB')
    .option('--timeout <duration>', 'wall-clock limit of the whole sandbox, e.g. 30s, 5m')
    .option('--no-spawn', 'forbid creating processes')
    .option(
      '--display <mode>',
      "give the sandbox a display (session tier): 'private' = its own headless X server and clipboard, 'host' = your display (warned), 'none' = no display",
    )
    .option(
      '-i, --interactive',
      'forward what you type to the command (the terminal itself is never handed over)',
    )
    .option('--json', 'write the result (with id, tier, manifest digest) as one JSON line to stderr at exit')
    .option('-v, --verbose', 'say which manifest and tier are used and how each capability is enforced')
    .passThroughOptions()
    .addHelpText('after', EXAMPLES)
    .action(async (command: string[], options: RunCommandOptions) => {
      context.exitStatus = await runCommand(context, command, options);
    });
}

/** Relative paths on the command line are relative to where the user stands, not to the manifest. */
function absolutePaths(io: CliIo, paths: string[]): string[] {
  return paths.map((path) =>
    isAbsolute(path) || path.startsWith('~') || path.startsWith('${') ? path : resolve(io.cwd, path),
  );
}

function networkOverride(value: string): 'none' | 'open' | string[] {
  if (value === 'none' || value === 'open') return value;
  return value
    .split(',')
    .map((endpoint) => endpoint.trim())
    .filter((endpoint) => endpoint !== '');
}

function overridesFrom(io: CliIo, options: RunCommandOptions): ManifestOverrides {
  return {
    ...(options.tier !== undefined && options.tier !== 'none' ? { tier: options.tier } : {}),
    ...(options.read ? { read: absolutePaths(io, options.read) } : {}),
    ...(options.write ? { write: absolutePaths(io, options.write) } : {}),
    ...(options.deny ? { deny: absolutePaths(io, options.deny) } : {}),
    ...(options.net !== undefined ? { network: networkOverride(options.net) } : {}),
    ...(options.memory !== undefined ? { memory: options.memory } : {}),
    ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    ...(options.spawn === false ? { spawn: false } : {}),
  } as ManifestOverrides;
}

const DISPLAY_MODES = ['none', 'private', 'host'] as const;
type DisplayMode = (typeof DISPLAY_MODES)[number];

/**
 * The session tier's display mode: the flag's, or `private` when the manifest asks for a display
 * without saying whose (a display of its own is the one that gives nothing of the user's away).
 */
function displayMode(flag: string | undefined, manifestWantsDisplay: boolean): DisplayMode | undefined {
  if (flag === undefined) return manifestWantsDisplay ? 'private' : undefined;
  if (!(DISPLAY_MODES as readonly string[]).includes(flag)) {
    throw new BulkheadError(
      'INVALID_ARGUMENT',
      `--display takes none, private or host, not '${flag}'. Fix: --display private for a headless display of the sandbox's own.`,
      { fix: '--display private' },
    );
  }
  return flag as DisplayMode;
}

/**
 * `--resolve` entries, checked: a resolver for the process tier's egress proxy (other names go to
 * the system's resolver, as with curl's --resolve). @bulkhead/egress is imported only here: a run
 * without `--resolve` does not pay for loading it.
 */
async function resolveOptions(options: RunCommandOptions) {
  const entries = options.resolve ?? [];
  if (entries.length === 0) return undefined;
  const { createStaticResolver, rulesForResolveEntries, systemResolver } = await import('@bulkhead/egress');
  return {
    entries,
    resolver: createStaticResolver(entries, systemResolver),
    rulesForResolveEntries,
  };
}

/**
 * Where the process tier keeps its probe of bubblewrap and user namespaces between runs (two bubblewrap
 * runs saved per `bulkhead run`). The tier keys every entry by what the answer depends on and never
 * keeps a weakening one.
 */
export function probeCacheDirectory(env: CliIo['env']): string {
  return cacheDirectory(env);
}

function unknownTierError(named: string): BulkheadError {
  return new BulkheadError(
    'UNKNOWN_TIER',
    `Unknown tier '${named}'. Known tiers: ${[...KNOWN_TIERS.map((known) => known.tier), 'none'].join(', ')}.`,
    {
      tier: named,
      fix: 'name one of the known tiers, or leave --tier out to use the weakest tier that enforces the manifest',
    },
  );
}

/**
 * Where a run's network setting came from, in the words the user would look for: the flag, the
 * manifest's file, or a default.
 */
export function networkOrigin(
  options: Pick<RunCommandOptions, 'net'>,
  source: ManifestSource,
  defaulted: readonly string[],
): string {
  if (options.net !== undefined) return `--net ${options.net}`;
  if (source.origin === 'default') return 'the built-in default manifest';
  const setsNetwork = !defaulted.includes('network.internet') || !defaulted.includes('network.allow');
  return setsNetwork
    ? `the manifest ${source.path}`
    : `the default, as the manifest ${source.path} sets no network`;
}

/**
 * The line said after a failed run whose sandbox had no network at all: the kernel refuses such a
 * connection (no route, no resolver) without naming any rule, so the payload's own error ("Could not
 * resolve host") would not say why. An allow-list's refusals are named by the proxy instead.
 */
export function noNetworkNotice(origin: string): string {
  return `this sandbox has no network (network: none, from ${origin}): every connection and DNS lookup is refused. Allow endpoints with --net HOST:PORT,... or network.allow in the manifest.`;
}

interface PreparedRun {
  launchOptions: LaunchOptions;
  /** Where the network setting came from (see networkOrigin). */
  networkOrigin: string;
}

async function prepare(
  context: CommandContext,
  command: string[],
  options: RunCommandOptions,
): Promise<PreparedRun> {
  const { io } = context;
  const named = options.tier;
  if (named !== undefined && named !== 'none' && !KNOWN_TIERS.some((known) => known.tier === named)) {
    throw unknownTierError(named);
  }
  const resolve = await resolveOptions(options);

  const source = await findManifest(io, options.manifest);
  if (options.verbose) writeLine(io.stderr, `bulkhead: using ${describeManifestSource(source)}`);
  const compiled = await compileForHost(io, source, overridesFrom(io, options));
  for (const warning of compiled.warnings) printWarning(io, warning);
  if (options.verbose && compiled.defaulted.length > 0) {
    writeLine(io.stderr, `bulkhead: defaults in effect for: ${compiled.defaulted.join(', ')}`);
  }

  let { capabilities } = compiled;
  const display = displayMode(options.display, capabilities.devices.display);
  if (display !== undefined) {
    capabilities = { ...capabilities, devices: { ...capabilities.devices, display: display !== 'none' } };
  }
  if (resolve) {
    if (capabilities.network.mode === 'allowlist') {
      // The person who mapped a name to a loopback address meant it: that address, on the ports its
      // name is allowed, passes the proxy's rebinding check.
      const allow = capabilities.network.allow;
      const extra = resolve.rulesForResolveEntries(allow, resolve.entries);
      capabilities = { ...capabilities, network: { ...capabilities.network, allow: [...allow, ...extra] } };
    } else {
      printWarning(
        io,
        `--resolve has no effect with network '${capabilities.network.mode}': it maps names for the egress proxy of an allow-list (--net HOST:PORT,...).`,
      );
    }
  }

  // Only the tiers this launch needs are imported (see loadTiersForLaunch): start-up time.
  const { registry, installations } = await loadTiersForLaunch({
    capabilities,
    ...(named === undefined ? { minimumTier: compiled.minimumTier } : { tier: named }),
    ...(context.importModule ? { importer: context.importModule } : {}),
    factoryOptions: {
      process: {
        probeCache: { directory: probeCacheDirectory(io.env) },
        // One launch per CLI process: a sandbox prepared for a next launch, or a spawner process for
        // the launches after this one, would only cost this one.
        preparedSandboxes: 0,
        spawner: false,
        ...(resolve ? { egress: { resolver: resolve.resolver } } : {}),
      },
      session: { preparedSandboxes: 0, ...(display === undefined ? {} : { display }) },
    },
  });
  if (named !== undefined && named !== 'none') {
    const installation = installations.find((candidate) => candidate.tier === named);
    if (!installation) throw unknownTierError(named);
    if (!installation.installed) throw tierNotInstalledError(installation);
  }
  if (named === undefined) assertSomeTierInstalled(installations, compiled.minimumTier);

  const tierChoice: Pick<LaunchOptions, 'tier' | 'minimumTier'> =
    named === 'none'
      ? { tier: 'none' }
      : named !== undefined
        ? { tier: compiled.minimumTier }
        : { minimumTier: compiled.minimumTier };
  return {
    launchOptions: {
      command,
      capabilities,
      providers: registry,
      manifestDigest: compiled.digest,
      ...tierChoice,
    },
    networkOrigin: networkOrigin(options, source, compiled.defaulted),
  };
}

/**
 * The status and words for a launch that failed before the command ran. Real tiers report a missing
 * or non-executable command as the payload's own 127/126; only the `none` tier spawns the command
 * directly, so only its spawn errors are about the command. Any other error is Bulkhead's (125).
 */
function launchFailure(
  error: unknown,
  command: string[],
  tier: string | undefined,
): { status: number; message?: string } {
  const spawnError = error as (NodeJS.ErrnoException & { path?: string }) | undefined;
  const aboutTheCommand =
    tier === 'none' &&
    !BulkheadError.isInstance(error) &&
    spawnError?.syscall?.startsWith('spawn') === true &&
    spawnError.path === command[0];
  if (aboutTheCommand && spawnError?.code === 'ENOENT') {
    return { status: EXIT_STATUS.notFound, message: `${command[0]}: command not found` };
  }
  if (aboutTheCommand && (spawnError?.code === 'EACCES' || spawnError?.code === 'ENOEXEC')) {
    return {
      status: EXIT_STATUS.notExecutable,
      message: `${command[0]}: cannot execute (${spawnError.code})`,
    };
  }
  return { status: EXIT_STATUS.bulkheadFailure };
}

/**
 * Copies a sandbox stream to ours with backpressure. When our reader goes away (`bulkhead run -- yes |
 * head -1`), `onBroken` runs once, as SIGPIPE would for a command writing to a closed pipe, and the rest
 * is drained so that nothing stalls.
 */
function relay(from: Readable, to: Writable, onBroken: () => void): Promise<void> {
  return new Promise((resolvePromise) => {
    let broken = false;
    const onError = () => {
      if (broken) return;
      broken = true;
      from.resume();
      onBroken();
    };
    to.on('error', onError);
    from.on('data', (chunk: Buffer) => {
      if (broken) return;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    const done = () => {
      to.off('error', onError);
      resolvePromise();
    };
    from.once('end', done);
    from.once('close', done);
    from.once('error', done);
  });
}

/**
 * One line per refusal, naming the rule that refused it and what was refused. The egress proxy's
 * messages name the host and port already; a violation whose message does not gets them added.
 */
export function describeViolation(violation: Violation): string {
  const rule = violation.rule ? ` (rule ${violation.rule})` : '';
  const endpoint =
    violation.host === undefined
      ? undefined
      : violation.port === undefined
        ? violation.host
        : `${violation.host.includes(':') ? `[${violation.host}]` : violation.host}:${violation.port}`;
  const target =
    endpoint !== undefined && !violation.message.includes(violation.host ?? '') ? ` [${endpoint}]` : '';
  return `violation${rule}: ${violation.message}${target}`;
}

function sayViolation(io: CliIo, violation: Violation): void {
  const colors = colorsFor(io.stderr, io.env);
  writeLine(io.stderr, `${colors.bold('bulkhead:')} ${colors.red(describeViolation(violation))}`);
}

function printOutcome(
  io: CliIo,
  result: SandboxResult,
  options: RunCommandOptions,
  tier: string,
  alreadySaid: ReadonlySet<Violation>,
): void {
  const colors = colorsFor(io.stderr, io.env);
  const say = (message: string) => writeLine(io.stderr, `${colors.bold('bulkhead:')} ${message}`);
  if (result.timedOut) say('the command ran past its timeout and was killed with its whole process tree');
  if (result.oomKilled) say('the command reached the memory cap and was killed');
  for (const violation of result.violations) if (!alreadySaid.has(violation)) sayViolation(io, violation);
  // The none tier's warning was already said loudly before the run. A warning that a setting was
  // honoured only partly is said plainly on every run; a note on how a setting was enforced that
  // weakens nothing (enforcement-notes.ts) is listed by --verbose and --json only.
  if (tier !== 'none') {
    for (const warning of result.warnings) {
      if (options.verbose || !isInformationalNote(warning)) printWarning(io, warning);
    }
  }
  if (options.verbose) {
    for (const [capability, mechanisms] of Object.entries(result.enforcement)) {
      say(`  ${capability}: enforced by ${mechanisms?.join(' + ') || 'nothing (nothing to restrict)'}`);
    }
  }
}

export async function runCommand(
  context: CommandContext,
  command: string[],
  options: RunCommandOptions,
): Promise<number> {
  let interruptedBy: NodeJS.Signals | undefined;
  let sandbox: LaunchedSandbox | undefined;
  const onInterrupt = (signal: NodeJS.Signals) => {
    if (interruptedBy) return;
    interruptedBy = signal;
    void sandbox?.kill('SIGKILL');
  };
  for (const signal of INTERRUPTS) process.on(signal, onInterrupt);
  try {
    return await runSandboxed(context, command, options, {
      interrupted: () => interruptedBy,
      launched: (launched) => {
        sandbox = launched;
        if (interruptedBy) void launched.kill('SIGKILL');
      },
    });
  } finally {
    for (const signal of INTERRUPTS) process.off(signal, onInterrupt);
  }
}

interface InterruptState {
  interrupted: () => NodeJS.Signals | undefined;
  launched: (sandbox: LaunchedSandbox) => void;
}

async function runSandboxed(
  context: CommandContext,
  command: string[],
  options: RunCommandOptions,
  interrupts: InterruptState,
): Promise<number> {
  const { io } = context;
  const refuse = (error: unknown, status: number = EXIT_STATUS.bulkheadFailure): number => {
    printError(io, error);
    if (options.json) {
      const json = BulkheadError.isInstance(error)
        ? error.toJSON()
        : { message: String((error as Error)?.message ?? error) };
      writeLine(io.stderr, JSON.stringify({ exitStatus: status, error: json }));
    }
    return status;
  };

  let prepared: PreparedRun;
  try {
    prepared = await prepare(context, command, options);
  } catch (error) {
    return refuse(error);
  }
  const { launchOptions } = prepared;
  if (options.tier === 'none') {
    printWarning(
      io,
      '--tier none runs the command WITHOUT ANY ISOLATION: it has your full rights over files, network and processes. Use it for debugging only.',
    );
  }

  // Said as they happen (a refused connection is what an agent's error message is about), once.
  const saidViolations = new Set<Violation>();
  let sandbox: LaunchedSandbox;
  try {
    sandbox = await launch({
      ...launchOptions,
      onViolation: (violation) => {
        saidViolations.add(violation);
        sayViolation(io, violation);
      },
    });
  } catch (error) {
    const failure = launchFailure(error, command, options.tier);
    if (failure.message) {
      writeLine(io.stderr, `bulkhead: ${failure.message}`);
      if (options.json)
        writeLine(
          io.stderr,
          JSON.stringify({ exitStatus: failure.status, error: { message: failure.message } }),
        );
      return failure.status;
    }
    return refuse(error, failure.status);
  }
  interrupts.launched(sandbox);

  if (options.verbose) writeLine(io.stderr, `bulkhead: sandbox ${sandbox.id} on tier '${sandbox.tier}'`);

  let outputClosed = false;
  const onOutputClosed = () => {
    outputClosed = true;
    void sandbox.kill('SIGKILL');
  };
  const stdoutDone = relay(sandbox.stdout, io.stdout, onOutputClosed);
  const stderrDone = relay(sandbox.stderr, io.stderr, onOutputClosed);
  // The payload may exit without reading its input; that is its right, not our error.
  sandbox.stdin.on('error', () => {});
  // The terminal is never handed over: only a pipe, and from a terminal only when asked.
  const forwardStdin = !io.stdin.isTTY || options.interactive === true;
  if (forwardStdin) io.stdin.pipe(sandbox.stdin);
  else sandbox.stdin.end();

  let result: SandboxResult;
  try {
    result = await sandbox.exited;
    // Every process of the sandbox is gone once `exited` resolved, so the pipes end promptly.
    await Promise.all([stdoutDone, stderrDone]);
  } catch (error) {
    return refuse(error);
  } finally {
    if (forwardStdin) {
      io.stdin.unpipe(sandbox.stdin);
      io.stdin.pause();
    }
    await sandbox[Symbol.asyncDispose]();
  }

  const interrupted = interrupts.interrupted();
  const status = interrupted
    ? signalExitStatus(interrupted)
    : outputClosed
      ? signalExitStatus('SIGPIPE')
      : exitStatusOf(result);
  if (options.resolve?.length && sandbox.tier !== 'process' && sandbox.tier !== 'none') {
    printWarning(
      io,
      `--resolve maps names for the process tier's egress proxy; the ${sandbox.tier} tier resolved names with the system's resolver.`,
    );
  }
  printOutcome(io, result, options, sandbox.tier, saidViolations);
  // Said only when the run failed on its own (not when the user interrupted it or stopped reading),
  // and never for --tier none, whose command had the host's network whatever the manifest said.
  const noNetwork =
    status !== EXIT_STATUS.ok &&
    !interrupted &&
    !outputClosed &&
    sandbox.tier !== 'none' &&
    launchOptions.capabilities.network.mode === 'none'
      ? { from: prepared.networkOrigin, message: noNetworkNotice(prepared.networkOrigin) }
      : undefined;
  // With --json the JSON line carries it, so that stderr's last line stays the one to parse.
  if (noNetwork && !options.json)
    writeLine(io.stderr, `${colorsFor(io.stderr, io.env).bold('bulkhead:')} ${noNetwork.message}`);
  if (options.json) {
    writeLine(
      io.stderr,
      JSON.stringify({
        id: sandbox.id,
        tier: sandbox.tier,
        manifestDigest: sandbox.manifestDigest,
        command,
        exitStatus: status,
        ...result,
        ...(noNetwork ? { noNetwork } : {}),
      }),
    );
  }
  return status;
}
