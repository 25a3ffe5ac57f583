import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile, spawn } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { delimiter, posix } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { reapAdoptedProcess } from './adopted-processes.js';

/** The host uid and gid of a root caller's sandbox: `nobody`/`nogroup`, the kernel's overflow ids. */
export const ROOT_CALLER_SANDBOX_ID = 65534;

export interface BubblewrapFacts {
  found: boolean;
  path?: string;
  version?: string;
  /** `--disable-userns` and friends arrived in 0.8. */
  supportsDisableUserNamespaces: boolean;
  reason?: string;
  fix?: string;
}

export interface UserNamespaceFacts {
  /** bubblewrap made a user namespace (with mount, pid and net namespaces) for real on this host. */
  usable: boolean;
  reason?: string;
  fix?: string;
}

/** The ids a sandbox runs under on the host, and how bubblewrap is started to get there. */
export interface SandboxIdentity {
  /** Host uid/gid of the payload. Never 0. */
  uid: number;
  gid: number;
  /** bubblewrap and the shim are started as this uid/gid (root callers: switched before exec). */
  switchFromRoot: boolean;
}

const identityOverride = new AsyncLocalStorage<SandboxIdentity>();

/**
 * Runs `launch` with sandboxes started inside it running as `identity` instead of the default below.
 * The seam of tiers built on the process tier: the session tier gives each sandbox its own account
 * and launches it through the process tier unchanged. Only a root caller can switch to another uid.
 */
export function withSandboxIdentity<T>(identity: SandboxIdentity, launch: () => T): T {
  if (identity.uid === 0 || identity.gid === 0) {
    throw new BulkheadError(
      'INVALID_LAUNCH_SPEC',
      'The sandbox uid and gid must not be 0: the payload never runs as root.',
    );
  }
  return identityOverride.run(identity, launch);
}

/** Whether an enclosing `withSandboxIdentity` chose the identity (a tier built on the process tier). */
export function hasSandboxIdentityOverride(): boolean {
  return identityOverride.getStore() !== undefined;
}

/**
 * The host ids a sandbox runs under: the identity of an enclosing `withSandboxIdentity`, else for a
 * root caller `nobody`, else the caller's own.
 */
export function sandboxIdentity(): SandboxIdentity {
  const override = identityOverride.getStore();
  if (override) return override;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (uid === 0) return { uid: ROOT_CALLER_SANDBOX_ID, gid: ROOT_CALLER_SANDBOX_ID, switchFromRoot: true };
  return { uid, gid: gid === 0 ? ROOT_CALLER_SANDBOX_ID : gid, switchFromRoot: false };
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks a program up on PATH (and the usual system folders when PATH is thin). */
export async function findExecutable(name: string): Promise<string | undefined> {
  if (name.includes('/')) return (await executable(name)) ? name : undefined;
  const folders = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin', '/usr/local/bin'];
  for (const folder of folders) {
    if (!folder.startsWith('/')) continue;
    const candidate = posix.join(folder, name);
    if (await executable(candidate)) return candidate;
  }
  return undefined;
}

function run(file: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ stdout, stderr, code });
    });
  });
}

function versionAtLeast(version: string, minimum: [number, number]): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > minimum[0] || (major === minimum[0] && minor >= minimum[1]);
}

const bubblewrapCache = new Map<string, Promise<BubblewrapFacts>>();

/** Where bubblewrap is and which version. Cached per path for the process's lifetime. */
export function probeBubblewrap(path = 'bwrap'): Promise<BubblewrapFacts> {
  let cached = bubblewrapCache.get(path);
  if (!cached) {
    cached = (async (): Promise<BubblewrapFacts> => {
      const found = await findExecutable(path);
      if (!found) {
        return {
          found: false,
          supportsDisableUserNamespaces: false,
          reason: `bubblewrap ('${path}') is not installed or not executable`,
          fix: 'apt-get install bubblewrap (dnf install bubblewrap, pacman -S bubblewrap)',
        };
      }
      const { stdout } = await run(found, ['--version']);
      const version = /bubblewrap\s+(\S+)/.exec(stdout)?.[1];
      return {
        found: true,
        path: found,
        ...(version === undefined ? {} : { version }),
        supportsDisableUserNamespaces: version !== undefined && versionAtLeast(version, [0, 8]),
      };
    })();
    bubblewrapCache.set(path, cached);
  }
  return cached;
}

async function readSysctl(name: string): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Why unprivileged user namespaces are off here, from the knobs distributions use. */
async function userNamespaceBlocker(): Promise<{ reason: string; fix: string } | undefined> {
  if ((await readSysctl('user.max_user_namespaces')) === '0') {
    return {
      reason: 'user namespaces are disabled (user.max_user_namespaces = 0)',
      fix: 'sysctl -w user.max_user_namespaces=15000',
    };
  }
  if ((await readSysctl('kernel.unprivileged_userns_clone')) === '0') {
    return {
      reason: 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)',
      fix: 'sysctl -w kernel.unprivileged_userns_clone=1',
    };
  }
  if ((await readSysctl('kernel.apparmor_restrict_unprivileged_userns')) === '1') {
    return {
      reason:
        "AppArmor restricts unprivileged user namespaces (Ubuntu 24.04's kernel.apparmor_restrict_unprivileged_userns = 1)",
      fix: 'install an AppArmor profile that allows userns for /usr/bin/bwrap (see /etc/apparmor.d/bwrap-userns-restrict), or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    };
  }
  return undefined;
}

const userNamespaceCache = new Map<string, Promise<UserNamespaceFacts>>();

/**
 * Tries bubblewrap for real, as the identity sandboxes will run under: a user, mount, pid and net
 * namespace around `true`. Cached per bubblewrap path.
 */
export function probeUserNamespaces(bubblewrapPath = 'bwrap'): Promise<UserNamespaceFacts> {
  let cached = userNamespaceCache.get(bubblewrapPath);
  if (!cached) {
    cached = (async (): Promise<UserNamespaceFacts> => {
      const bubblewrap = await probeBubblewrap(bubblewrapPath);
      if (!bubblewrap.found || !bubblewrap.path) {
        return {
          usable: false,
          reason: bubblewrap.reason ?? 'bubblewrap is missing',
          ...(bubblewrap.fix ? { fix: bubblewrap.fix } : {}),
        };
      }
      const identity = sandboxIdentity();
      const trueProgram = (await findExecutable('true')) ?? '/bin/true';
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          bubblewrap.path!,
          [
            '--unshare-user',
            '--unshare-pid',
            '--unshare-net',
            '--ro-bind',
            '/',
            '/',
            '--proc',
            '/proc',
            '--dev',
            '/dev',
            '--info-fd',
            '3',
            '--',
            trueProgram,
          ],
          {
            stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
            env: {},
            ...(identity.switchFromRoot ? { uid: identity.uid, gid: identity.gid } : {}),
          },
        );
        let stderr = '';
        let info = '';
        child.stderr?.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        child.stdio[3]?.on('data', (chunk: Buffer) => {
          info += chunk.toString();
        });
        child.once('error', (error) => resolve({ code: -1, stderr: error.message }));
        child.once('close', (code) => {
          // Like a sandbox's, the probe's pid-namespace init outlives bwrap's monitor.
          const init = Number(/"child-pid"\s*:\s*(\d+)/.exec(info)?.[1]);
          if (init > 0) reapAdoptedProcess(init);
          resolve({ code, stderr });
        });
      });
      if (result.code === 0) return { usable: true };
      const blocker = await userNamespaceBlocker();
      return {
        usable: false,
        reason:
          blocker?.reason ??
          `bubblewrap could not create its namespaces: ${result.stderr.trim() || `exit ${result.code}`}`,
        fix:
          blocker?.fix ??
          'allow unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1 on Debian), or use the shim-only mode',
      };
    })();
    userNamespaceCache.set(bubblewrapPath, cached);
  }
  return cached;
}

export interface HostFacts {
  kernel: string;
  architecture: string;
  callerUid: number;
}

export function hostFacts(): HostFacts {
  return { kernel: release(), architecture: process.arch, callerUid: process.getuid?.() ?? -1 };
}

/**
 * Is the process that owns a sandbox (by the pid in its cgroup or folder name) still running? A
 * zombie counts as dead: it will never dispose what it made.
 */
export function ownerProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
