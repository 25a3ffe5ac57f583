/** An entry of an initramfs: the kernel unpacks it into the guest's first root. */
export type CpioEntry =
  | { path: string; type: 'directory'; mode: number }
  | { path: string; type: 'file'; mode: number; data: Uint8Array }
  | { path: string; type: 'symlink'; target: string };

const TYPE_BITS = { directory: 0o040000, file: 0o100000, symlink: 0o120000 } as const;

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/**
 * A cpio archive in the "newc" format the kernel reads for an initramfs (see the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst). Every entry is owned by root.
 */
export function createCpioArchive(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let inode = 1;
  const add = (path: string, mode: number, data: Buffer) => {
    const name = Buffer.from(`${path}\0`);
    const header = Buffer.from(
      `070701${[
        inode++,
        mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime: fixed, so equal inputs give equal archives
        data.length,
        0, // device major
        0, // device minor
        0, // rdev major
        0, // rdev minor
        name.length,
        0, // checksum
      ]
        .map(hex)
        .join('')}`,
    );
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  for (const entry of entries) {
    const path = entry.path.replace(/^\/+/, '');
    if (entry.type === 'directory') add(path, TYPE_BITS.directory | entry.mode, Buffer.alloc(0));
    else if (entry.type === 'file') add(path, TYPE_BITS.file | entry.mode, Buffer.from(entry.data));
    else add(path, TYPE_BITS.symlink | 0o777, Buffer.from(entry.target));
  }
  inode = 0;
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}
