import type { Capabilities } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import {
  type BubblewrapArgumentsOptions,
  buildBubblewrapArguments,
  SANDBOX_TIER_DIRECTORY,
  sandboxTierDirectory,
} from './bubblewrap-arguments.js';

function capabilities(
  overrides: Partial<Capabilities['filesystem']> = {},
  extra: Partial<Capabilities> = {},
): Capabilities {
  return {
    filesystem: {
      read: ['/usr', '/etc'],
      write: ['/work/project'],
      deny: ['/etc/shadow', '/work/project/secrets'],
      ...overrides,
    },
    network: { mode: 'none', allow: [] },
    process: { spawn: true, maxProcesses: 64 },
    resources: { memoryBytes: 2 ** 30, timeoutMs: 60_000, gpus: 'none' },
    devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
    env: { GREETING: 'hello' },
    workdir: '/work/project',
    ...extra,
  };
}

function build(options: Partial<BubblewrapArgumentsOptions> = {}) {
  return buildBubblewrapArguments({
    capabilities: capabilities(),
    command: ['/run/bulkhead/shim', '--', 'sh', '-c', 'id'],
    pathKinds: {
      '/usr': 'directory',
      '/etc': 'directory',
      '/work/project': 'directory',
      '/etc/shadow': 'file',
      '/work/project/secrets': 'directory',
    },
    sandboxUid: 65534,
    sandboxGid: 65534,
    deniedFile: '/run/bulkhead/denied',
    ...options,
  });
}

/** The `[flag, ...values]` groups of bwrap's argv that start with `flag`. */
function groups(args: string[], flag: string, arity: number): string[][] {
  const found: string[][] = [];
  args.forEach((argument, index) => {
    if (argument === flag) found.push(args.slice(index + 1, index + 1 + arity));
  });
  return found;
}

describe('buildBubblewrapArguments', () => {
  it('unshares every namespace, drops all capabilities and runs the command after --', () => {
    const { args } = build();
    for (const flag of [
      '--unshare-user',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-net',
      '--unshare-cgroup-try',
      '--new-session',
      '--die-with-parent',
    ]) {
      expect(args).toContain(flag);
    }
    expect(groups(args, '--cap-drop', 1)).toEqual([['ALL']]);
    expect(groups(args, '--uid', 1)).toEqual([['65534']]);
    expect(args.slice(args.indexOf('--'))).toEqual(['--', '/run/bulkhead/shim', '--', 'sh', '-c', 'id']);
  });

  it('keeps the host network only when it is open', () => {
    const open = build({ capabilities: capabilities({}, { network: { mode: 'open', allow: [] } }) });
    expect(open.args).not.toContain('--unshare-net');
  });

  it('binds exactly the grants, read-only or writable, and masks denied paths after them', () => {
    const { args } = build();
    expect(groups(args, '--ro-bind', 2)).toContainEqual(['/usr', '/usr']);
    expect(groups(args, '--ro-bind', 2)).toContainEqual(['/etc', '/etc']);
    expect(groups(args, '--bind', 2)).toEqual([['/work/project', '/work/project']]);
    const shadowMask = args.findIndex(
      (argument, index) => argument === '--ro-bind' && args[index + 2] === '/etc/shadow',
    );
    expect(args[shadowMask + 1]).toBe('/run/bulkhead/denied');
    expect(shadowMask).toBeGreaterThan(args.indexOf('/etc'));
    const secretsMask = args.findIndex(
      (argument, index) => argument === '--tmpfs' && args[index + 1] === '/work/project/secrets',
    );
    expect(args[secretsMask - 2]).toBe('--perms');
    expect(args[secretsMask - 1]).toBe('0000');
    expect(secretsMask).toBeGreaterThan(args.indexOf('--bind'));
    expect(groups(args, '--remount-ro', 1)).toContainEqual(['/work/project/secrets']);
  });

  it('binds the folders between a writable grant and a mask onto themselves, so that none can be renamed away', () => {
    const project = '/work/project';
    const options = (sources?: Record<string, string>) =>
      build({
        capabilities: capabilities({
          read: ['/usr', '/etc'],
          write: [project],
          deny: [
            '/etc/ssl/private/key',
            `${project}/.git/hooks`,
            `${project}/a/b/secret`,
            `${project}/a/b/not-yet`,
            `${project}/vault`,
            `${project}/vault/inner/file`,
          ],
        }),
        pathKinds: {
          '/usr': 'directory',
          '/etc': 'directory',
          [project]: 'directory',
          '/etc/ssl/private/key': 'file',
          [`${project}/.git/hooks`]: 'directory',
          [`${project}/a/b/secret`]: 'other',
          [`${project}/a/b/not-yet`]: 'missing',
          [`${project}/vault`]: 'directory',
          [`${project}/vault/inner/file`]: 'file',
        },
        ...(sources ? { sources } : {}),
      });
    const { args } = options();
    // Not in a read-only grant (nothing there can be renamed), nor inside a denied folder (hidden).
    expect(groups(args, '--bind', 2)).toEqual([
      [project, project],
      [`${project}/.git`, `${project}/.git`],
      [`${project}/a`, `${project}/a`],
      [`${project}/a/b`, `${project}/a/b`],
    ]);
    // Over the grant, under the masks.
    const anchor = args.indexOf(`${project}/a/b`);
    expect(anchor).toBeGreaterThan(args.indexOf(project));
    const mask = args.findIndex(
      (argument, index) => argument === '--ro-bind' && args[index + 2] === `${project}/a/b/secret`,
    );
    expect(mask).toBeGreaterThan(anchor);
    // A root caller's grant comes from its id-mapped copy, and so do the folders in it.
    const staged = options({ [project]: '/run/bulkhead/mounts/1-x/0' });
    expect(groups(staged.args, '--bind', 2)).toContainEqual([
      '/run/bulkhead/mounts/1-x/0/a/b',
      `${project}/a/b`,
    ]);
  });

  it('binds the folders up to the outermost writable grant when grants nest', () => {
    const { args } = build({
      capabilities: capabilities({
        read: ['/work/project/docs'],
        write: ['/work/project', '/work/project/a/b'],
        deny: ['/work/project/a/b/c/secret', '/work/project/docs/x/key'],
      }),
      pathKinds: {
        '/work/project': 'directory',
        '/work/project/a/b': 'directory',
        '/work/project/docs': 'directory',
        '/work/project/a/b/c/secret': 'file',
        '/work/project/docs/x/key': 'file',
      },
    });
    // /work/project/a holds the inner grant: renamed, it would take the mask along. Nothing inside
    // the read-only grant can be renamed, and a grant's own folder is a mount point already.
    expect(groups(args, '--bind', 2)).toEqual([
      ['/work/project', '/work/project'],
      ['/work/project/a', '/work/project/a'],
      ['/work/project/a/b', '/work/project/a/b'],
      ['/work/project/a/b/c', '/work/project/a/b/c'],
    ]);
  });

  it('binds those folders in a grant inside the private /tmp too, but none of the tier’s own', () => {
    const inTemporary = build({
      capabilities: capabilities({ read: [], write: ['/tmp/work'], deny: ['/tmp/work/a/key'] }),
      pathKinds: { '/tmp/work': 'directory', '/tmp/work/a/key': 'file' },
    });
    expect(groups(inTemporary.args, '--bind', 2)).toEqual([
      ['/tmp/work', '/tmp/work'],
      ['/tmp/work/a', '/tmp/work/a'],
    ]);
    expect(inTemporary.args.indexOf('/tmp/work/a')).toBeGreaterThan(inTemporary.args.indexOf('/tmp'));
    // Under a writable root the private /tmp is the tier's: nothing of the host's there to hold.
    const underRoot = build({
      capabilities: capabilities({ read: [], write: ['/'], deny: ['/tmp/x/key', '/srv/data/key'] }),
      pathKinds: { '/': 'directory', '/tmp/x/key': 'file', '/srv/data/key': 'file' },
      hiddenDirectories: ['/run/bulkhead'],
    });
    expect(groups(underRoot.args, '--bind', 2)).toEqual([
      ['/', '/'],
      ['/srv', '/srv'],
      ['/srv/data', '/srv/data'],
    ]);
  });

  it('lets the most specific grant win: a read-only folder inside a writable one is bound after it', () => {
    const { args } = build({
      capabilities: capabilities({
        read: ['/usr', '/work/project/.git'],
        write: ['/work/project'],
        deny: [],
      }),
      pathKinds: { '/usr': 'directory', '/work/project': 'directory', '/work/project/.git': 'directory' },
    });
    expect(args.indexOf('/work/project/.git')).toBeGreaterThan(args.indexOf('/work/project'));
    expect(groups(args, '--ro-bind', 2)).toContainEqual(['/work/project/.git', '/work/project/.git']);
  });

  it('binds a write grant from its staged source when given one', () => {
    const { args } = build({ sources: { '/work/project': '/run/bulkhead/mounts/1-x/0' } });
    expect(groups(args, '--bind', 2)).toEqual([['/run/bulkhead/mounts/1-x/0', '/work/project']]);
  });

  it('skips grants that do not exist rather than creating them', () => {
    const { args } = build({
      pathKinds: { '/usr': 'directory', '/etc': 'missing', '/work/project': 'directory' },
    });
    expect(args).not.toContain('/etc');
  });

  it('gives a private /tmp, HOME and /dev/shm, a minimal /dev, a new /proc and a read-only root', () => {
    const { args, home, environment } = build();
    expect(groups(args, '--tmpfs', 1)).toContainEqual(['/tmp']);
    expect(groups(args, '--tmpfs', 1)).toContainEqual(['/dev/shm']);
    expect(groups(args, '--dev', 1)).toEqual([['/dev']]);
    expect(groups(args, '--proc', 1)).toEqual([['/proc']]);
    expect(home).toBe('/tmp/home');
    expect(environment.HOME).toBe('/tmp/home');
    expect(groups(args, '--remount-ro', 1)).toContainEqual(['/']);
    for (const device of ['/dev/snd', '/dev/dri', '/dev/kvm', '/dev/input', '/dev/nvidia0'])
      expect(args).not.toContain(device);
  });

  it('passes GPU device nodes only when asked', () => {
    const { args } = build({ devices: ['/dev/nvidia0', '/dev/dri/renderD128'] });
    expect(groups(args, '--dev-bind', 2)).toEqual([
      ['/dev/nvidia0', '/dev/nvidia0'],
      ['/dev/dri/renderD128', '/dev/dri/renderD128'],
    ]);
  });

  it('binds a device node from another host path at its sandbox path, writable for the shim too', () => {
    const { args, extraReadPaths, extraWritePaths } = build({
      devices: [{ hostPath: '/var/tmp/nodes/snd/pcmC0D0p', sandboxPath: '/dev/snd/pcmC0D0p' }],
    });
    expect(groups(args, '--dev-bind', 2)).toEqual([['/var/tmp/nodes/snd/pcmC0D0p', '/dev/snd/pcmC0D0p']]);
    // After the tier's own /dev, or the node would be hidden under it.
    expect(args.indexOf('--dev-bind')).toBeGreaterThan(args.indexOf('--dev'));
    expect(extraReadPaths).toContain('/dev/snd/pcmC0D0p');
    expect(extraWritePaths).toContain('/dev/snd/pcmC0D0p');
    expect(extraWritePaths).not.toContain('/var/tmp/nodes/snd/pcmC0D0p');
    expect(() => build({ devices: [{ hostPath: '/dev/snd/x', sandboxPath: '--bind' }] })).toThrow(
      /absolute, normalised/,
    );
  });

  it('clears the environment and sets exactly the capabilities plus PATH, HOME, TMPDIR and LANG', () => {
    const { args, environment } = build();
    expect(args).toContain('--clearenv');
    expect(Object.keys(environment).sort()).toEqual(['GREETING', 'HOME', 'LANG', 'PATH', 'TMPDIR']);
    expect(groups(args, '--setenv', 2)).toContainEqual(['GREETING', 'hello']);
    expect(args.indexOf('--clearenv')).toBeLessThan(args.indexOf('--setenv'));
  });

  it('refuses paths that are not absolute and normalised, so none can pass for an option', () => {
    for (const path of ['--bind', 'relative', '/work/../etc', '/work/project/']) {
      expect(() => build({ capabilities: capabilities({ write: [path] }) })).toThrow(/absolute, normalised/);
    }
  });

  it('refuses to run the payload as uid 0', () => {
    expect(() => build({ sandboxUid: 0 })).toThrow(/never runs as root/);
  });

  it('adds the info and block fds before the command', () => {
    const { args } = build({ infoFd: 6, blockFd: 7 });
    expect(groups(args, '--info-fd', 1)).toEqual([['6']]);
    expect(groups(args, '--block-fd', 1)).toEqual([['7']]);
    expect(args.indexOf('--block-fd')).toBeLessThan(args.indexOf('--'));
  });
  describe('a grant of / or /run', () => {
    const broad = (grant: string, options: Partial<BubblewrapArgumentsOptions> = {}) =>
      build({
        capabilities: capabilities({ read: [grant], write: ['/work/project'], deny: ['/etc/shadow'] }),
        pathKinds: { [grant]: 'directory', '/work/project': 'directory', '/etc/shadow': 'file' },
        shim: { hostPath: '/opt/bulkhead/shim', sandboxPath: '/run/bulkhead/shim' },
        hiddenDirectories: ['/run/bulkhead', '/run/user/0/bulkhead-egress'],
        ...options,
      });
    /** The index in args where `flag` mounts `path`. */
    const mountOf = (args: string[], flag: string, path: string) =>
      args.findIndex(
        (argument, index) => argument === flag && args[index + (flag === '--ro-bind' ? 2 : 1)] === path,
      );

    it('mounts the tier’s /proc, /dev and /dev/shm over the host’s that / would show', () => {
      const { args } = broad('/');
      const root = mountOf(args, '--ro-bind', '/');
      expect(root).toBeGreaterThanOrEqual(0);
      for (const [flag, path] of [
        ['--proc', '/proc'],
        ['--dev', '/dev'],
        ['--tmpfs', '/dev/shm'],
      ] as const)
        expect(mountOf(args, flag, path), path).toBeGreaterThan(root);
    });

    it('keeps /tmp private and HOME in it: only a grant of /tmp itself shows the host’s', () => {
      const { args, home } = broad('/');
      expect(mountOf(args, '--tmpfs', '/tmp')).toBeGreaterThan(mountOf(args, '--ro-bind', '/'));
      expect(home).toBe('/tmp/home');
    });

    it('hides Bulkhead’s state folders the grant shows under a read-only tmpfs, before the tier binds its own files', () => {
      for (const grant of ['/', '/run']) {
        const { args } = broad(grant, {
          binds: [
            { hostPath: '/run/bulkhead/mounts/1-x/egress.sock', sandboxPath: '/run/bulkhead/egress.sock' },
          ],
        });
        const grantIndex = mountOf(args, '--ro-bind', grant);
        for (const hidden of ['/run/bulkhead', '/run/user/0/bulkhead-egress']) {
          const mask = mountOf(args, '--tmpfs', hidden);
          expect(mask, hidden).toBeGreaterThan(grantIndex);
          expect(groups(args, '--remount-ro', 1)).toContainEqual([hidden]);
        }
        const mask = mountOf(args, '--tmpfs', '/run/bulkhead');
        const shim = mountOf(args, '--ro-bind', '/run/bulkhead/shim');
        const egress = mountOf(args, '--ro-bind', '/run/bulkhead/egress.sock');
        const readOnly = args.findIndex(
          (argument, index) => argument === '--remount-ro' && args[index + 1] === '/run/bulkhead',
        );
        expect(shim).toBeGreaterThan(mask);
        expect(egress).toBeGreaterThan(mask);
        expect(readOnly).toBeGreaterThan(Math.max(shim, egress));
      }
    });

    it('leaves a hidden folder alone when no grant shows it, and binds a grant inside one over its mask', () => {
      const narrow = build({ hiddenDirectories: ['/run/bulkhead'] });
      expect(groups(narrow.args, '--tmpfs', 1)).not.toContainEqual(['/run/bulkhead']);
      const { args } = broad('/', {
        capabilities: capabilities({
          read: ['/'],
          write: ['/work/project', '/run/bulkhead/sessions/a/runtime'],
          deny: [],
        }),
        pathKinds: {
          '/': 'directory',
          '/work/project': 'directory',
          '/run/bulkhead/sessions/a/runtime': 'directory',
        },
      });
      expect(mountOf(args, '--bind', '/run/bulkhead/sessions/a/runtime')).toBeGreaterThan(
        mountOf(args, '--tmpfs', '/run/bulkhead'),
      );
    });

    it('puts the tier’s files in a hidden folder when the host’s /run shows without /run/bulkhead', () => {
      const view = {
        capabilities: capabilities({ read: ['/run'], write: [], deny: [] }),
        pathKinds: { '/run': 'directory' as const },
      };
      expect(sandboxTierDirectory({ ...view, hiddenDirectories: [SANDBOX_TIER_DIRECTORY] })).toBe(
        SANDBOX_TIER_DIRECTORY,
      );
      expect(sandboxTierDirectory({ ...view, hiddenDirectories: ['/run/user/1000/bulkhead'] })).toBe(
        '/run/user/1000/bulkhead',
      );
      expect(() => sandboxTierDirectory({ ...view, hiddenDirectories: ['/tmp/bulkhead-1000'] })).toThrow(
        /\/run\/bulkhead does not exist and cannot be made/,
      );
      expect(sandboxTierDirectory({ ...view, pathKinds: { '/run': 'missing' } })).toBe(
        SANDBOX_TIER_DIRECTORY,
      );
    });
  });
});
