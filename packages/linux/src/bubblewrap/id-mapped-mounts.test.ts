import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reapStaleStaging, stageIdMappedMounts } from './id-mapped-mounts.js';
import { runtimeDirectory } from './runtime-directory.js';

const isRoot = process.getuid?.() === 0;

async function mountedAt(path: string): Promise<string | undefined> {
  const mountInfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountInfo.split('\n').find((line) => line.split(' ')[4] === path);
}

// Only a root caller needs id-mapped copies (its sandbox uid owns nothing); an unprivileged caller's
// sandbox runs as the caller, and cannot make id-mapped mounts anyway.
describe.skipIf(!isRoot)('id-mapped staging mounts (root callers)', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-idmap-'));
    await writeFile(join(folder, 'owned-by-root'), 'x');
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('shows root-owned files as the sandbox uid and writes as root; release leaves nothing', async () => {
    const staged = await stageIdMappedMounts({
      sandboxName: `${process.pid}-idmap-test`,
      paths: [{ path: folder, kind: 'directory' }],
      uid: 65534,
      gid: 65534,
    });
    const source = staged.sources[folder]!;
    try {
      expect(await mountedAt(source)).toContain('idmapped');
      expect((await stat(join(source, 'owned-by-root'))).uid).toBe(65534);
      // A process of the sandbox uid may write there, and its file lands owned by root.
      const write = spawnSync('/bin/sh', ['-c', `echo made > ${join(source, 'by-sandbox')}`], {
        uid: 65534,
        gid: 65534,
      });
      expect(write.status).toBe(0);
      expect((await stat(join(folder, 'by-sandbox'))).uid).toBe(0);
    } finally {
      await staged.release();
    }
    expect(await mountedAt(source)).toBeUndefined();
    expect(existsSync(posix.dirname(source))).toBe(false);
    expect(await readFile(join(folder, 'owned-by-root'), 'utf8')).toBe('x');
  });

  it('reaps the staging folder of a dead owner without touching the grant', async () => {
    const dead = Number(spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim());
    const staged = await stageIdMappedMounts({
      paths: [{ path: folder, kind: 'directory' }],
      uid: 65534,
      gid: 65534,
    });
    // What a crashed owner leaves: its staging folder, named after its pid, with the copy mounted.
    const ours = posix.dirname(staged.sources[folder]!);
    expect(posix.basename(ours).startsWith(`${process.pid}-`)).toBe(true);
    const left = posix.join(runtimeDirectory(), 'mounts', `${dead}-copy-left`);
    await rename(ours, left);
    const source = posix.join(left, '0');
    try {
      expect(await mountedAt(source)).toBeDefined();
      expect(await reapStaleStaging()).toBeGreaterThanOrEqual(1);
      expect(await mountedAt(source)).toBeUndefined();
      expect(existsSync(left)).toBe(false);
      expect(await readFile(join(folder, 'owned-by-root'), 'utf8')).toBe('x');
    } finally {
      await staged.release();
    }
  });

  it('shares one copy between stagings close in time for the same ids, removed with the last', async () => {
    const stage = (uid: number) =>
      stageIdMappedMounts({ paths: [{ path: folder, kind: 'directory' }], uid, gid: uid });
    const [first, second, other, own] = await Promise.all([
      stage(65534),
      stage(65534),
      stage(65533),
      stageIdMappedMounts({
        sandboxName: `${process.pid}-prepared-test`,
        paths: [{ path: folder, kind: 'directory' }],
        uid: 65534,
        gid: 65534,
        share: false,
      }),
    ]);
    const source = first.sources[folder]!;
    expect(second.sources[folder]).toBe(source);
    // A sandbox prepared ahead keeps a copy of its own, named after it.
    expect(own.sources[folder]).toBe(
      posix.join(runtimeDirectory(), 'mounts', `${process.pid}-prepared-test-0`, '0'),
    );
    await own.release();
    expect(await mountedAt(own.sources[folder]!)).toBeUndefined();
    // Another uid is another mapping: a copy of its own.
    expect(other.sources[folder]).not.toBe(source);
    expect((await stat(join(other.sources[folder]!, 'owned-by-root'))).uid).toBe(65533);
    await first.release();
    await first.release();
    expect(await mountedAt(source)).toBeDefined();
    await second.release();
    expect(await mountedAt(source)).toBeUndefined();
    expect(existsSync(posix.dirname(source))).toBe(false);
    await other.release();
    expect(await mountedAt(other.sources[folder]!)).toBeUndefined();
  });

  it('stages a single file too', async () => {
    const file = join(folder, 'single');
    await writeFile(file, 'one');
    await mkdir(join(folder, 'sub'), { recursive: true });
    const staged = await stageIdMappedMounts({
      sandboxName: `${process.pid}-file-test`,
      paths: [{ path: file, kind: 'file' }],
      uid: 65534,
      gid: 65534,
    });
    try {
      expect(await readFile(staged.sources[file]!, 'utf8')).toBe('one');
      expect((await stat(staged.sources[file]!)).uid).toBe(65534);
    } finally {
      await staged.release();
    }
    expect(await mountedAt(staged.sources[file]!)).toBeUndefined();
  });
});
