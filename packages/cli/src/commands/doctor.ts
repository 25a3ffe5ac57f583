import { arch, platform, release } from 'node:os';
import {
  CAPABILITY_KEYS,
  type CapabilityKey,
  type Enforcement,
  type IsolationProvider,
  type ProbeReport,
  type TierName,
} from '@bulkhead/core';
import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';
import { EXIT_STATUS } from '../exit-status.js';
import { type CliIo, colorsFor, writeLine } from '../io.js';
import { loadInstalledTiers } from '../tiers.js';

export interface DoctorTierReport {
  tier: TierName;
  /** The package that provides it; absent for `none`, which is built in. */
  packageName?: string;
  installed: boolean;
  available: boolean;
  /** Place on the ladder (0 = no isolation). */
  strength?: number;
  /** Why it is not installed or not available. */
  reason?: string;
  /** The command that makes it available. */
  fix?: string;
  /** Host facts its probe relied on. */
  facts: Record<string, string | number | boolean>;
  /** For each capability key: the mechanism that enforces it here, or why not and the fix. */
  enforcement: Partial<Record<CapabilityKey, Enforcement>>;
  warnings: string[];
}

export interface DoctorReport {
  /** At least one tier that isolates (not `none`) is available. */
  ok: boolean;
  host: { platform: string; arch: string; kernel: string; node: string };
  tiers: DoctorTierReport[];
}

async function probeSafely(
  provider: IsolationProvider,
  probe: () => Promise<ProbeReport>,
): Promise<DoctorTierReport> {
  const base = { tier: provider.tier, installed: true, strength: provider.strength };
  try {
    const report = await probe();
    return {
      ...base,
      available: report.available,
      ...(report.reason === undefined ? {} : { reason: report.reason }),
      ...(report.fix === undefined ? {} : { fix: report.fix }),
      facts: report.facts,
      enforcement: report.enforcement,
      warnings: report.warnings,
    };
  } catch (error) {
    return {
      ...base,
      available: false,
      reason: `its probe failed: ${(error as Error).message}`,
      facts: {},
      enforcement: {},
      warnings: [],
    };
  }
}

/** What `bulkhead doctor` finds: every known tier, installed or not, and how it would enforce each capability. */
export async function collectDoctorReport(context: CommandContext): Promise<DoctorReport> {
  const { registry, installations } = await loadInstalledTiers(context.importModule);
  const tiers: DoctorTierReport[] = [];
  for (const installation of installations) {
    if (!installation.installed) {
      tiers.push({
        tier: installation.tier,
        packageName: installation.packageName,
        installed: false,
        available: false,
        reason: installation.reason,
        fix: installation.fix,
        facts: {},
        enforcement: {},
        warnings: [],
      });
      continue;
    }
    const report = await probeSafely(installation.provider, () => registry.probe(installation.tier));
    tiers.push({ ...report, packageName: installation.packageName });
  }
  const none = registry.get('none');
  if (none) tiers.push(await probeSafely(none, () => registry.probe('none')));
  return {
    ok: tiers.some((tier) => tier.available && (tier.strength ?? 0) > 0),
    host: { platform: platform(), arch: arch(), kernel: release(), node: process.version },
    tiers,
  };
}

function printTier(io: CliIo, tier: DoctorTierReport): void {
  const colors = colorsFor(io.stdout, io.env);
  const name = colors.bold(String(tier.tier).padEnd(8));
  if (!tier.installed) {
    if (tier.reason === 'not installed') {
      writeLine(io.stdout, `${colors.dim('[not installed]')} ${name} not installed: ${tier.fix}`);
    } else {
      writeLine(io.stdout, `${colors.red('[unusable]')}      ${name} ${tier.reason}`);
      writeLine(io.stdout, `    ${colors.yellow('fix:')} ${tier.fix}`);
    }
    return;
  }
  if (tier.strength === 0) {
    writeLine(
      io.stdout,
      `${colors.yellow('[no isolation]')}  ${name} always available, NO isolation: used only when named (--tier none), for debugging`,
    );
    return;
  }
  if (!tier.available) {
    writeLine(
      io.stdout,
      `${colors.red('[unavailable]')}   ${name} ${tier.reason ?? 'its probe says it cannot run here'}`,
    );
    if (tier.fix) writeLine(io.stdout, `    ${colors.yellow('fix:')} ${tier.fix}`);
  } else {
    writeLine(io.stdout, `${colors.green('[available]')}     ${name} (${tier.packageName})`);
  }
  const facts = Object.entries(tier.facts);
  if (facts.length > 0)
    writeLine(io.stdout, `    host: ${facts.map(([key, value]) => `${key}=${value}`).join(', ')}`);
  for (const warning of tier.warnings) writeLine(io.stdout, `    ${colors.yellow('warning:')} ${warning}`);
  if (!tier.available) return;
  const width = Math.max(...CAPABILITY_KEYS.map((key) => key.length));
  for (const key of CAPABILITY_KEYS) {
    const enforcement = tier.enforcement[key];
    const label = key.padEnd(width);
    if (enforcement?.enforced) {
      writeLine(
        io.stdout,
        `    ${label}  ${enforcement.mechanisms.join(' + ') || 'no mechanism needed'}${enforcement.note ? colors.dim(` (${enforcement.note})`) : ''}`,
      );
    } else {
      writeLine(
        io.stdout,
        `    ${label}  ${colors.red('not enforceable:')} ${enforcement?.reason ?? 'the tier reports no mechanism for it'}`,
      );
      if (enforcement?.fix)
        writeLine(io.stdout, `    ${' '.repeat(width)}  ${colors.yellow('fix:')} ${enforcement.fix}`);
    }
  }
}

const EXAMPLES = `
Examples:
  $ bulkhead doctor            what works on this host, and the fix for what does not
  $ bulkhead doctor --json     the same as one JSON document, for scripts

Exit status: 0 when at least one isolating tier is available here, 1 otherwise.`;

export function registerDoctorCommand(program: Command, context: CommandContext): void {
  program
    .command('doctor')
    .summary('say which tiers work here and what enforces each capability')
    .description(
      'Probe every known tier: installed or not, available or not and why, the host facts each probe relied on, ' +
        'and for each capability the mechanism that enforces it on this host, or the reason and the fix.',
    )
    .option('--json', 'print the report as JSON')
    .addHelpText('after', EXAMPLES)
    .action(async (options: { json?: boolean }) => {
      const { io } = context;
      const report = await collectDoctorReport(context);
      if (options.json) {
        writeLine(io.stdout, JSON.stringify(report, null, 2));
      } else {
        const colors = colorsFor(io.stdout, io.env);
        writeLine(
          io.stdout,
          colors.bold(
            `Bulkhead doctor: ${report.host.platform} ${report.host.arch}, kernel ${report.host.kernel}, Node ${report.host.node}`,
          ),
        );
        writeLine(io.stdout);
        for (const tier of report.tiers) printTier(io, tier);
        writeLine(io.stdout);
        const available = report.tiers
          .filter((tier) => tier.available && (tier.strength ?? 0) > 0)
          .map((tier) => tier.tier);
        writeLine(
          io.stdout,
          report.ok
            ? colors.green(
                `Ready: ${available.join(', ')} ${available.length === 1 ? 'is' : 'are'} available.`,
              )
            : colors.red(
                'No isolating tier is available here: fix one of the tiers above (npm i @bulkhead/tier-process on Linux).',
              ),
        );
      }
      context.exitStatus = report.ok ? EXIT_STATUS.ok : EXIT_STATUS.failure;
    });
}
