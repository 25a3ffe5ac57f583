import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { Capabilities, IsolationProvider } from '@bulkhead/core';
import { createBaseCapabilities } from './base-capabilities.js';
import type { ConformanceTestName } from './conformance-tests.js';

export type ProviderSource = IsolationProvider | (() => IsolationProvider | Promise<IsolationProvider>);

export interface DescribeIsolationProviderOptions {
  /** Title of the suite; default: the provider's tier. */
  name?: string;
  /**
   * Tests this provider is excused from, each with the reason (shown in the skipped test's title). Keep a
   * comment beside each entry saying why; a skip that hides a missing install is a defect.
   */
  skip?: Partial<Record<ConformanceTestName, string>>;
  /**
   * Runs only these tests, e.g. the network cases again under another network mode whose other cases
   * a sibling suite already runs. Tests left out are not registered at all (they are not excused, so
   * they do not show as skipped); `skip` still applies to the ones selected.
   */
  only?: readonly ConformanceTestName[];
  /**
   * Only for the `none` provider: every escape case must then SUCCEED at escaping, which proves that
   * the cases can fail. A real tier leaves it false: every case must be refused.
   */
  expectEscapes?: boolean;
  /**
   * Adapts the capabilities of every launch (the suite's base plus the test's own adjustments), e.g. to
   * grant the files a guest needs. It MUST NOT widen what a test checks; that would void the proof.
   */
  capabilities?: (capabilities: Capabilities) => Capabilities;
  /** Multiplies every timeout and wait of the suite, for slow tiers (TCG micro-VMs). Default 1. */
  timeoutScale?: number;
  /**
   * Directory of the attack helper (`bulkhead-attack`), compiled there when missing. It is granted read
   * access in every sandbox. Default: see `ensureAttackHelper()`.
   */
  helperDirectory?: string;
}

/** What every test of a suite shares, filled in by `beforeAll`. */
export interface SuiteState {
  provider: IsolationProvider;
  /** Absolute path of the attack helper on the host (and, by grant, in the sandbox). */
  helper: string;
  helperDirectory: string;
  /** Temporary root of this suite on the host, owned by the running user. */
  root: string;
  /** The caller-side canary variable put in process.env during the suite. */
  canary: { name: string; value: string };
  options: DescribeIsolationProviderOptions;
  scale: number;
}

/** Prefix of every temporary directory the suite makes; leftovers are easy to spot and clean. */
/**
 * Modes of the suite's directories. The fixtures are open to every uid on purpose: a refusal must come
 * from the isolation, not from file permissions that happen to stand between a sandbox uid and a file.
 */
export const OPEN_DIRECTORY_MODE = 0o777;
export const TRAVERSABLE_DIRECTORY_MODE = 0o755;

export const CONFORMANCE_TEMPORARY_PREFIX = 'bulkhead-conformance-';

/** A fresh workspace and the capabilities of one launch, adapted by the caller's hook. */
export async function prepareLaunch(
  state: SuiteState,
  adjust: (capabilities: Capabilities, workspace: string) => Capabilities = (capabilities) => capabilities,
  extra: { read?: string[]; write?: string[]; deny?: string[] } = {},
): Promise<{ workspace: string; capabilities: Capabilities; marker: string; id: string }> {
  const workspace = await mkdtemp(join(state.root, 'workspace-'));
  // A tier may run the payload as another uid than the caller's; the workspace is its to write.
  await chmod(workspace, OPEN_DIRECTORY_MODE);
  const base = createBaseCapabilities({
    workspace,
    read: [state.helperDirectory, ...(extra.read ?? [])],
    ...(extra.write ? { write: extra.write } : {}),
    ...(extra.deny ? { deny: extra.deny } : {}),
  });
  const adjusted = adjust(base, workspace);
  const capabilities = state.options.capabilities ? state.options.capabilities(adjusted) : adjusted;
  const marker = `${CONFORMANCE_TEMPORARY_PREFIX}marker-${randomUUID()}`;
  return { workspace, capabilities, marker, id: marker.slice(CONFORMANCE_TEMPORARY_PREFIX.length) };
}

/** argv running one subcommand of the helper, tagged with `marker` so leftovers can be found in /proc. */
export function helperCommand(state: SuiteState, marker: string, ...args: string[]): string[] {
  return [state.helper, `--tag=${marker}`, ...args];
}
