import { BulkheadError, type CapabilityKey, type Enforcement } from '@bulkhead/core';
import { landlockAbi } from '../landlock/landlock-abi.js';
import { LANDLOCK_FIX } from '../landlock/landlock-planner.js';
import { compileSeccompFilter } from '../seccomp/compile-seccomp-filter.js';
import { ensureShim } from './ensure-shim.js';
import { UNIX_SOCKETS_REFUSED_WARNING } from './shim-warnings.js';

export interface ShimProbe {
  /** Can the shim run here at all (binary built, seccomp filter compilable)? */
  available: boolean;
  reason?: string;
  fix?: string;
  /** What the shim alone enforces here, per capability: `filesystem`, `network.none`, `process.spawn`. */
  enforcement: Partial<Record<CapabilityKey, Enforcement>>;
  facts: Record<string, string | number | boolean>;
  warnings: string[];
}

function describeFailure(error: unknown): { reason: string; fix?: string } {
  if (BulkheadError.isInstance(error))
    return { reason: error.message, ...(error.fix ? { fix: error.fix } : {}) };
  return { reason: String(error) };
}

/**
 * What the exec shim can enforce on this host, for a tier's `probe()` and `doctor`. Builds the shim
 * if needed; has no other side effect.
 */
export async function probeShim(options: { landlockAbi?: number } = {}): Promise<ShimProbe> {
  const abi = options.landlockAbi ?? landlockAbi();
  const facts: ShimProbe['facts'] = { landlockAbi: abi };
  const warnings: string[] = [];
  const failures: { reason: string; fix?: string }[] = [];
  try {
    facts.shimPath = await ensureShim();
  } catch (error) {
    failures.push(describeFailure(error));
  }
  let seccomp: Enforcement = { enforced: true, mechanisms: ['seccomp'] };
  try {
    facts.seccompInstructions = compileSeccompFilter({ spawn: false, network: 'none' }).length / 8;
  } catch (error) {
    const failure = describeFailure(error);
    failures.push(failure);
    seccomp = { enforced: false, ...failure };
  }

  const enforcement: ShimProbe['enforcement'] = {};
  enforcement.filesystem =
    abi >= 1
      ? { enforced: true, mechanisms: ['landlock'] }
      : { enforced: false, reason: 'Landlock is not available in this kernel', fix: LANDLOCK_FIX };
  if (abi < 4) {
    enforcement['network.none'] = {
      enforced: false,
      reason: `Landlock ABI ${abi} cannot restrict TCP (ABI 4, Linux 6.7, is needed)`,
      fix: 'run Linux 6.7 or later',
    };
  } else {
    enforcement['network.none'] = seccomp.enforced
      ? { enforced: true, mechanisms: ['landlock', 'seccomp'] }
      : seccomp;
  }
  enforcement['process.spawn'] = seccomp;
  // planShim refuses them in the host view unless a tier opts in; doctor should say so up front.
  warnings.push(UNIX_SOCKETS_REFUSED_WARNING);
  if (abi >= 1 && abi < 6) {
    warnings.push(
      `Landlock ABI ${abi} cannot scope abstract unix sockets and signals (ABI 6, Linux 6.12, is needed): without namespaces, the host's abstract sockets and same-user processes stay reachable`,
    );
  }
  const first = failures[0];
  return {
    available: first === undefined,
    ...(first ? { reason: first.reason, ...(first.fix ? { fix: first.fix } : {}) } : {}),
    enforcement,
    facts,
    warnings,
  };
}
