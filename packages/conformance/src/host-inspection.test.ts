import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  cgroupDirectoriesOf,
  cgroupHierarchies,
  findProcessesByMarker,
  newMounts,
  readMounts,
} from './host-inspection.js';

describe('host inspection', () => {
  it('finds a running process by a marker in its command line, and stops finding it once it is gone', async () => {
    const marker = `bulkhead-conformance-inspection-${process.pid}-${Date.now()}`;
    const child = spawn('sleep', ['30'], { argv0: marker, stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    expect(findProcessesByMarker(marker)).toEqual([child.pid]);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(findProcessesByMarker(marker)).toEqual([]);
  });

  it('reads the mount table and tells new mounts from known ones', () => {
    const mounts = readMounts();
    expect(mounts.some((mount) => mount.mountPoint === '/')).toBe(true);
    const extra = { mountPoint: '/made/up', fileSystemType: 'tmpfs', source: 'x', superOptions: 'rw' };
    expect(newMounts(mounts, [...mounts, extra])).toEqual([extra]);
  });

  it.skipIf(cgroupHierarchies().length === 0)(
    'maps this process to cgroup directories that exist on the host',
    () => {
      const directories = cgroupDirectoriesOf('self', cgroupHierarchies());
      expect(directories.length).toBeGreaterThan(0);
      for (const directory of directories) expect(existsSync(directory), directory).toBe(true);
    },
  );
});
