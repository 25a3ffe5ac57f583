import { lstatSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Capabilities } from '@bulkhead/core';
import { type HostPathKind, SANDBOX_TIER_DIRECTORY } from '@bulkhead/linux';

/**
 * The kind of every path the capabilities name, from `lstat` (a symlink stays a symlink).
 * Synchronous on purpose: a few dozen lstat calls take microseconds each, while a thread-pool round
 * trip per path measurably slowed launches (and 100 concurrent launches queued behind each other).
 */
export async function inspectPaths(capabilities: Capabilities): Promise<Record<string, HostPathKind>> {
  const { read, write, deny } = capabilities.filesystem;
  const paths = [...new Set([...read, ...write, ...deny])];
  return Object.fromEntries(paths.map((path) => [path, kindOf(path, deny.includes(path))]));
}

function kindOf(path: string, denied: boolean): HostPathKind {
  try {
    const status = lstatSync(path);
    if (status.isSymbolicLink()) {
      // A granted symlink is bound as its target, like any bind mount; a denied one is reported.
      return denied ? 'symlink' : kindOfTarget(path);
    }
    return status.isDirectory() ? 'directory' : status.isFile() ? 'file' : 'other';
  } catch {
    return 'missing';
  }
}

function kindOfTarget(path: string): HostPathKind {
  const status = statSync(path, { throwIfNoEntry: false });
  if (!status) return 'missing';
  return status.isDirectory() ? 'directory' : status.isFile() ? 'file' : 'other';
}

const SEARCH_BY_OTHERS = 0o001;
const READ_BY_OTHERS = 0o004;

/**
 * Can a uid that owns nothing (a root caller's sandbox uid) reach `path` through its ancestors and
 * read it? Used to decide which read grants need an id-mapped copy: a folder private to root would
 * otherwise be granted but unreadable.
 */
export async function readableByOthers(path: string): Promise<boolean> {
  try {
    const own = statSync(path);
    const needed = own.isDirectory() ? READ_BY_OTHERS | SEARCH_BY_OTHERS : READ_BY_OTHERS;
    if ((own.mode & needed) !== needed) return false;
    for (let ancestor = posix.dirname(path); ; ancestor = posix.dirname(ancestor)) {
      if ((statSync(ancestor).mode & SEARCH_BY_OTHERS) === 0) return false;
      if (ancestor === '/') return true;
    }
  } catch {
    return false;
  }
}

/** GPU device nodes: NVIDIA's (`/dev/nvidia*`) and DRM render nodes (`/dev/dri/renderD*`). */
export async function gpuDeviceNodes(selection: 'all' | number[]): Promise<string[]> {
  const list = async (folder: string, pattern: RegExp) =>
    (await readdir(folder).catch(() => [] as string[]))
      .filter((name) => pattern.test(name))
      .map((name) => posix.join(folder, name));
  const nvidia = await list('/dev', /^nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset)$/);
  const render = await list('/dev/dri', /^renderD\d+$/);
  if (selection === 'all') return [...nvidia, ...render];
  const wanted = new Set(selection);
  const shared = nvidia.filter((path) => !/nvidia\d+$/.test(path));
  const cards = nvidia.filter((path) => wanted.has(Number(/nvidia(\d+)$/.exec(path)?.[1] ?? -1)));
  const renders = render.filter((path) => wanted.has(Number(/renderD(\d+)$/.exec(path)?.[1] ?? 0) - 128));
  return cards.length + renders.length === 0
    ? []
    : [...cards, ...(cards.length > 0 ? shared : []), ...renders];
}

/**
 * Bulkhead's own state folders that exist on the host, to be hidden from every sandbox: the tier
 * folder sandboxes see (/run/bulkhead, a root caller's runtime folder), and the given ones.
 */
export function stateDirectories(directories: readonly string[]): string[] {
  return [...new Set([SANDBOX_TIER_DIRECTORY, ...directories])].filter(
    (directory) => statSync(directory, { throwIfNoEntry: false })?.isDirectory() ?? false,
  );
}
