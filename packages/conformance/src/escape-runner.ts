import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ESCAPE_CASES, type EscapeCase, type EscapeContext, parseHelperVerdict } from './escape-cases.js';
import { type Cleanup, startFixtures } from './host-fixtures.js';
import { describeOutcome, runInSandbox } from './sandbox-session.js';
import {
  CONFORMANCE_TEMPORARY_PREFIX,
  type DescribeIsolationProviderOptions,
  helperCommand,
  OPEN_DIRECTORY_MODE,
  prepareLaunch,
  type SuiteState,
  TRAVERSABLE_DIRECTORY_MODE,
} from './suite-state.js';

const isRoot = () => process.getuid?.() === 0;

/** Registers one test per escape case. */
export function describeEscapeCorpus(state: SuiteState, options: DescribeIsolationProviderOptions): void {
  const expectEscapes = options.expectEscapes ?? false;
  const scale = options.timeoutScale ?? 1;
  // vitest fails an empty describe block, and `only` may select no escape case at all.
  if (options.only && !ESCAPE_CASES.some((escapeCase) => options.only?.includes(escapeCase.id))) return;
  describe(
    expectEscapes ? 'escape corpus (every attempt must escape: no isolation)' : 'escape corpus',
    () => {
      for (const escapeCase of ESCAPE_CASES) {
        if (options.only && !options.only.includes(escapeCase.id)) continue;
        const reason = options.skip?.[escapeCase.id];
        const name = `${escapeCase.id}: ${escapeCase.title}`;
        if (reason) {
          it.skip(`${name} (skipped: ${reason})`, () => {});
          continue;
        }
        it(
          name,
          async (context) => {
            if (expectEscapes && escapeCase.escapeNeeds?.includes('host-root') && !isRoot()) {
              context.skip('the none tier escapes this way only with root on the host');
            }
            await runEscapeCase(state, escapeCase, expectEscapes);
          },
          60_000 * scale,
        );
      }
    },
  );
}

/** Runs one case against the suite's provider and asserts its outcome. */
export async function runEscapeCase(
  state: SuiteState,
  escapeCase: EscapeCase,
  expectEscapes: boolean,
): Promise<void> {
  const cleanups: Cleanup[] = [];
  const token = randomBytes(8).toString('hex');
  const caseRoot = await mkdtemp(join(state.root, `case-${escapeCase.id}-`));
  await chmod(caseRoot, TRAVERSABLE_DIRECTORY_MODE);
  try {
    const outside = join(caseRoot, 'outside');
    const granted = join(caseRoot, 'granted');
    const denied = join(granted, 'denied');
    await Promise.all([mkdir(outside), mkdir(denied, { recursive: true })]);
    // World-writable and world-readable: only the isolation may stand between the sandbox and them.
    await Promise.all([outside, granted, denied].map((directory) => chmod(directory, OPEN_DIRECTORY_MODE)));
    const secret = `${CONFORMANCE_TEMPORARY_PREFIX}secret-${token}\n`;
    await Promise.all([
      writeFile(join(outside, 'secret.txt'), secret),
      writeFile(join(denied, 'secret.txt'), secret),
      writeFile(join(granted, 'file.txt'), 'granted\n'),
    ]);
    await Promise.all(
      [join(outside, 'secret.txt'), join(denied, 'secret.txt'), join(granted, 'file.txt')].map((file) =>
        chmod(file, 0o644),
      ),
    );
    cleanups.push(() =>
      Promise.all(
        ['/tmp', '/dev/shm'].map((directory) =>
          rm(join(directory, `${CONFORMANCE_TEMPORARY_PREFIX}fill-${token}`), { force: true }),
        ),
      ).then(() => {}),
    );
    // The host mounts that stand in for a tier's own mounts exist only to show the none tier escaping.
    const fixtureNames = escapeCase.fixtures.filter(
      (fixture) => fixture !== 'emulated-mounts' || expectEscapes,
    );
    const fixtures = await startFixtures(fixtureNames, { outside, granted, denied, token }, cleanups);
    const { capabilities, marker, id, workspace } = await prepareLaunch(
      state,
      (base) => (escapeCase.capabilities ? escapeCase.capabilities(base, { scale: state.scale }) : base),
      { read: [granted], deny: [denied] },
    );
    const context: EscapeContext = {
      helper: (...args) => helperCommand(state, marker, ...args),
      workspace,
      granted,
      denied,
      outside,
      secretFile: join(outside, 'secret.txt'),
      deniedSecretFile: join(denied, 'secret.txt'),
      token,
      capabilities,
      fixtures,
      scale: state.scale,
      launchedAt: Date.now(),
    };
    const command = escapeCase.command(context);
    context.launchedAt = Date.now();
    const outcome = await runInSandbox({ provider: state.provider, capabilities, command, id });
    const stdout = outcome.stdout.toString('utf8');
    const helper = parseHelperVerdict(stdout);
    const verdict = await escapeCase.judge(
      {
        stdout,
        stderr: outcome.stderr.toString('utf8'),
        result: outcome.result,
        ...(helper ? { helper } : {}),
      },
      context,
    );
    const explanation = `${escapeCase.attempts}\nverdict: ${verdict.outcome} (${verdict.reason})\n${describeOutcome(outcome)}`;
    if (escapeCase.category === 'resources') {
      // Whatever happened inside, the host must still be able to start a process.
      const probe = spawnSync('true', { timeout: 10_000 * state.scale });
      expect(probe.status, `the host cannot start a process after the attempt: ${probe.error ?? ''}`).toBe(0);
    }
    expect(verdict.outcome, explanation).toBe(expectEscapes ? 'escaped' : 'refused');
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // Keep undoing the rest.
      }
    }
    await rm(caseRoot, { recursive: true, force: true });
  }
}
