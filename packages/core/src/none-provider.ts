import { spawn } from 'node:child_process';
import { CAPABILITY_KEYS, TIER_STRENGTH } from './capabilities.js';
import { createChildProcessSandbox } from './child-process-sandbox.js';
import { BulkheadError } from './errors.js';
import type { IsolationProvider, ProbeReport, Sandbox } from './provider.js';

const NO_ISOLATION = 'the none tier runs the payload as an ordinary child process with no isolation';

/**
 * No isolation at all: for debugging, and to prove the escape corpus can fail (every escape must
 * succeed here). Never chosen automatically; `launch()` warns whenever it is named.
 */
export function createNoneProvider(): IsolationProvider {
  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier: 'none',
    strength: TIER_STRENGTH.none,
    async probe(): Promise<ProbeReport> {
      return {
        tier: 'none',
        available: true,
        enforcement: Object.fromEntries(
          CAPABILITY_KEYS.map((key) => [
            key,
            { enforced: false, reason: NO_ISOLATION, fix: 'use a real tier: --tier process' },
          ]),
        ),
        facts: {},
        warnings: ['The none tier provides no isolation.'],
      };
    },
    async launch(spec): Promise<Sandbox> {
      const [file, ...args] = spec.command;
      if (!file) throw new BulkheadError('INVALID_LAUNCH_SPEC', 'Nothing to run: the command is empty.');
      const { capabilities } = spec;
      const child = spawn(file, args, {
        cwd: capabilities.workdir,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...capabilities.env },
        stdio: 'pipe',
        // Its own process group, so that a timeout reaches the children that stayed in it.
        detached: true,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      const pid = child.pid!;
      return createChildProcessSandbox({
        id: spec.id ?? `none-${pid}`,
        tier: 'none',
        child,
        timeoutMs: capabilities.resources.timeoutMs,
        killTree: (signal) => {
          try {
            process.kill(-pid, signal);
          } catch {
            // Already gone.
          }
        },
        warnings: ['The none tier provides no isolation.'],
      });
    },
  };
}
