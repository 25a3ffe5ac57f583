import { readdir, readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { runtimeDirectory } from '../bubblewrap/runtime-directory.js';
import { probeCgroupSupport } from '../cgroup/cgroup-support.js';

/**
 * What the Linux tiers made on the host under a name containing `marker` (a sandbox id, or
 * `<owner pid>-` for everything of one caller) and that is still there: cgroups, staging and private
 * folders, mounts in this mount namespace. Each entry says what it is and where; empty once the
 * sandboxes are disposed of, or their caller exited. For tests and for checking a harness's clean-up.
 */
export async function sandboxLeftovers(marker: string): Promise<string[]> {
  const found: string[] = [];
  const support = await probeCgroupSupport();
  const bases = new Set(
    [support.memory, support.processes, support.cpus, support.cpuTime, support.kill].flatMap((feature) =>
      feature ? [feature.base.directory] : [],
    ),
  );
  for (const base of bases) {
    for (const entry of await readdir(base).catch(() => [] as string[]))
      if (entry.includes(marker)) found.push(`cgroup ${posix.join(base, entry)}`);
  }
  for (const folder of ['mounts', 'sandboxes']) {
    const path = posix.join(runtimeDirectory(), folder);
    for (const entry of await readdir(path).catch(() => [] as string[]))
      if (entry.includes(marker)) found.push(`folder ${posix.join(path, entry)}`);
  }
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n'))
    if (line.includes(marker)) found.push(`mount ${line}`);
  return found;
}
