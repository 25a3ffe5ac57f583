import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LandlockPlanOptions, planLandlock } from './landlock-planner.js';
import { LANDLOCK_ACCESS_FS, LANDLOCK_ACCESS_NET, LANDLOCK_READ_RIGHTS } from './landlock-rights.js';

let root: string;
let grant: string;

beforeAll(() => {
  root = mkdtempSync('/tmp/bulkhead-landlock-plan-');
  grant = join(root, 'grant');
  mkdirSync(join(grant, 'b', 'c'), { recursive: true });
  writeFileSync(join(grant, 'a.txt'), 'a');
  writeFileSync(join(grant, 'secret'), 's');
  writeFileSync(join(grant, 'b', 'd.txt'), 'd');
  writeFileSync(join(grant, 'b', 'c', 'e.txt'), 'e');
  symlinkSync('/etc', join(grant, 'link'));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const ALL_FS = (1 << 16) - 1;

function plan(options: Partial<LandlockPlanOptions>) {
  return planLandlock({
    abi: 7,
    read: [],
    write: [],
    deny: [],
    network: 'open',
    pathView: 'host',
    tier: 'process',
    ...options,
  });
}

const rulesOf = (result: ReturnType<typeof plan>) =>
  Object.fromEntries(result.paths.map((rule) => [rule.path.slice(root.length), rule.access]));

describe('planLandlock: grants and denies', () => {
  it('handles every right of the kernel and grants read or everything', () => {
    const result = plan({ read: [grant], write: [join(root, 'elsewhere/')] });
    expect(result.handledFilesystem).toBe(ALL_FS);
    expect(rulesOf(result)).toEqual({ '/elsewhere': ALL_FS, '/grant': LANDLOCK_READ_RIGHTS });
    expect(result.minimumAbi).toBe(6);
  });

  it('splits a read grant around a denied file and keeps its listing', () => {
    const result = plan({ read: [grant], deny: [join(grant, 'secret')] });
    expect(rulesOf(result)).toEqual({
      '/grant': LANDLOCK_ACCESS_FS.readDir,
      '/grant/a.txt': LANDLOCK_READ_RIGHTS,
      '/grant/b': LANDLOCK_READ_RIGHTS,
      '/grant/link': LANDLOCK_READ_RIGHTS,
    });
    expect(result.degraded.join('\n')).toContain(`the read grant of ${grant} was split into 3 entries`);
  });

  it('marks the split entries so that the shim does not follow symlinks among them', () => {
    const result = plan({ read: [grant, '/proc/self'], deny: [join(grant, 'secret')] });
    const follows = Object.fromEntries(result.paths.map((rule) => [rule.path, rule.followSymlinks]));
    expect(follows[join(grant, 'link')]).toBe(false);
    expect(follows[join(grant, 'a.txt')]).toBe(false);
    // A grant that is not split is emitted as written, links and all.
    expect(follows['/proc/self']).toBe(true);
  });

  it('compares grants and denies by their real paths', () => {
    const alias = join(root, 'alias');
    symlinkSync(grant, alias);
    // The grant is written through a link, the deny through another spelling: still the same file.
    const result = plan({ read: [alias], deny: [join(grant, 'b', '..', 'secret')] });
    expect(result.paths.map((rule) => rule.path)).not.toContain(alias);
    expect(rulesOf(result)['/grant/a.txt']).toBe(LANDLOCK_READ_RIGHTS);
    expect(rulesOf(result)['/grant/secret']).toBeUndefined();
    const throughLink = plan({ read: [grant], deny: [join(alias, 'secret')] });
    expect(rulesOf(throughLink)['/grant/secret']).toBeUndefined();
    expect(rulesOf(throughLink)['/grant/a.txt']).toBe(LANDLOCK_READ_RIGHTS);
  });

  it('walks down to a nested deny, granting the siblings at each level', () => {
    const result = plan({ write: [grant], deny: [join(grant, 'b', 'c', 'e.txt')] });
    expect(rulesOf(result)).toEqual({
      '/grant': LANDLOCK_ACCESS_FS.readDir,
      '/grant/a.txt': ALL_FS,
      '/grant/secret': ALL_FS,
      '/grant/link': ALL_FS,
      '/grant/b': LANDLOCK_ACCESS_FS.readDir,
      '/grant/b/d.txt': ALL_FS,
      '/grant/b/c': LANDLOCK_ACCESS_FS.readDir,
    });
    expect(result.degraded.join('\n')).toContain('entries cannot be created, removed or renamed directly');
  });

  it('keeps a read grant inside a write grant read-only: the write grant is split around it', () => {
    const result = plan({ read: [join(grant, 'b', 'c')], write: [grant] });
    expect(rulesOf(result)).toEqual({
      '/grant': LANDLOCK_ACCESS_FS.readDir,
      '/grant/a.txt': ALL_FS,
      '/grant/secret': ALL_FS,
      '/grant/link': ALL_FS,
      '/grant/b': LANDLOCK_ACCESS_FS.readDir,
      '/grant/b/d.txt': ALL_FS,
      '/grant/b/c': LANDLOCK_READ_RIGHTS,
    });
    expect(result.degraded.join('\n')).toContain(`to keep ${join(grant, 'b', 'c')} read-only`);
  });

  it('grants read alone to a path that is both a read and a write grant', () => {
    expect(rulesOf(plan({ read: [grant], write: [grant] }))).toEqual({ '/grant': LANDLOCK_READ_RIGHTS });
  });

  it('in a namespace view, leaves a read grant inside a write grant to its read-only mount', () => {
    const result = plan({ pathView: 'namespace', read: [join(grant, 'b', 'c')], write: [grant] });
    expect(result.paths.map((rule) => rule.path)).toEqual([grant, join(grant, 'b', 'c')]);
  });

  it('in a namespace view, splits around a read grant inside a write grant that had no mount: it did not exist', () => {
    const later = join(grant, 'b', 'later');
    const result = plan({
      pathView: 'namespace',
      read: [later],
      write: [grant],
      pathKinds: { [later]: 'missing' },
    });
    expect(result.paths.map((rule) => rule.path)).not.toContain(grant);
    expect(result.paths.map((rule) => rule.path)).toContain(join(grant, 'b', 'c'));
    expect(result.degraded.join('\n')).toContain(`${later} does not exist yet`);
  });

  it('does not let a denied directory be listed through its parents', () => {
    const result = plan({ read: [grant], deny: [join(grant, 'b')] });
    expect(rulesOf(result)).toEqual({
      '/grant/a.txt': LANDLOCK_READ_RIGHTS,
      '/grant/secret': LANDLOCK_READ_RIGHTS,
      '/grant/link': LANDLOCK_READ_RIGHTS,
    });
  });

  it('splits as far as possible around a deny that does not exist yet, and says so', () => {
    const missing = join(grant, 'b', 'not-yet', 'file');
    const result = plan({ write: [grant], deny: [missing] });
    expect(rulesOf(result)).toEqual({
      '/grant/a.txt': ALL_FS,
      '/grant/secret': ALL_FS,
      '/grant/link': ALL_FS,
      '/grant/b/c': ALL_FS,
      '/grant/b/d.txt': ALL_FS,
    });
    expect(result.degraded.join('\n')).toContain(`${missing} does not exist yet`);
    expect(result.degraded.join('\n')).toContain(`nothing new can be created in ${join(grant, 'b')}`);
  });

  it('keeps a grant more specific than a deny, and drops a grant equal to one', () => {
    const result = plan({
      read: [join(grant, 'b', 'c'), join(grant, 'a.txt')],
      deny: [join(grant, 'b'), join(grant, 'a.txt')],
    });
    expect(rulesOf(result)).toEqual({ '/grant/b/c': LANDLOCK_READ_RIGHTS });
  });

  it('splits the root itself', () => {
    const result = plan({ read: ['/'], deny: [join(grant, 'secret')] });
    const paths = result.paths.map((rule) => rule.path);
    expect(paths).toContain('/usr');
    expect(paths).toContain(join(grant, 'a.txt'));
    expect(paths).not.toContain(join(grant, 'secret'));
    expect(result.paths.find((rule) => rule.path === '/')?.access).toBe(LANDLOCK_ACCESS_FS.readDir);
  });

  it('refuses relative paths and paths with newlines', () => {
    expect(() => plan({ read: ['relative/path'] })).toThrow(/must be absolute/);
    expect(() => plan({ read: ['/a\nb'] })).toThrow(/newline/);
  });

  it('in a namespace view, adds the tier paths as they are and leaves denies inside them to the namespace', () => {
    const result = plan({
      pathView: 'namespace',
      extraWrite: ['/tmp'],
      deny: ['/tmp/x'],
      read: [grant],
    });
    expect(result.paths.find((rule) => rule.path === '/tmp')?.access).toBe(result.handledFilesystem);
    expect(result.degraded.join('\n')).toContain("/tmp/x lies inside the tier's own path /tmp");
  });

  it('in a namespace view, leaves reads to the mount namespace and handles what changes files and execution', () => {
    const namespace = plan({ pathView: 'namespace', read: [grant] });
    const reads =
      LANDLOCK_ACCESS_FS.readFile |
      LANDLOCK_ACCESS_FS.readDir |
      LANDLOCK_ACCESS_FS.truncate |
      LANDLOCK_ACCESS_FS.ioctlDev;
    expect(namespace.handledFilesystem).toBe(ALL_FS & ~reads);
    expect(namespace.paths.find((rule) => rule.path === grant)?.access).toBe(LANDLOCK_ACCESS_FS.execute);
    // Without a mount namespace Landlock is the read boundary: it handles every right.
    expect(plan({ pathView: 'host', read: [grant] }).handledFilesystem).toBe(ALL_FS);
  });
});

describe('planLandlock: denies the mount namespace masks', () => {
  let crowded: string;

  beforeAll(() => {
    // A folder as crowded as a busy /tmp, holding what the session tier denies there.
    crowded = join(root, 'crowded');
    mkdirSync(join(crowded, '.X11-unix'), { recursive: true });
    mkdirSync(join(crowded, 'ssh-agent-folder'));
    for (let index = 0; index < 400; index++) writeFileSync(join(crowded, `entry-${index}`), '');
    writeFileSync(join(crowded, '.X11-unix', 'X0'), '');
    writeFileSync(join(crowded, '.X11-unix', 'X1'), '');
    symlinkSync('/nonexistent-bulkhead-target', join(crowded, 'dangling'));
  });

  const denied = () => [
    join(crowded, '.X11-unix', 'X0'),
    join(crowded, '.X11-unix', 'X1'),
    join(crowded, 'ssh-agent-folder'),
    join(crowded, 'entry-7'),
  ];

  it('in a namespace view, keeps a write grant whole around existing denies: one rule, nothing degraded', () => {
    const result = plan({ pathView: 'namespace', write: [crowded], deny: denied() });
    expect(result.paths).toEqual([{ path: crowded, access: result.handledFilesystem, followSymlinks: true }]);
    expect(result.degraded.join('\n')).not.toContain('split');
  });

  it('in the host view, still splits the same grant: Landlock is the only boundary there', () => {
    const result = plan({ pathView: 'host', write: [crowded], deny: denied() });
    const paths = result.paths.map((rule) => rule.path);
    // A rule per entry but the denied ones and .X11-unix (399 files and the dangling link), and
    // one that lets .X11-unix be listed.
    expect(paths).toHaveLength(401);
    expect(paths).not.toContain(crowded);
    for (const path of denied()) expect(paths).not.toContain(path);
    expect(result.degraded.join('\n')).toContain(`the write grant of ${crowded} was split`);
  });

  it('in a namespace view, still splits around a deny that does not exist yet: no mask stops its creation', () => {
    const missing = join(grant, 'b', 'not-yet');
    const result = plan({ pathView: 'namespace', write: [grant], deny: [join(grant, 'secret'), missing] });
    const rules = rulesOf(result);
    expect(rules['/grant']).toBeUndefined();
    expect(rules['/grant/b']).toBeUndefined();
    expect(rules['/grant/b/c']).toBe(result.handledFilesystem);
    expect(result.degraded.join('\n')).toContain(`${missing} does not exist yet`);
    // The existing deny beside it is masked, so its entry is not granted: only the mask is there.
    expect(rules['/grant/secret']).toBeUndefined();
    expect(rules['/grant/a.txt']).toBe(result.handledFilesystem);
  });

  it('in a namespace view, splits around a deny that was missing when the mounts were made, though it exists now', () => {
    const deny = join(crowded, 'entry-9');
    // The mount namespace was made before the host created it: no mask is there.
    const kinds = { [crowded]: 'directory', [deny]: 'missing' };
    const result = plan({ pathView: 'namespace', write: [crowded], deny: [deny], pathKinds: kinds });
    const paths = result.paths.map((rule) => rule.path);
    // Listed, but nothing else: nothing can be created beside the deny.
    expect(result.paths.find((rule) => rule.path === crowded)?.access).toBe(LANDLOCK_ACCESS_FS.readDir);
    expect(paths).not.toContain(deny);
    expect(paths).toContain(join(crowded, 'entry-8'));
    // Made with it there (kinds as bubblewrap saw them): masked, so the grant stays whole.
    const masked = plan({
      pathView: 'namespace',
      write: [crowded],
      deny: [deny],
      pathKinds: { ...kinds, [deny]: 'file' },
    });
    expect(masked.paths.map((rule) => rule.path)).toEqual([crowded]);
  });

  it('in a namespace view, still splits around a deny written through a symlink, or one that is a symlink', () => {
    const alias = join(root, 'namespace-alias');
    symlinkSync(grant, alias);
    const throughLink = plan({ pathView: 'namespace', write: [grant], deny: [join(alias, 'secret')] });
    expect(rulesOf(throughLink)['/grant']).toBe(LANDLOCK_ACCESS_FS.readDir);
    expect(rulesOf(throughLink)['/grant/a.txt']).toBe(throughLink.handledFilesystem);
    // A dangling link stays itself (a link to something resolves to it, like any deny).
    const dangling = join(crowded, 'dangling');
    const link = plan({ pathView: 'namespace', write: [crowded], deny: [dangling] });
    const paths = link.paths.map((rule) => rule.path);
    expect(link.paths.find((rule) => rule.path === crowded)?.access ?? 0).toBe(LANDLOCK_ACCESS_FS.readDir);
    expect(paths).not.toContain(dangling);
    expect(paths).toContain(join(crowded, 'entry-7'));
  });

  it('in a namespace view, splits a grant written through a symlink, where no mask shows', () => {
    const alias = join(root, 'crowded-alias');
    symlinkSync(crowded, alias);
    const deny = join(crowded, 'entry-7');
    const result = plan({ pathView: 'namespace', write: [crowded, alias], deny: [deny] });
    const paths = result.paths.map((rule) => rule.path);
    // The grant as written keeps its rule; the alias is replaced by its real entries, the deny left out.
    expect(paths).toContain(crowded);
    expect(paths).not.toContain(alias);
    expect(paths).not.toContain(deny);
    expect(paths).toContain(join(crowded, 'entry-8'));
  });
});

describe('planLandlock: grants shown under a view root (a VMM jail)', () => {
  it('plans the grants against the host and emits each rule beneath the view root, the tier paths as written', () => {
    const later = join(grant, 'b', 'later');
    const result = plan({
      pathView: 'namespace',
      viewRoot: '/view',
      read: [later],
      write: [grant],
      deny: [join(grant, 'missing-secret')],
      pathKinds: { [grant]: 'directory', [later]: 'missing', [join(grant, 'missing-secret')]: 'missing' },
      extraRead: ['/view', '/usr'],
      extraWrite: ['/bulkhead/run'],
    });
    const paths = result.paths.map((rule) => rule.path);
    // Split around both: neither the missing deny nor the missing read grant can be created (the
    // folders on the way may be listed: reads are handled, for the deny).
    const onTheWay = (path: string) => result.paths.find((rule) => rule.path === path)?.access ?? 0;
    expect(onTheWay(`/view${grant}`) & ~LANDLOCK_ACCESS_FS.readDir).toBe(0);
    expect(onTheWay(`/view${join(grant, 'b')}`) & ~LANDLOCK_ACCESS_FS.readDir).toBe(0);
    expect(paths).toContain(`/view${join(grant, 'a.txt')}`);
    expect(paths).toContain(`/view${join(grant, 'b', 'c')}`);
    expect(paths).toContain(`/view${later}`);
    // Split entries keep their no-symlink-following mark under the view root.
    expect(result.paths.find((rule) => rule.path === `/view${join(grant, 'link')}`)?.followSymlinks).toBe(
      false,
    );
    expect(paths).toEqual(expect.arrayContaining(['/view', '/usr', '/bulkhead/run']));
    expect(paths.filter((path) => !path.startsWith('/view') && path.startsWith(root))).toEqual([]);
  });

  it('is refused in the host view, where no mount namespace shows the grants elsewhere', () => {
    expect(() => plan({ pathView: 'host', viewRoot: '/view', read: [grant] })).toThrow(BulkheadError);
  });
});

describe('planLandlock: reads in a namespace view', () => {
  const reads = LANDLOCK_ACCESS_FS.readFile | LANDLOCK_ACCESS_FS.readDir;

  it('handles reads where a deny inside a grant has no mask, so that the host creating it later shows nothing', () => {
    const later = join(grant, 'b', 'later-secret');
    const result = plan({
      pathView: 'namespace',
      read: [grant],
      deny: [later],
      pathKinds: { [grant]: 'directory', [later]: 'missing' },
      extraRead: ['/proc'],
    });
    expect(result.handledFilesystem & reads).toBe(reads);
    // Truncate and device ioctls stay with the mount namespace.
    expect(result.handledFilesystem & LANDLOCK_ACCESS_FS.truncate).toBe(0);
    const rules = rulesOf(result);
    expect(rules['/grant/b/c']).toBe(LANDLOCK_READ_RIGHTS);
    expect(rules['/grant/b/later-secret']).toBeUndefined();
    expect(result.paths.find((rule) => rule.path === '/proc')?.access).toBe(LANDLOCK_READ_RIGHTS);
    expect(result.degraded.join('\n')).toContain(`${later} did not exist when the mounts were made`);
  });

  it('leaves reads to the mount namespace when every deny in a grant is masked, or lies outside the grants', () => {
    const secret = join(grant, 'secret');
    const masked = plan({
      pathView: 'namespace',
      read: [grant],
      deny: [secret],
      pathKinds: { [secret]: 'file' },
    });
    expect(masked.handledFilesystem & reads).toBe(0);
    const outside = plan({ pathView: 'namespace', read: [grant], deny: ['/nonexistent-bulkhead/x'] });
    expect(outside.handledFilesystem & reads).toBe(0);
  });

  it('under a view root, handles reads the same way and lets the view itself be listed, not read', () => {
    const later = join(grant, 'later-secret');
    const result = plan({
      pathView: 'namespace',
      viewRoot: '/view',
      read: [grant],
      deny: [later],
      pathKinds: { [later]: 'missing' },
      extraRead: ['/usr'],
    });
    expect(result.handledFilesystem & reads).toBe(reads);
    expect(result.paths.find((rule) => rule.path === '/view')?.access).toBe(LANDLOCK_ACCESS_FS.readDir);
    expect(result.paths.map((rule) => rule.path)).not.toContain(`/view${later}`);
    expect(result.paths.find((rule) => rule.path === `/view${join(grant, 'a.txt')}`)?.access).toBe(
      LANDLOCK_READ_RIGHTS,
    );
    const quiet = plan({ pathView: 'namespace', viewRoot: '/view', read: [grant], extraRead: ['/usr'] });
    expect(quiet.handledFilesystem & reads).toBe(0);
    expect(quiet.paths.map((rule) => rule.path)).not.toContain('/view');
  });
});

describe('planLandlock: network and scopes', () => {
  it('handles TCP bind and connect with network none, allowing only the relay port', () => {
    const result = plan({ network: 'none', relayPort: 3128 });
    expect(result.handledNetwork).toBe(LANDLOCK_ACCESS_NET.bindTcp | LANDLOCK_ACCESS_NET.connectTcp);
    expect(result.ports).toEqual([{ port: 3128, access: LANDLOCK_ACCESS_NET.connectTcp }]);
    expect(result.scoped).toBe(3);
  });

  it('leaves TCP alone with network open', () => {
    expect(plan({ network: 'open' }).handledNetwork).toBe(0);
  });
});

describe('planLandlock on older kernels', () => {
  it('fails closed without Landlock when it is the only boundary, naming the boot parameter', () => {
    let error: unknown;
    try {
      plan({ abi: 0, read: [grant] });
    } catch (caught) {
      error = caught;
    }
    expect(BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY')).toBe(true);
    expect((error as BulkheadError).capability).toBe('filesystem');
    expect((error as BulkheadError).fix).toContain('lsm=');
  });

  it('goes on without Landlock behind a mount namespace, and says so', () => {
    const result = plan({ abi: 0, pathView: 'namespace', read: [grant] });
    expect(result.enabled).toBe(false);
    expect(result.degraded[0]).toContain('mount namespace alone');
  });

  it('fails closed on network none below ABI 4 in shim-only mode', () => {
    expect(() => plan({ abi: 3, network: 'none' })).toThrow(/cannot enforce 'network.none'.*ABI 4/);
    const behindNamespace = plan({ abi: 3, network: 'none', pathView: 'namespace' });
    expect(behindNamespace.handledNetwork).toBe(0);
    expect(behindNamespace.degraded.join('\n')).toContain('cannot restrict TCP');
  });

  it('plans only the rights an older ABI knows, and reports what it loses', () => {
    const result = plan({ abi: 1, read: [grant] });
    expect(result.handledFilesystem).toBe((1 << 13) - 1);
    expect(result.minimumAbi).toBe(1);
    expect(result.scoped).toBe(0);
    const degraded = result.degraded.join('\n');
    expect(degraded).toContain('renamed or linked');
    expect(degraded).toContain('truncate()');
    expect(degraded).toContain('cannot scope abstract unix sockets and signals');
  });

  it('plans a newer kernel than it knows as the newest ABI it knows', () => {
    const result = plan({ abi: 12 });
    expect(result.handledFilesystem).toBe(ALL_FS);
    expect(result.abi).toBe(12);
  });
});
