import { chmod, mkdir, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { posix } from 'node:path';

/**
 * Bulkhead's per-user runtime folder: staging mounts of root callers and the file that masks denied
 * files. Mode 0711 so that an unprivileged sandbox uid can reach what is bound from it, never list it.
 */
export function runtimeDirectory(): string {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/bulkhead';
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime?.startsWith('/') ? posix.join(runtime, 'bulkhead') : posix.join(tmpdir(), `bulkhead-${uid}`);
}

let prepared: Promise<{ directory: string; deniedFile: string }> | undefined;

/** Makes the runtime folder and the denied-file mask (empty, mode 000) once per process. */
export function prepareRuntimeDirectory(): Promise<{ directory: string; deniedFile: string }> {
  prepared ??= (async () => {
    const directory = runtimeDirectory();
    await mkdir(directory, { recursive: true, mode: 0o711 });
    await chmod(directory, 0o711);
    const deniedFile = posix.join(directory, 'denied');
    try {
      await (await open(deniedFile, 'wx', 0o000)).close();
    } catch (error) {
      // Made by an earlier process: mode 000 means it cannot be opened again, only checked.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    await chmod(deniedFile, 0o000);
    return { directory, deniedFile };
  })();
  prepared.catch(() => {
    prepared = undefined;
  });
  return prepared;
}
