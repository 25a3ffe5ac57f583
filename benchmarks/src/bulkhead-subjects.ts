import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  BulkheadError,
  type Capabilities,
  createNoneProvider,
  type IsolationProvider,
  launch,
  ProviderRegistry,
  type TierName,
} from '@bulkhead/core';
import {
  describeError,
  type Subject,
  type SubjectContext,
  type SubjectLimits,
  type SubjectSession,
  spawnHandle,
} from './subject.js';
import { packageVersion } from './versions.js';

/**
 * The capabilities every Bulkhead row runs with: the manifest package's defaults (what a user gets
 * with no manifest), plus read access to the workload program where they do not give it already.
 */
export async function benchmarkCapabilities(context: SubjectContext): Promise<Capabilities> {
  const { defaultCapabilities, ruleFor } = await import('@bulkhead/manifest');
  // No organisation policy: the rows must measure the tiers, not this host's /etc/bulkhead.
  const defaults = defaultCapabilities({ policy: null });
  // Run from the benchmarks folder, the default write grant of the working folder holds the workload
  // already; a read grant of its folder inside it would make that folder read-only (the most specific
  // path wins), a narrowing no row asked for, and one that shim-only mode splits the grant for.
  if (ruleFor(context.workloadDirectory, defaults.filesystem) !== 'deny') return defaults;
  return {
    ...defaults,
    filesystem: { ...defaults.filesystem, read: [...defaults.filesystem.read, context.workloadDirectory] },
  };
}

/**
 * A tier's provider, imported when the row is prepared: a tier that is not built or cannot load
 * makes its own row unavailable, with the reason, instead of stopping the benchmark.
 */
export const bulkheadProviders = {
  none: async () => createNoneProvider(),
  processNamespace: async () =>
    (await import('@bulkhead/tier-process')).createProcessProvider({ mode: 'namespace' }),
  processShimOnly: async () =>
    (await import('@bulkhead/tier-process')).createProcessProvider({ mode: 'shim-only' }),
  microvm: async () => {
    // Software emulation is allowed so that the row exists on hosts without usable KVM (like
    // nested PVM); the tier says which accelerator it used in every result's warnings.
    return (await import('@bulkhead/tier-microvm')).createMicrovmProvider({ acceleration: 'any' });
  },
  session: async (): Promise<{ provider: IsolationProvider; release: () => Promise<void> }> => {
    // Its audit log is part of its cost, so it is kept, but in a file of the run's own.
    const auditLog = path.join(os.tmpdir(), `bulkhead-bench-audit-${process.pid}-${randomUUID()}.jsonl`);
    const provider = (await import('@bulkhead/tier-session')).createSessionProvider({ auditLog });
    return { provider, release: () => rm(auditLog, { force: true }) };
  },
  sessionPrivateDisplay: async (): Promise<{ provider: IsolationProvider; release: () => Promise<void> }> => {
    const auditLog = path.join(os.tmpdir(), `bulkhead-bench-audit-${process.pid}-${randomUUID()}.jsonl`);
    const provider = (await import('@bulkhead/tier-session')).createSessionProvider({
      auditLog,
      display: 'private',
    });
    return { provider, release: () => rm(auditLog, { force: true }) };
  },
} as const;

export interface BulkheadSubjectOptions {
  id: string;
  label: string;
  tier: TierName;
  limits?: SubjectLimits;
  /** Probe facts the row's version line carries, e.g. the micro-VM tier's `accelerator`. */
  reportFacts?: string[];
  /** Why, given its probe facts, the row is not held to the mission targets here (undefined: it is). */
  exemptFromTargets?: (facts: Record<string, string | number | boolean>) => string | undefined;
  /** The package whose version the row reports. */
  packageName: string;
  description: string;
  provider: () => Promise<IsolationProvider | { provider: IsolationProvider; release: () => Promise<void> }>;
  /** Adjusts the default capabilities for this row (e.g. a network allow-list). */
  capabilities?: (capabilities: Capabilities) => Capabilities;
}

/** A Bulkhead tier called through the SDK: `launch()` from @bulkhead/core with one provider. */
export function bulkheadSubject(options: BulkheadSubjectOptions): Subject {
  const { tier } = options;
  let exemption: string | undefined;
  return {
    id: options.id,
    label: options.label,
    family: 'bulkhead',
    group: tier,
    scope: 'in-process',
    description: options.description,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    targetExemption: () => exemption,
    version: async () => {
      const version = await packageVersion(options.packageName);
      if (!version) return undefined;
      const facts: string[] = [];
      if (options.reportFacts?.length || options.exemptFromTargets) {
        const created = await options.provider();
        const probe = await ('provider' in created ? created.provider : created).probe();
        if ('release' in created) await created.release();
        exemption = options.exemptFromTargets?.(probe.facts);
        for (const name of options.reportFacts ?? [])
          if (probe.facts[name] !== undefined) facts.push(`${name} ${probe.facts[name]}`);
      }
      return [`${options.packageName} ${version}`, ...facts].join(', ');
    },
    async prepare(context): Promise<SubjectSession> {
      const [created, defaults] = await Promise.all([options.provider(), benchmarkCapabilities(context)]);
      const capabilities = options.capabilities ? options.capabilities(defaults) : defaults;
      const { provider, release } =
        'provider' in created ? created : { provider: created, release: async () => {} };
      // One registry per session, so the probe is asked once, as in a long-running harness.
      const providers = new ProviderRegistry([provider]);
      return {
        async start(command) {
          const sandbox = await launch({ command, capabilities, providers, tier });
          sandbox.stderr.resume();
          sandbox.stdin.on('error', () => {});
          // The sandbox's result can come before its last output is read (as a child process's
          // 'exit' can before its stdout ends), and disposing destroys the streams: the output is
          // read through to its end here, into a buffer the runner reads from, before disposing.
          const stdout = new PassThrough({ highWaterMark: 16 * 1024 * 1024 });
          sandbox.stdout.pipe(stdout);
          const drained = new Promise<void>((resolve) => {
            sandbox.stdout.once('end', resolve);
            sandbox.stdout.once('close', () => {
              // Destroyed before its end (a kill): the reader still gets one.
              if (!stdout.writableEnded) stdout.end();
              resolve();
            });
          });
          const exited = sandbox.exited.then(async (result) => {
            await Promise.race([drained, delay(5_000)]);
            await sandbox[Symbol.asyncDispose]();
            return result.exitCode;
          });
          exited.catch(() => {});
          return {
            stdin: sandbox.stdin,
            stdout,
            exited,
            async kill() {
              await sandbox[Symbol.asyncDispose]();
            },
          };
        },
        close: release,
      };
    },
  };
}

/** The `bulkhead` command, started from outside for every launch: whole-process figures. */
export function bulkheadCliSubject(options: { id: string; label: string }): Subject {
  return {
    id: options.id,
    label: options.label,
    family: 'bulkhead',
    group: 'process',
    scope: 'whole-process',
    description:
      '`node packages/cli/dist/cli.js run -- CMD` (a fresh Node process per launch, default manifest)',
    version: async () => {
      const version = await packageVersion('bulkhead');
      return version && `bulkhead ${version}`;
    },
    async prepare(context): Promise<SubjectSession> {
      const cli = path.join(context.repositoryRoot, 'packages/cli/dist/cli.js');
      if (!existsSync(cli)) {
        throw new BulkheadError('BENCHMARK_SUBJECT_UNAVAILABLE', `The CLI is not built: ${cli} is missing.`, {
          fix: 'npm run build (or npm run build -w bulkhead)',
        });
      }
      return {
        start: (command) =>
          spawnHandle(process.execPath, [cli, 'run', '--read', context.workloadDirectory, '--', ...command], {
            processGroup: true,
          }),
        close: async () => {},
      };
    },
  };
}

/**
 * The network figures (allow-listed connection latency and throughput against direct) need the
 * process tier to enforce an allow-list through @bulkhead/egress; until its probe says it does, the
 * result carries the probe's own reason.
 */
export async function networkReadiness(): Promise<{ ready: boolean; reason: string }> {
  try {
    const probe = await (await bulkheadProviders.processNamespace()).probe();
    const allowlist = probe.enforcement['network.allowlist'];
    if (!allowlist)
      return { ready: false, reason: 'tier-process does not report network.allowlist enforcement' };
    if (!allowlist.enforced)
      return { ready: false, reason: `tier-process cannot enforce an allow-list yet: ${allowlist.reason}` };
    return {
      ready: true,
      reason: 'tier-process enforces allow-lists',
    };
  } catch (error) {
    return { ready: false, reason: `tier-process is not available: ${describeError(error)}` };
  }
}
