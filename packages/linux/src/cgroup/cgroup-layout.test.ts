import { describe, expect, it } from 'vitest';
import { buildCgroupLayout, parseMountInfo, parseProcCgroup } from './cgroup-layout.js';

const HYBRID_MOUNTS = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_PROC = `8:pids:/
6:freezer:/
4:memory:/process_api/d1528aa8
2:cpuacct:/
1:cpu:/
0::/
`;

describe('cgroup layout', () => {
  it('finds each v1 controller and the unified hierarchy of a hybrid host', () => {
    const layout = buildCgroupLayout(HYBRID_MOUNTS, HYBRID_PROC, []);
    expect(layout.v1.memory).toEqual({
      version: 1,
      mountPoint: '/sys/fs/cgroup/memory',
      ownPath: '/process_api/d1528aa8',
      controllers: ['memory'],
    });
    expect(layout.v1.pids?.ownPath).toBe('/');
    expect(layout.v1.cpu?.mountPoint).toBe('/sys/fs/cgroup/cpu');
    expect(layout.v1.cpuacct?.mountPoint).toBe('/sys/fs/cgroup/cpuacct');
    expect(layout.v2).toEqual({
      version: 2,
      mountPoint: '/sys/fs/cgroup/unified',
      ownPath: '/',
      controllers: [],
    });
  });

  it('reads a pure v2 host with its controllers and a co-mounted cpu,cpuacct v1 host', () => {
    const v2 = buildCgroupLayout(
      '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n',
      '0::/user.slice/user-1000.slice/session-2.scope\n',
      ['cpu', 'memory', 'pids'],
    );
    expect(v2.v2).toEqual({
      version: 2,
      mountPoint: '/sys/fs/cgroup',
      ownPath: '/user.slice/user-1000.slice/session-2.scope',
      controllers: ['cpu', 'memory', 'pids'],
    });
    expect(v2.v1).toEqual({});
    const comounted = buildCgroupLayout(
      '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n',
      '2:cpu,cpuacct:/docker/abc\n',
      undefined,
    );
    expect(comounted.v1.cpu?.mountPoint).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(comounted.v1.cpuacct?.controllers).toEqual(['cpu', 'cpuacct']);
  });

  it('maps our cgroup path relative to a mount of a sub-tree (as containers mount it)', () => {
    const layout = buildCgroupLayout(
      '40 31 0:33 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n',
      '4:memory:/docker/abc/inner\n',
      undefined,
    );
    expect(layout.v1.memory?.ownPath).toBe('/inner');
  });

  it('unescapes mount points with spaces', () => {
    const [entry] = parseMountInfo('41 31 0:38 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n');
    expect(entry?.mountPoint).toBe('/mnt/with space');
  });

  it('keeps paths that contain colons', () => {
    expect(parseProcCgroup('0::/a:b\n').v2Path).toBe('/a:b');
  });
});
