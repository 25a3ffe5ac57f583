import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { IdRange } from './identity-pool.js';

/** bubblewrap reads ids as a signed 32-bit int. */
export const BUBBLEWRAP_ID_LIMIT = 2 ** 31 - 1;

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** One `name:start:count` line of /etc/subuid or /etc/subgid (the owner may be a name or a uid). */
export interface SubordinateRange {
  owner: string;
  start: number;
  count: number;
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter((line) => line && !line.startsWith('#'));
  } catch {
    return [];
  }
}

/** The accounts of /etc/passwd. */
export async function readAccounts(path = '/etc/passwd'): Promise<Account[]> {
  return (await readLines(path)).flatMap((line) => {
    const [name, , uid, gid] = line.split(':');
    return name && uid && gid ? [{ name, uid: Number(uid), gid: Number(gid) }] : [];
  });
}

/** The gids of /etc/group. */
export async function readGroupIds(path = '/etc/group'): Promise<number[]> {
  return (await readLines(path)).flatMap((line) => {
    const gid = Number(line.split(':')[2]);
    return Number.isInteger(gid) ? [gid] : [];
  });
}

export async function readSubordinateRanges(path: string): Promise<SubordinateRange[]> {
  return (await readLines(path)).flatMap((line) => {
    const [owner, start, count] = line.split(':');
    return owner && start && count ? [{ owner, start: Number(start), count: Number(count) }] : [];
  });
}

function overlaps(first: number, count: number, other: { start: number; count: number }): boolean {
  return first < other.start + other.count && other.start < first + count;
}

/**
 * Why a range of transient ids is unsafe, or undefined when it is safe: no account, group or
 * subordinate range of /etc may fall inside it, or a sandbox would run as a real person's uid.
 */
export async function transientRangeConflict(range: IdRange): Promise<string | undefined> {
  if (range.firstUid <= 0 || range.firstGid <= 0 || range.count < 1) {
    return 'the range must start above 0 and hold at least one id';
  }
  if (range.firstUid + range.count > 0xffff_fffe || range.firstGid + range.count > 0xffff_fffe) {
    return 'the range must end below 4294967294 (the kernel reserves (uid_t)-1 and -2)';
  }
  const [accounts, groups, subuid, subgid] = await Promise.all([
    readAccounts(),
    readGroupIds(),
    readSubordinateRanges('/etc/subuid'),
    readSubordinateRanges('/etc/subgid'),
  ]);
  const account = accounts.find((item) =>
    overlaps(range.firstUid, range.count, { start: item.uid, count: 1 }),
  );
  if (account) return `the account '${account.name}' (uid ${account.uid}) lies inside it (/etc/passwd)`;
  const group = groups.find((gid) => overlaps(range.firstGid, range.count, { start: gid, count: 1 }));
  if (group !== undefined) return `the group with gid ${group} lies inside it (/etc/group)`;
  const subordinateUid = subuid.find((item) => overlaps(range.firstUid, range.count, item));
  if (subordinateUid) {
    return `it overlaps the subordinate uids of '${subordinateUid.owner}' (${subordinateUid.start}+${subordinateUid.count}, /etc/subuid)`;
  }
  const subordinateGid = subgid.find((item) => overlaps(range.firstGid, range.count, item));
  if (subordinateGid) {
    return `it overlaps the subordinate gids of '${subordinateGid.owner}' (${subordinateGid.start}+${subordinateGid.count}, /etc/subgid)`;
  }
  return undefined;
}

/**
 * The caller's subordinate ids (the first range of /etc/subuid and of /etc/subgid that names the
 * caller by name or uid), paired into one range as long as the shorter of the two.
 */
export async function callerSubordinateRange(): Promise<IdRange | undefined> {
  const uid = process.getuid?.() ?? -1;
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = String(uid);
  }
  const mine = (range: SubordinateRange) => range.owner === name || range.owner === String(uid);
  const [subuid, subgid] = await Promise.all([
    readSubordinateRanges('/etc/subuid'),
    readSubordinateRanges('/etc/subgid'),
  ]);
  const uids = subuid.find(mine);
  const gids = subgid.find(mine);
  if (!uids || !gids) return undefined;
  // bubblewrap parses --uid/--gid as a signed int: ids from 2^31 on cannot be handed to it.
  const count = Math.min(
    uids.count,
    gids.count,
    BUBBLEWRAP_ID_LIMIT - uids.start,
    BUBBLEWRAP_ID_LIMIT - gids.start,
  );
  return count > 0 ? { firstUid: uids.start, firstGid: gids.start, count } : undefined;
}

/** UID_MIN of /etc/login.defs (default 1000): below it, the accounts of the system and its services. */
async function firstUserUid(): Promise<number> {
  const definitions = await readFile('/etc/login.defs', 'utf8').catch(() => '');
  const value = Number(/^\s*UID_MIN\s+(\d+)/m.exec(definitions)?.[1]);
  return Number.isInteger(value) && value > 0 ? value : 1000;
}

/**
 * The account `name` of /etc/passwd when it is an account an administrator made (uid from UID_MIN
 * on): never root, `nobody`, a service account (a sandbox must not act as postgres or messagebus),
 * or the caller itself (none of these is a boundary).
 */
export async function findAccount(name: string): Promise<Account | undefined> {
  const account = (await readAccounts()).find((item) => item.name === name);
  if (!account || account.uid === 0 || account.uid === 65_534 || account.uid === process.getuid?.()) {
    return undefined;
  }
  return account.uid >= (await firstUserUid()) ? account : undefined;
}
