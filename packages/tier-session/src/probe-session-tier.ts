import { CAPABILITY_KEYS, type CapabilityKey, type Enforcement, type ProbeReport } from '@bulkhead/core';
import { findExecutable, probeBubblewrap } from '@bulkhead/linux';
import type { ProcessProvider } from '@bulkhead/tier-process';
import { callerRuntimeDirectory, deviceEnforcement } from './device-grants.js';
import { callerSubordinateRange, transientRangeConflict } from './host-accounts.js';
import type { IdRange } from './identity-pool.js';
import { probeSubordinateSwitch } from './subordinate-account.js';

/** How the sandbox's display is provided: see `SessionProviderOptions.display`. */
export type DisplayMode = 'none' | 'private' | 'host';

/** The default transient ids of a root caller: far above any real account and the usual subuid ranges. */
export const DEFAULT_TRANSIENT_IDS: IdRange = {
  firstUid: 2_000_000_000,
  firstGid: 2_000_000_000,
  count: 65_536,
};

export interface SessionTierHost {
  report: ProbeReport;
  /**
   * How the sandbox's account is made: a root caller switches uid before bubblewrap starts; an
   * unprivileged caller maps one of its subordinate ids through newuidmap and switches to it.
   */
  switching?: 'root' | 'subordinate';
  /** The process tier this tier composes, created for the switch (unprivileged: the bubblewrap stand-in). */
  inner?: ProcessProvider;
  range?: IdRange;
  bubblewrapPath?: string;
  xvfbPath?: string;
}

function refused(reason: string, fix?: string): Enforcement {
  return fix === undefined ? { enforced: false, reason } : { enforced: false, reason, fix };
}

/**
 * What the session tier can do here: the process tier's answer (namespace mode is required: the pid
 * namespace hides sandboxes from each other), plus how each sandbox gets its own account and display.
 */
export async function probeSessionTier(options: {
  createInner: (bubblewrapPath: string) => ProcessProvider;
  display: DisplayMode;
  transientIds?: IdRange;
  bubblewrapPath: string;
  /** Where the host's device nodes are (/dev). */
  deviceDirectory: string;
}): Promise<SessionTierHost> {
  const callerUid = process.getuid?.() ?? -1;
  const root = callerUid === 0;
  const range = root ? (options.transientIds ?? DEFAULT_TRANSIENT_IDS) : await callerSubordinateRange();
  const subordinate = root ? undefined : await probeSubordinateSwitch(range, options.bubblewrapPath);
  const innerProvider = options.createInner(subordinate?.wrapperPath ?? options.bubblewrapPath);
  const [inner, bubblewrap, xvfbPath] = await Promise.all([
    innerProvider.probe(),
    probeBubblewrap(options.bubblewrapPath),
    findExecutable('Xvfb'),
  ]);
  const warnings = [...inner.warnings];
  let available = inner.available;
  let reason = inner.reason;
  let fix = inner.fix;
  if (available && inner.facts.mode !== 'namespace') {
    available = false;
    reason = `the process tier runs in ${String(inner.facts.mode)} mode here, and the session tier needs its namespaces (a pid namespace hides sandboxes from each other, a mount namespace hides their files)`;
    fix =
      inner.enforcement.filesystem?.enforced === false
        ? inner.enforcement.filesystem.fix
        : 'make unprivileged user namespaces available to bubblewrap';
  }
  let conflict: string | undefined;
  if (available && root && range) {
    conflict = await transientRangeConflict(range);
    if (conflict) {
      available = false;
      reason = `the transient id range ${range.firstUid}+${range.count} is unsafe: ${conflict}`;
      fix =
        'pass createSessionProvider({ transientIds: { firstUid, firstGid, count } }) with a range no account, group or /etc/subuid entry uses';
    }
  }
  if (available && subordinate && !subordinate.usable) {
    available = false;
    reason = subordinate.reason;
    fix = subordinate.fix;
  }
  const enforcement: Partial<Record<CapabilityKey, Enforcement>> = { ...inner.enforcement };
  enforcement.identity = available
    ? {
        enforced: true,
        mechanisms: root ? ['uid-switch', 'user-namespace'] : ['subordinate-ids', 'user-namespace'],
        note: root
          ? `a transient uid/gid per sandbox from ${range?.firstUid}+${range?.count}, or the account named by identity.name`
          : `a subordinate uid/gid of the caller per sandbox (${range?.firstUid}+${range?.count}, /etc/subuid), mapped by newuidmap`,
      }
    : refused(reason ?? 'no way to switch accounts here', fix);
  const displayFix = "createSessionProvider({ display: 'private' }) gives the sandbox its own X server";
  if (options.display === 'none') {
    enforcement['devices.display'] = refused(
      "this session provider was created with display: 'none', so no sandbox gets a display",
      displayFix,
    );
  } else if (options.display === 'private') {
    enforcement['devices.display'] =
      xvfbPath && bubblewrap.found
        ? {
            enforced: true,
            mechanisms: ['private-x-server', 'mount-namespace'],
            note: 'an Xvfb of its own per sandbox',
          }
        : refused('the private display needs Xvfb, which is not installed', 'apt-get install xvfb');
  } else {
    enforcement['devices.display'] = {
      enforced: true,
      mechanisms: ['mount-namespace'],
      note: "the caller's own display (display: 'host'): the sandbox can read the screen and inject input there",
    };
    warnings.push(
      "display: 'host' hands sandboxes that ask for a display the caller's own X display: they can read the screen, the clipboard and inject input.",
    );
  }
  const display = enforcement['devices.display'];
  enforcement['devices.clipboard'] = display?.enforced
    ? {
        enforced: true,
        mechanisms: display.mechanisms,
        note: 'the clipboard of the display the sandbox gets, only with devices.display',
      }
    : refused('a clipboard comes with a display, and this provider gives none', displayFix);
  enforcement['devices.input'] = refused(
    'input devices (/dev/input, /dev/uinput) would let a sandbox read or inject keystrokes of the person at the desktop',
    'use display: private, whose X server takes synthetic input (xdotool) without any device',
  );
  // Any uid but the owner's stands for the sandbox's, which is not known before a launch.
  Object.assign(
    enforcement,
    await deviceEnforcement({
      deviceDirectory: options.deviceDirectory,
      callerRuntimeDirectory: callerRuntimeDirectory(),
      idMappedSockets: root,
    }),
  );
  for (const key of CAPABILITY_KEYS) enforcement[key] ??= refused('not enforced by the session tier');

  const report: ProbeReport = {
    tier: 'session',
    available,
    ...(available || reason === undefined ? {} : { reason }),
    ...(available || fix === undefined ? {} : { fix }),
    enforcement,
    facts: {
      // The process tier's own sandbox uid is not this tier's: its ids are in transientIds.
      ...Object.fromEntries(Object.entries(inner.facts).filter(([key]) => key !== 'sandboxUid')),
      callerUid,
      accountSwitch: root
        ? 'root: setuid/setgid before bubblewrap'
        : subordinate?.usable
          ? 'subordinate ids: newuidmap/newgidmap, then setuid/setgid before bubblewrap'
          : 'unavailable',
      transientIds: range ? `${range.firstUid}+${range.count}` : 'none',
      display: options.display,
      xvfb: xvfbPath ?? 'missing',
    },
    warnings,
  };
  return {
    report,
    ...(available ? { switching: root ? ('root' as const) : ('subordinate' as const) } : {}),
    inner: innerProvider,
    ...(range ? { range } : {}),
    ...(bubblewrap.path ? { bubblewrapPath: bubblewrap.path } : {}),
    ...(xvfbPath ? { xvfbPath } : {}),
  };
}
