import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  BulkheadError,
  type Capabilities,
  createNoneProvider,
  type IsolationProvider,
  launch,
  ProviderRegistry,
} from '@bulkhead/core';
import {
  describeError,
  type Subject,
  type SubjectContext,
  type SubjectSession,
  spawnHandle,
} from './subject.js';
import { packageVersion } from './versions.js';

/**
 * The capabilities every Bulkhead row runs with: the manifest package's defaults (what a user gets
 * with no manifest), plus read access to the workload program.
 */
export async function benchmarkCapabilities(context: SubjectContext): Promise<Capabilities> {
  const manifest = (await import('@bulkhead/manifest')) as {
    defaultCapabilities?: (options?: unknown) => Capabilities;
  };
  if (typeof manifest.defaultCapabilities !== 'function') {
    throw new BulkheadError(
      'BENCHMARK_SUBJECT_UNAVAILABLE',
      '@bulkhead/manifest does not export defaultCapabilities() yet.',
      {
        fix: 'build @bulkhead/manifest (npm run build -w @bulkhead/manifest)',
      },
    );
  }
  const defaults = manifest.defaultCapabilities();
  return {
    ...defaults,
    filesystem: { ...defaults.filesystem, read: [...defaults.filesystem.read, context.workloadDirectory] },
  };
}

type ProcessProviderFactory = (options: { mode: 'namespace' | 'shim-only' }) => IsolationProvider;

async function createProvider(mode: BulkheadSubjectOptions['mode']): Promise<IsolationProvider> {
  if (mode === 'none') return createNoneProvider();
  const tier = (await import('@bulkhead/tier-process')) as { createProcessProvider?: ProcessProviderFactory };
  if (typeof tier.createProcessProvider !== 'function') {
    throw new BulkheadError(
      'BENCHMARK_SUBJECT_UNAVAILABLE',
      '@bulkhead/tier-process does not export createProcessProvider() yet.',
      {
        fix: 'build @bulkhead/tier-process (npm run build -w @bulkhead/tier-process)',
      },
    );
  }
  return tier.createProcessProvider({ mode });
}

export interface BulkheadSubjectOptions {
  id: string;
  label: string;
  mode: 'namespace' | 'shim-only' | 'none';
}

/** A Bulkhead tier called through the SDK: `launch()` from @bulkhead/core with one provider. */
export function bulkheadSubject(options: BulkheadSubjectOptions): Subject {
  const tier = options.mode === 'none' ? 'none' : 'process';
  return {
    id: options.id,
    label: options.label,
    family: 'bulkhead',
    group: tier,
    scope: 'in-process',
    description:
      options.mode === 'none'
        ? "core's launch() with the none provider: the SDK's own cost, no isolation (proves the plumbing)"
        : `launch() with tier-process in ${options.mode} mode, default capabilities`,
    version: async () => {
      const name = tier === 'none' ? '@bulkhead/core' : '@bulkhead/tier-process';
      const version = await packageVersion(name);
      return version && `${name} ${version}`;
    },
    async prepare(context): Promise<SubjectSession> {
      const [provider, capabilities] = await Promise.all([
        createProvider(options.mode),
        benchmarkCapabilities(context),
      ]);
      // One registry per session, so the probe is asked once, as in a long-running harness.
      const providers = new ProviderRegistry([provider]);
      return {
        async start(command) {
          const sandbox = await launch({ command, capabilities, providers, tier });
          sandbox.stderr.resume();
          sandbox.stdin.on('error', () => {});
          const exited = sandbox.exited.then(async (result) => {
            await sandbox[Symbol.asyncDispose]();
            return result.exitCode;
          });
          exited.catch(() => {});
          return {
            stdin: sandbox.stdin,
            stdout: sandbox.stdout,
            exited,
            async kill() {
              await sandbox[Symbol.asyncDispose]();
            },
          };
        },
        close: async () => {},
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
    const probe = await (await createProvider('namespace')).probe();
    const allowlist = probe.enforcement['network.allowlist'];
    if (!allowlist)
      return { ready: false, reason: 'tier-process does not report network.allowlist enforcement' };
    if (!allowlist.enforced)
      return { ready: false, reason: `tier-process cannot enforce an allow-list yet: ${allowlist.reason}` };
    return {
      ready: true,
      reason:
        'tier-process enforces allow-lists now; the benchmark does not measure them yet (add the latency and throughput figures)',
    };
  } catch (error) {
    return { ready: false, reason: `tier-process is not available: ${describeError(error)}` };
  }
}
