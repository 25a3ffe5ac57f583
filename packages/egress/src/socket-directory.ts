import { lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';

/** Longest path a unix socket address holds on Linux (108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

const socketNamePattern = /^egress-(\d+)-[a-z0-9_-]+\.sock$/;

/**
 * The private directory for channel sockets: `$XDG_RUNTIME_DIR/bulkhead-egress` or
 * `<tmpdir>/bulkhead-egress-<uid>` (not `bulkhead-<uid>`: that is the Linux tiers' runtime folder,
 * which stays 0711 so that a sandbox uid reaches what is bound from it). Its 0700 mode is what keeps
 * other users of the host off a socket in the moment between bind() and chmod(), so a directory
 * someone else owns, or one others can enter, is refused rather than used.
 */
export function defaultSocketDirectory(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime && isOwnedPrivateDirectory(runtime)) return join(runtime, 'bulkhead-egress');
  return join(tmpdir(), `bulkhead-egress-${process.getuid?.() ?? 'user'}`);
}

function isOwnedPrivateDirectory(path: string): boolean {
  try {
    const stats = lstatSync(path);
    return stats.isDirectory() && stats.uid === process.getuid?.() && (stats.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Creates (or checks) the directory and removes sockets left by processes that no longer run. */
export function prepareSocketDirectory(directory: string): void {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const stats = lstatSync(directory);
  const uid = process.getuid?.();
  if (!stats.isDirectory() || (uid !== undefined && stats.uid !== uid) || (stats.mode & 0o077) !== 0) {
    throw new BulkheadError(
      'EGRESS_SOCKET_DIRECTORY_UNSAFE',
      `Egress socket directory ${directory} is not a private directory of this user (it must be a real directory owned by uid ${uid ?? '?'} with mode 0700): another user could reach or replace the proxy's sockets.`,
      {
        path: directory,
        capability: 'network.allowlist',
        fix: `rm -rf ${directory}, or pass socketDirectory`,
      },
    );
  }
  for (const name of readdirSync(directory)) {
    const pid = Number(socketNamePattern.exec(name)?.[1]);
    if (pid && pid !== process.pid && !isRunning(pid)) {
      try {
        unlinkSync(join(directory, name));
      } catch {
        // Another process reaping the same stale socket at once is fine.
      }
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A fresh socket path for a channel: its name carries our pid so a later process can reap it. */
export function channelSocketPath(directory: string, sandboxId: string, unique: string): string {
  const label = sandboxId
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .slice(0, 24);
  const path = join(directory, `egress-${process.pid}-${label}-${unique}.sock`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new BulkheadError(
      'EGRESS_SOCKET_PATH_TOO_LONG',
      `Egress socket path ${path} is ${Buffer.byteLength(path)} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}.`,
      { path, capability: 'network.allowlist', fix: 'pass a shorter socketDirectory (for example /tmp/bh)' },
    );
  }
  return path;
}
