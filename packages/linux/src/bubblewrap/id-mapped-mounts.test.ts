import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
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
      sandboxName: `${dead}-dead-owner`,
      paths: [{ path: folder, kind: 'directory' }],
      uid: 65534,
      gid: 65534,
    });
    const source = staged.sources[folder]!;
    expect(await mountedAt(source)).toBeDefined();
    expect(await reapStaleStaging()).toBeGreaterThanOrEqual(1);
    expect(await mountedAt(source)).toBeUndefined();
    expect(existsSync(posix.join(runtimeDirectory(), 'mounts', `${dead}-dead-owner`))).toBe(false);
    expect(await readFile(join(folder, 'owned-by-root'), 'utf8')).toBe('x');
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
