import { rmSync } from 'node:fs';
import { chmod, link, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { posix } from 'node:path';
import { BulkheadError, type Endpoint, onProcessExit, type Violation } from '@bulkhead/core';
import type { EgressProxy, EgressResolver } from '@bulkhead/egress';
import { ownerProcessAlive, sandboxCgroupName, sendWithDescriptors } from '@bulkhead/linux';

/** Where the sandbox sees its egress channel (in the tier folder); the exec shim's relay connects to it. */
export const EGRESS_SANDBOX_SOCKET = '/run/bulkhead/egress.sock';
/** The relay's port on the sandbox's own loopback: the only TCP port its network namespace offers. */
export const EGRESS_RELAY_PORT = 3128;
export const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_RELAY_PORT}`;

export interface ProcessEgressOptions {
  /** The proxy that carries the sandboxes' channels. Default: the process-wide `getEgressProxy()`. */
  proxy?: EgressProxy;
  /**
   * Resolves names for the allow-lists of this provider's sandboxes (tests, the CLI's `--resolve`):
   * the provider then runs a proxy of its own with it. Give `proxy` or `resolver`, not both.
   */
  resolver?: EgressResolver;
}

let egressModule: Promise<typeof import('@bulkhead/egress')> | undefined;

/**
 * @bulkhead/egress, imported on the first allow-listed launch: it brings Node's HTTP, TLS and DNS
 * modules and a SOCKS5 server, a measurable share of a `bulkhead run` that has no allow-list.
 */
function egress(): Promise<typeof import('@bulkhead/egress')> {
  egressModule ??= import('@bulkhead/egress');
  return egressModule;
}

const socketDirectories = new Set<string>();

/**
 * The folders that hold egress channel sockets that `grants` could show: the default proxy's, and
 * those of every proxy a sandbox of this process used. Hidden from sandboxes, which must reach only their own channel.
 */
export async function egressSocketDirectories(grants: readonly string[]): Promise<string[]> {
  // The default one is named by @bulkhead/egress, loaded only when a grant could show it.
  const places = [process.env.XDG_RUNTIME_DIR, tmpdir()].filter((place) => place?.startsWith('/'));
  const shown = grants.some((grant) =>
    places.some((place) => grant === '/' || place === grant || place?.startsWith(`${grant}/`)),
  );
  return [...(shown ? [(await egress()).defaultSocketDirectory()] : []), ...socketDirectories];
}

/** The proxy a provider's sandboxes use, created on the first allow-listed launch. */
export function egressProxySource(options: ProcessEgressOptions = {}): () => Promise<EgressProxy> {
  if (options.proxy && options.resolver) {
    throw new BulkheadError(
      'INVALID_PROVIDER_OPTIONS',
      'createProcessProvider() got both egress.proxy and egress.resolver: a proxy already has its resolver.',
      {
        tier: 'process',
        fix: 'pass egress.resolver alone, or a proxy made with createEgressProxy({ resolver })',
      },
    );
  }
  const { proxy, resolver } = options;
  if (proxy) return async () => proxy;
  if (!resolver) return async () => (await egress()).getEgressProxy();
  let own: Promise<EgressProxy> | undefined;
  return () => {
    own ??= egress().then((module) => module.createEgressProxy({ resolver }));
    return own;
  };
}

export interface SandboxEgress {
  /** The host path bubblewrap binds at `EGRESS_SANDBOX_SOCKET`. */
  hostSocketPath: string;
  /** The payload's environment with every proxy variable pointing at the relay. */
  environment: Record<string, string>;
  /** Hands the channel of a sandbox prepared ahead of its launch to the sandbox that takes it. */
  assign(sandboxId: string, onViolation: (violation: Violation) => void): void;
  /** Closes the channel and removes what was made for it. */
  release(): Promise<void>;
}

/**
 * Opens the sandbox's channel on the proxy. A root caller's bubblewrap runs as the sandbox uid,
 * which cannot enter the proxy's private (0700) socket folder to bind the socket from it; so the
 * socket is handed to that uid (0600) and hard-linked into a folder it may traverse but not list.
 */
export async function openSandboxEgress(options: {
  proxy: EgressProxy;
  sandboxId: string;
  allow: Endpoint[];
  environment: Record<string, string>;
  onViolation: (violation: Violation) => void;
  /** Set when bubblewrap runs as another uid than the caller's (a root caller). */
  sandboxOwner?: { uid: number; gid: number };
  runtimeDirectory: string;
}): Promise<SandboxEgress> {
  const channel = await options.proxy.openChannel({
    sandboxId: options.sandboxId,
    allow: options.allow,
    onViolation: options.onViolation,
    ...(options.sandboxOwner ? { socketOwner: options.sandboxOwner, socketMode: 0o600 } : {}),
    // The shim's relay takes each allowed tunnel over: the bytes then bypass this process.
    sendWithDescriptor: sendWithDescriptors,
  });
  socketDirectories.add(posix.dirname(channel.socketPath));
  const environment = (await egress()).withProxyEnvironment(options.environment, EGRESS_PROXY_URL);
  const assign = (sandboxId: string, onViolation: (violation: Violation) => void) =>
    channel.assign({ sandboxId, onViolation });
  if (!options.sandboxOwner) {
    return { hostSocketPath: channel.socketPath, environment, assign, release: () => channel.close() };
  }
  let folder: string | undefined;
  try {
    folder = await linkFolder(channel.socketPath, options.sandboxId, options.runtimeDirectory);
  } catch (error) {
    await channel.close();
    throw error;
  }
  const linked = folder;
  // The proxy removes its socket at exit; the link and its folder go with it.
  const forgetAtExit = onProcessExit(() => rmSync(linked, { recursive: true, force: true }));
  return {
    hostSocketPath: posix.join(linked, 'egress.sock'),
    environment,
    assign,
    release: async () => {
      forgetAtExit();
      await channel.close();
      await rm(linked, { recursive: true, force: true });
    },
  };
}

/**
 * A link of the socket in a 0711 folder: first beside the tier's other per-sandbox folders (reaped
 * when their owner died), else, across filesystems (/run on tmpfs, /tmp on disk), beside the
 * proxy's socket folder, whose parent is the world-traversable temporary folder.
 */
async function linkFolder(socketPath: string, sandboxId: string, runtimeDirectory: string): Promise<string> {
  const sandboxes = posix.join(runtimeDirectory, 'sandboxes');
  await mkdir(sandboxes, { recursive: true, mode: 0o711 });
  const preferred = posix.join(sandboxes, `${sandboxCgroupName(sandboxId)}-egress`);
  await mkdir(preferred, { mode: 0o711 });
  try {
    await link(socketPath, posix.join(preferred, 'egress.sock'));
    return preferred;
  } catch (error) {
    await rm(preferred, { recursive: true, force: true });
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw linkError(socketPath, error);
  }
  const socketDirectory = posix.dirname(socketPath);
  const parent = posix.dirname(socketDirectory);
  // A private parent ($XDG_RUNTIME_DIR of root, 0700) would hide the link from the sandbox uid too.
  if (((await stat(parent)).mode & 0o001) === 0) {
    throw linkError(socketPath, new Error(`${parent} is not searchable by other users`));
  }
  staleLinksReaped ??= reapStaleEgressLinks(socketDirectory).catch(() => 0);
  await staleLinksReaped;
  const beside = await mkdtemp(posix.join(parent, `${LINK_FOLDER_PREFIX}${process.pid}-`));
  try {
    await link(socketPath, posix.join(beside, 'egress.sock'));
    await chmod(beside, 0o711);
    return beside;
  } catch (error) {
    await rm(beside, { recursive: true, force: true });
    throw linkError(socketPath, error);
  }
}

const LINK_FOLDER_PREFIX = 'bulkhead-egress-link-';

/**
 * Removes the link folders beside `socketDirectory` (the cross-filesystem fallback) whose owner
 * process died before disposing its sandboxes. The ones under the runtime folder's `sandboxes` are
 * the tier's other per-sandbox folders and are reaped with them (`reapStaleSandboxFolders`).
 */
export async function reapStaleEgressLinks(socketDirectory: string): Promise<number> {
  const parent = posix.dirname(socketDirectory);
  let removed = 0;
  for (const entry of await readdir(parent).catch(() => [] as string[])) {
    const owner = new RegExp(`^${LINK_FOLDER_PREFIX}(\\d+)-`).exec(entry)?.[1];
    if (owner === undefined || ownerProcessAlive(Number(owner))) continue;
    await rm(posix.join(parent, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

let staleLinksReaped: Promise<unknown> | undefined;

function linkError(socketPath: string, cause: unknown): BulkheadError {
  return new BulkheadError(
    'LAUNCH_FAILED',
    `The egress channel ${socketPath} could not be made reachable for the sandbox uid: ${(cause as Error).message}.`,
    {
      tier: 'process',
      capability: 'network.allowlist',
      path: socketPath,
      cause,
      fix: 'give the process tier a proxy whose socketDirectory sits on the same filesystem as /run/bulkhead: createProcessProvider({ egress: { proxy: createEgressProxy({ socketDirectory: "/run/bulkhead-egress" }) } })',
    },
  );
}
