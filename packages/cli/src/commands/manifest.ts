import { resolve } from 'node:path';
import {
  BulkheadError,
  type Capabilities,
  type IsolationProvider,
  type ProbeReport,
  requiredCapabilityKeys,
} from '@bulkhead/core';
import * as manifestPackage from '@bulkhead/manifest';
import {
  formatBytes,
  formatDuration,
  formatEndpoint,
  loadManifest,
  manifestJsonSchema,
  type RuleOrigin,
} from '@bulkhead/manifest';
import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS } from '../exit-status.js';
import { type CliIo, type Colors, colorsFor, printError, writeLine } from '../io.js';
import {
  type CompiledManifest,
  compileForHost,
  describeManifestSource,
  findManifest,
} from '../manifest-input.js';
import { assertSomeTierInstalled, loadInstalledTiers } from '../tiers.js';

/** The marker `explain` puts on every value that came from the defaults rather than the manifest. */
export const DEFAULT_MARKER = '(default)';

async function checkFile(context: CommandContext, file: string): Promise<boolean> {
  const { io } = context;
  const path = resolve(io.cwd, file);
  try {
    const document = await loadManifest(path);
    // Compiling too catches what only the host can say: paths that expand, the organisation policy.
    const compiled = await compileForHost(io, { origin: 'option', path, document });
    writeLine(io.stdout, `${file}: ok`);
    for (const warning of compiled.warnings) writeLine(io.stdout, `  warning: ${warning}`);
    return true;
  } catch (error) {
    printError(io, error);
    return false;
  }
}

interface CapabilityLine {
  field: string;
  value: string;
  /** The manifest keys this line reflects; it is marked as a default when the manifest set none of them. */
  keys: string[];
}

/** The capabilities as one line per manifest field, keyed as in the manifest. */
function capabilityLines({ capabilities, minimumTier }: CompiledManifest): CapabilityLine[] {
  const devices = Object.entries(capabilities.devices)
    .filter(([, granted]) => granted)
    .map(([device]) => device);
  const network =
    capabilities.network.mode === 'allowlist'
      ? `allow-list: ${capabilities.network.allow.map(formatEndpoint).join(', ')}`
      : capabilities.network.mode === 'open'
        ? 'open (the whole internet)'
        : 'none';
  const { gpus } = capabilities.resources;
  return [
    { field: 'tier', value: `${minimumTier} or stronger`, keys: ['tier'] },
    { field: 'network', value: network, keys: ['network.internet', 'network.allow'] },
    { field: 'processes.spawn', value: String(capabilities.process.spawn), keys: ['processes.spawn'] },
    {
      field: 'processes.max',
      value: Number.isFinite(capabilities.process.maxProcesses)
        ? String(capabilities.process.maxProcesses)
        : 'unlimited',
      keys: ['processes.max'],
    },
    {
      field: 'resources.memory',
      value: formatBytes(capabilities.resources.memoryBytes),
      keys: ['resources.memory'],
    },
    {
      field: 'resources.timeout',
      value: formatDuration(capabilities.resources.timeoutMs),
      keys: ['resources.timeout'],
    },
    {
      field: 'resources.cpus',
      value: capabilities.resources.cpus === undefined ? 'unlimited' : String(capabilities.resources.cpus),
      keys: ['resources.cpus'],
    },
    {
      field: 'resources.gpus',
      value: Array.isArray(gpus) ? gpus.join(', ') : gpus,
      keys: ['resources.gpus'],
    },
    {
      field: 'devices',
      value: devices.length === 0 ? 'none' : devices.join(', '),
      keys: ['clipboard', 'audio', 'webcam', 'display', 'input'].map((device) => `devices.${device}`),
    },
    // Names only: inherited values are often credentials.
    {
      field: 'env',
      value: Object.keys(capabilities.env).sort().join(', ') || '(empty)',
      keys: ['env.inherit', 'env.set'],
    },
    { field: 'workdir', value: capabilities.workdir, keys: [] },
    { field: 'identity.name', value: capabilities.identity?.name ?? '(none)', keys: [] },
  ];
}

const ORIGIN_MARKERS: Record<RuleOrigin, string> = {
  default: DEFAULT_MARKER,
  manifest: '',
  'command line': '(command line)',
  policy: '(organisation policy)',
};

function printCapabilities(io: CliIo, compiled: CompiledManifest, colors: Colors): void {
  const { capabilities, defaulted } = compiled;
  const mark = (text: string) => (text ? ` ${colors.dim(text)}` : '');
  for (const rule of ['read', 'write', 'deny'] as const) {
    const paths = capabilities.filesystem[rule];
    writeLine(io.stdout, `  filesystem.${rule}${paths.length === 0 ? '  (none)' : ''}`);
    for (const path of paths) {
      writeLine(io.stdout, `    ${path}${mark(ORIGIN_MARKERS[compiled.pathOrigins[path] ?? 'manifest'])}`);
    }
  }
  const lines = capabilityLines(compiled);
  const width = Math.max(...lines.map((line) => line.field.length));
  for (const line of lines) {
    const isDefault = line.keys.length > 0 && line.keys.every((key) => defaulted.includes(key));
    writeLine(
      io.stdout,
      `  ${line.field.padEnd(width)}  ${line.value}${isDefault ? mark(DEFAULT_MARKER) : ''}`,
    );
  }
}

function describeEnforcement(probe: ProbeReport, capabilities: Capabilities, colors: Colors): string[] {
  const lines: string[] = [];
  for (const capability of requiredCapabilityKeys(capabilities)) {
    const enforcement = probe.enforcement[capability];
    if (enforcement?.enforced) {
      lines.push(
        `    ${capability}: ${enforcement.mechanisms.join(' + ')}${enforcement.note ? ` (${enforcement.note})` : ''}`,
      );
    } else {
      lines.push(
        `    ${capability}: ${colors.red('not enforceable here:')} ${enforcement?.reason ?? 'no mechanism'}`,
      );
      if (enforcement?.fix) lines.push(`      fix: ${enforcement.fix}`);
    }
  }
  return lines;
}

async function probeOrReason(
  registry: { probe(tier: string): Promise<ProbeReport> },
  provider: IsolationProvider,
) {
  try {
    return { probe: await registry.probe(provider.tier) };
  } catch (error) {
    return { failure: `its probe failed: ${(error as Error).message}` };
  }
}

async function printExplanation(
  context: CommandContext,
  compiled: CompiledManifest,
  title: string,
): Promise<void> {
  const { io } = context;
  const colors = colorsFor(io.stdout, io.env);
  const { capabilities } = compiled;
  writeLine(io.stdout, colors.bold(title));
  writeLine(io.stdout, `  digest: ${compiled.digest}`);
  writeLine(io.stdout);
  writeLine(
    io.stdout,
    colors.bold(`Capabilities (${DEFAULT_MARKER} = not set by the manifest, the built-in default applies):`),
  );
  printCapabilities(io, compiled, colors);
  for (const warning of compiled.warnings) writeLine(io.stdout, `  ${colors.yellow('warning:')} ${warning}`);
  writeLine(io.stdout);

  writeLine(io.stdout, colors.bold('Enforcement on this host, per tier:'));
  const { registry, installations } = await loadInstalledTiers(context.importModule);
  for (const installation of installations) {
    if (!installation.installed) {
      writeLine(io.stdout, `  ${installation.tier}: ${installation.reason}: ${installation.fix}`);
      continue;
    }
    const outcome = await probeOrReason(registry, installation.provider);
    if (!outcome.probe) {
      writeLine(io.stdout, `  ${installation.tier}: ${colors.red('unavailable:')} ${outcome.failure}`);
      continue;
    }
    const { probe } = outcome;
    if (!probe.available) {
      writeLine(
        io.stdout,
        `  ${installation.tier}: ${colors.red('unavailable:')} ${probe.reason ?? 'its probe says it cannot run here'}`,
      );
      if (probe.fix) writeLine(io.stdout, `    fix: ${probe.fix}`);
      continue;
    }
    writeLine(io.stdout, `  ${installation.tier}:`);
    for (const line of describeEnforcement(probe, capabilities, colors)) writeLine(io.stdout, line);
  }
  writeLine(io.stdout, `  none: no isolation at all; only with --tier none, for debugging`);
  writeLine(io.stdout);
  try {
    assertSomeTierInstalled(installations);
    const selection = await registry.select(capabilities, { minimumTier: compiled.minimumTier });
    writeLine(io.stdout, colors.green(`bulkhead run would use tier '${selection.provider.tier}'.`));
  } catch (error) {
    writeLine(io.stdout, colors.red(`bulkhead run would refuse: ${(error as Error).message}`));
    if (BulkheadError.isInstance(error) && error.fix) writeLine(io.stdout, `fix: ${error.fix}`);
  }
}

type MxcImporter = (path: string) => Promise<string> | string;

/** `importMxcConfig` when this version of @bulkhead/manifest has it. */
function mxcImporter(): MxcImporter | undefined {
  const candidate = (manifestPackage as Record<string, unknown>).importMxcConfig;
  return typeof candidate === 'function' ? (candidate as MxcImporter) : undefined;
}

export function registerManifestCommand(program: Command, context: CommandContext): void {
  const { io } = context;
  const manifest = program
    .command('manifest')
    .summary('check, explain and convert manifests')
    .description(
      'Work with bulkhead.yaml manifests: check them, see what they compile to and how this host enforces it.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ bulkhead manifest check bulkhead.yaml ci.yaml
  $ bulkhead manifest explain bulkhead.yaml
  $ bulkhead manifest schema > bulkhead.schema.json`,
    );

  manifest
    .command('check')
    .summary('validate manifests; exit 1 with located errors')
    .description(
      'Parse, validate and compile each manifest (against the organisation policy, if any). Prints "ok" or\nthe errors located as file:line:column, and exits 1 when any file has an error.',
    )
    .argument('<files...>', 'the manifests to check')
    .addHelpText(
      'after',
      '\nExamples:\n  $ bulkhead manifest check bulkhead.yaml\n  $ bulkhead manifest check examples/*.yaml',
    )
    .action(async (files: string[]) => {
      let ok = true;
      for (const file of files) ok = (await checkFile(context, file)) && ok;
      context.exitStatus = ok ? EXIT_STATUS.ok : EXIT_STATUS.failure;
    });

  manifest
    .command('explain')
    .summary('show the compiled capabilities and how each tier would enforce them here')
    .description(
      'Compile a manifest (default: ./bulkhead.yaml, else the built-in default) and print its capabilities,\n' +
        `marking ${DEFAULT_MARKER} what the manifest left to the defaults, then, per tier, the mechanism that would\n` +
        'enforce each capability on this host, or why it cannot.',
    )
    .argument('[file]', 'the manifest (default: ./bulkhead.yaml when present, else the built-in default)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ bulkhead manifest explain bulkhead.yaml\n  $ bulkhead manifest explain        # the built-in default',
    )
    .action(async (file: string | undefined) => {
      try {
        const source = await findManifest(io, file);
        const compiled = await compileForHost(io, source);
        await printExplanation(context, compiled, `Manifest: ${describeManifestSource(source)}`);
      } catch (error) {
        printError(io, error);
        context.exitStatus = EXIT_STATUS.failure;
      }
    });

  manifest
    .command('schema')
    .summary('print the JSON Schema of the manifest')
    .description('Print the JSON Schema of bulkhead.yaml, for editors ($schema) and other tools.')
    .addHelpText('after', '\nExamples:\n  $ bulkhead manifest schema > bulkhead.schema.json')
    .action(() => {
      writeLine(io.stdout, JSON.stringify(manifestJsonSchema(), null, 2));
    });

  const importMxc = mxcImporter();
  if (importMxc) {
    manifest
      .command('import-mxc')
      .summary('print the bulkhead.yaml equivalent of a Microsoft MXC config')
      .description(
        'Convert an MXC config (JSON) into the equivalent bulkhead.yaml and print it. A field that\ncannot be mapped is an error that names it.',
      )
      .argument('<file>', 'the MXC config')
      .addHelpText('after', '\nExamples:\n  $ bulkhead manifest import-mxc mxc.json > bulkhead.yaml')
      .action(async (file: string) => {
        try {
          const yaml = await importMxc(resolve(io.cwd, file));
          io.stdout.write(yaml.endsWith('\n') ? yaml : `${yaml}\n`);
        } catch (error) {
          printError(io, error);
          context.exitStatus = EXIT_STATUS.failure;
        }
      });
  }
}
