import { chmod, chown, readFile, writeFile } from 'node:fs/promises';

/** One entry of an Xauthority file (the format of libXau: big-endian lengths, then bytes). */
export interface AuthorityEntry {
  /** 256 = FamilyLocal (address: host name), 0xffff = FamilyWild (any address). */
  family: number;
  address: Buffer;
  /** The display number, as text. */
  number: string;
  name: string;
  data: Buffer;
}

export const FAMILY_LOCAL = 256;
export const FAMILY_WILD = 0xffff;

export function encodeAuthority(entries: AuthorityEntry[]): Buffer {
  const field = (value: Buffer) => {
    const length = Buffer.alloc(2);
    length.writeUInt16BE(value.length);
    return Buffer.concat([length, value]);
  };
  return Buffer.concat(
    entries.flatMap((entry) => {
      const family = Buffer.alloc(2);
      family.writeUInt16BE(entry.family);
      return [
        family,
        field(entry.address),
        field(Buffer.from(entry.number)),
        field(Buffer.from(entry.name)),
        field(entry.data),
      ];
    }),
  );
}

/** The entries of an Xauthority file; a truncated tail is ignored, like libXau does. */
export function decodeAuthority(buffer: Buffer): AuthorityEntry[] {
  const entries: AuthorityEntry[] = [];
  let offset = 0;
  const field = (): Buffer | undefined => {
    if (offset + 2 > buffer.length) return undefined;
    const length = buffer.readUInt16BE(offset);
    if (offset + 2 + length > buffer.length) return undefined;
    const value = buffer.subarray(offset + 2, offset + 2 + length);
    offset += 2 + length;
    return value;
  };
  while (offset + 2 <= buffer.length) {
    const family = buffer.readUInt16BE(offset);
    offset += 2;
    const address = field();
    const number = field();
    const name = field();
    const data = field();
    if (!address || !number || !name || !data) break;
    entries.push({ family, address, number: number.toString(), name: name.toString(), data });
  }
  return entries;
}

/**
 * Writes a cookie file the sandbox (and a server running as the sandbox's account) may read. A root
 * caller makes it readable by the sandbox's group only; an unprivileged one cannot give it that
 * group, and relies on the folder's unguessable name under a folder nobody else may list.
 */
export async function writeSandboxAuthority(
  path: string,
  entries: AuthorityEntry[],
  access: { gid: number; subordinate: boolean },
): Promise<void> {
  await writeFile(path, encodeAuthority(entries), { mode: 0o600, flag: 'wx' });
  if (access.subordinate) await chmod(path, 0o644);
  else {
    await chown(path, process.getuid?.() ?? 0, access.gid);
    await chmod(path, 0o640);
  }
}

/** The caller's cookies for local display `number` (from $XAUTHORITY or ~/.Xauthority), made wild. */
export async function callerCookies(source: string, number: string): Promise<AuthorityEntry[]> {
  const entries = decodeAuthority(await readFile(source).catch(() => Buffer.alloc(0)));
  // The sandbox has a host name of its own: a wild entry matches it, a Local one would not.
  return entries
    .filter(
      (entry) => entry.number === number && (entry.family === FAMILY_LOCAL || entry.family === FAMILY_WILD),
    )
    .map((entry) => ({ ...entry, family: FAMILY_WILD, address: Buffer.alloc(0) }));
}
