import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCpioArchive } from './cpio.js';

const hasCpio = spawnSync('cpio', ['--version']).status === 0;

describe('initramfs archive', () => {
  // cpio is the independent reader here; CI installs it (apt-get install cpio).
  it.skipIf(!hasCpio)('unpacks with GNU cpio to the same tree', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'bulkhead-cpio-test-'));
    try {
      const archive = createCpioArchive([
        { path: 'bin', type: 'directory', mode: 0o755 },
        { path: 'bin/tool', type: 'file', mode: 0o750, data: Buffer.from('#!/bin/sh\necho odd length\n') },
        { path: 'init', type: 'symlink', target: 'bin/tool' },
      ]);
      await writeFile(join(directory, 'archive.cpio'), archive);
      const unpack = spawnSync('cpio', ['-idm', '--quiet', '-F', 'archive.cpio'], {
        cwd: directory,
        encoding: 'utf8',
      });
      expect(unpack.status, unpack.stderr).toBe(0);
      expect(await readFile(join(directory, 'bin/tool'), 'utf8')).toBe('#!/bin/sh\necho odd length\n');
      expect((await stat(join(directory, 'bin/tool'))).mode & 0o777).toBe(0o750);
      expect(await readlink(join(directory, 'init'))).toBe('bin/tool');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('is reproducible: equal entries, equal bytes', () => {
    const entries = [{ path: 'a', type: 'file' as const, mode: 0o644, data: Buffer.from('x') }];
    expect(createCpioArchive(entries).equals(createCpioArchive(entries))).toBe(true);
  });
});
