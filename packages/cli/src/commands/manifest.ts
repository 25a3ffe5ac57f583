import { resolve } from 'node:path';
import {
  BulkheadError,
  type Capabilities,
  type IsolationProvider,
  type ProbeReport,
  requiredCapabilityKeys,
} from '@bulkhead/core';
import { explainCapabilities, loadMxcConfig, type MxcImport, manifestJsonSchema } from '@bulkhead/manifest';
import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS } from '../exit-status.js';
import { type Colors, colorsFor, printError, writeLine } from '../io.js';
import {
  type CompiledManifest,
  compileForHost,
  describeManifestSource,
  findManifest,
  loadManifestFile,
} from '../manifest-input.js';
import { assertSomeTierInstalled, loadInstalledTiers } from '../tiers.js';

/** The marker `explain` puts on every value that came from the defaults rather than the manifest. */
export const DEFAULT_MARKER = '(default)';

async function checkFile(context: CommandContext, file: string): Promise<boolean> {
  const { io } = context;
  const path = resolve(io.cwd, file);
  try {
    const document = await loadManifestFile(path);
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
  writeLine(io.stdout);
  writeLine(
    io.stdout,
    colors.bold(`Capabilities (${DEFAULT_MARKER} = not set by the manifest, the built-in default applies):`),
  );
  for (const line of explainCapabilities(compiled).trimEnd().split('\n')) writeLine(io.stdout, `  ${line}`);
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

/** The `bulkhead.yaml` equivalent of an imported MXC config, with what MXC said beyond the manifest as comments. */
export async function mxcImportToYaml(imported: MxcImport, file: string): Promise<string> {
  // Imported here, not at the top: `bulkhead run` loads this module and must not pay for yaml.
  const { stringify: stringifyYaml } = await import('yaml');
  const header = [
    `# Imported by \`bulkhead manifest import-mxc\` from ${file} (${imported.shape === 'config' ? `MXC config ${imported.version ?? ''}`.trim() : 'MXC SDK ContainerRequest'}).`,
  ];
  if (imported.command) {
    header.push(
      `# MXC's command: bulkhead run -m bulkhead.yaml -- ${imported.command.map(quoteForShell).join(' ')}`,
    );
  }
  if (imported.cwd) header.push(`# MXC's working directory: ${imported.cwd} (run bulkhead from there)`);
  for (const warning of imported.warnings) header.push(`# note: ${warning}`);
  return `${header.join('\n')}\n${stringifyYaml(imported.manifest)}`;
}

function quoteForShell(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replaceAll("'", `'\\''`)}'`;
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
      'Parse, validate and compile each manifest (against the organisation policy, if any). Prints "ok" or the errors located as file:line:column, and exits 1 when any file has an error.',
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
      'Compile a manifest (default: ./bulkhead.yaml, else the built-in default) and print its capabilities, ' +
        `marking ${DEFAULT_MARKER} what the manifest left to the defaults, then, per tier, the mechanism that would ` +
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

  manifest
    .command('import-mxc')
    .summary('print the bulkhead.yaml equivalent of a Microsoft MXC config')
    .description(
      'Convert an MXC config (JSON: raw 0.6.0-alpha to 1.0.0, or an SDK ContainerRequest) into the equivalent ' +
        'bulkhead.yaml and print it. A field that cannot be mapped exactly is an error that names it.',
    )
    .argument('<file>', 'the MXC config')
    .addHelpText('after', '\nExamples:\n  $ bulkhead manifest import-mxc mxc.json > bulkhead.yaml')
    .action(async (file: string) => {
      try {
        io.stdout.write(await mxcImportToYaml(await loadMxcConfig(resolve(io.cwd, file)), file));
      } catch (error) {
        printError(io, error);
        context.exitStatus = EXIT_STATUS.failure;
      }
    });
}
