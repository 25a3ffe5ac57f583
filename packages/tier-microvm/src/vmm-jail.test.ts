import { describe, expect, it } from 'vitest';
import { createQemuMicrovmBackend } from './vmm-backend.js';
import { buildJailArguments, type PathKind } from './vmm-jail.js';

const kinds: Record<string, PathKind> = {
  '/lib': 'symlink',
  '/lib64': 'symlink',
  '/bin': 'symlink',
  '/sbin': 'symlink',
  '/work': 'directory',
  '/work/secrets': 'directory',
  '/work/secrets/public': 'directory',
  '/work/.env': 'file',
  '/usr': 'directory',
  '/absent': 'missing',
};

function jail(filesystem: { read: string[]; write: string[]; deny: string[] }): string[] {
  const vmm = createQemuMicrovmBackend({ binary: '/usr/bin/qemu-system-x86_64' }).start({
    kernelPath: '/bulkhead/vmlinux',
    initramfsPath: '/bulkhead/initramfs.cpio',
    kernelArguments: [],
    memoryMebibytes: 128,
    vcpus: 1,
    accelerator: 'tcg',
    sharedDirectory: '/view',
  });
  return buildJailArguments({
    vmm,
    kernelPath: '/cache/vmlinux',
    initramfsPath: '/cache/initramfs.cpio',
    runDirectory: '/tmp/run',
    emptyFile: '/tmp/run/empty',
    filesystem,
    kindOf: (path) => kinds[path] ?? 'missing',
  });
}

function indexOfSequence(args: string[], ...sequence: string[]): number {
  return args.findIndex((_, index) => sequence.every((value, offset) => args[index + offset] === value));
}

describe('the VMM jail', () => {
  it('holds no network, no capabilities, and dies with its parent', () => {
    const args = jail({ read: [], write: [], deny: [] });
    expect(args).toContain('--unshare-all');
    expect(args).not.toContain('--share-net');
    expect(indexOfSequence(args, '--cap-drop', 'ALL')).toBeGreaterThanOrEqual(0);
    expect(args).toContain('--die-with-parent');
    expect(args).toContain('--clearenv');
  });

  it('shares only the grants, read-only where read, with deny masks over them and a read-only top', () => {
    const args = jail({ read: ['/usr', '/absent'], write: ['/work'], deny: ['/work/secrets', '/work/.env'] });
    expect(indexOfSequence(args, '--ro-bind', '/usr', '/view/usr')).toBeGreaterThan(0);
    expect(indexOfSequence(args, '--bind', '/work', '/view/work')).toBeGreaterThan(0);
    // Binding an absent grant would create it on the host.
    expect(args.some((arg) => arg.includes('/absent'))).toBe(false);
    const mask = indexOfSequence(args, '--tmpfs', '/view/work/secrets');
    expect(mask).toBeGreaterThan(indexOfSequence(args, '--bind', '/work', '/view/work'));
    expect(indexOfSequence(args, '--ro-bind', '/tmp/run/empty', '/view/work/.env')).toBeGreaterThan(0);
    expect(indexOfSequence(args, '--remount-ro', '/view')).toBeGreaterThan(mask);
  });

  it('lets a grant inside a denied directory through: the most specific path wins', () => {
    const args = jail({ read: ['/work/secrets/public'], write: ['/work'], deny: ['/work/secrets'] });
    const mask = indexOfSequence(args, '--tmpfs', '/view/work/secrets');
    const inner = indexOfSequence(args, '--ro-bind', '/work/secrets/public', '/view/work/secrets/public');
    expect(inner).toBeGreaterThan(mask);
    expect(indexOfSequence(args, '--remount-ro', '/view/work/secrets')).toBeGreaterThan(inner);
  });

  it('a deny of a granted path itself wins over the grant', () => {
    const args = jail({ read: ['/work'], write: [], deny: ['/work'] });
    expect(indexOfSequence(args, '--ro-bind', '/work', '/view/work')).toBe(-1);
  });
});
